using System.Text.Json;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>An exec from a thread that is not the process's leader: the kernel kills the other threads and the
/// execing thread takes the leader's pid (de_thread). The exec must be reported as the process's (its pid, its parent,
/// the new binary), exec policies must catch it, and the old thread must leave nothing behind (no second exit, the
/// exit paired with the exec).</summary>
[Collection("kernel")]
public class ThreadExecTests
{
    /// <summary>"thread-exec FILE ARGS...": prints "PID TID" from a new thread, which then execs FILE with ARGS while
    /// the leader waits in pause().</summary>
    private const string Source = """
        #include <pthread.h>
        #include <stdio.h>
        #include <unistd.h>
        #include <sys/syscall.h>
        extern char **environ;
        static char **args;
        static void *run(void *unused) {
            printf("%ld %ld\n", (long)getpid(), (long)syscall(SYS_gettid));
            fflush(stdout);
            execve(args[0], args, environ);
            perror("execve");
            _exit(3);
        }
        int main(int argc, char **argv) {
            pthread_t t;
            if (argc < 2) return 2;
            args = &argv[1];
            if (pthread_create(&t, NULL, run, NULL)) return 4;
            for (;;) pause();
        }
        """;

    private static (string Launcher, string Target) Build(TempDir dir)
    {
        var launcher = CProgram.Build(dir, "thread-exec", Source, "-O1", "-pthread");
        var target = dir.CopyBinary("/usr/bin/dash", "thread-target");
        return (launcher, target);
    }

    /// <summary>Runs the launcher; returns its exit code, output and the pid and tid the thread printed.</summary>
    private static (int Code, string Stdout, int Pid, int Tid) RunThreadExec(string launcher, string target, string script, string marker)
    {
        var r = Run.Wait(launcher, [target, "-c", script, marker]);
        var ids = r.Stdout.Split('\n')[0].Split(' ');
        Assert.True(ids.Length == 2, $"launcher output: '{r.Stdout}' {r.Stderr}");
        int pid = int.Parse(ids[0]), tid = int.Parse(ids[1]);
        Assert.NotEqual(pid, tid); // the exec really came from a non-leader thread
        return (r.Code, r.Stdout, pid, tid);
    }

    private static JsonElement Proc(JsonElement e, string type) => e.GetProperty(type).GetProperty("process");

    private static JsonElement? Body(JsonElement e, string policy)
    {
        foreach (var p in e.EnumerateObject())
            if (p.Value.ValueKind == JsonValueKind.Object && p.Value.TryGetProperty("policy_name", out var n) && n.GetString() == policy)
                return p.Value;
        return null;
    }

    [Fact]
    public void An_exec_from_a_non_leader_thread_is_the_processs_exec_with_its_pid_parent_and_binary_and_exec_from_tmp_reports_it()
    {
        using var dir = new TempDir(); // under /tmp: the shipped exec-from-tmp policy covers it
        var (launcher, target) = Build(dir);
        var policy = File.ReadAllText(Repo.File_("policies/exec-from-tmp.yaml"));
        using var agent = new AgentProcess(new Dictionary<string, string> { ["exec-from-tmp.yaml"] = policy }, "--export-extensions");
        var marker = "thread-exec-" + Guid.NewGuid().ToString("N")[..12];

        var (code, stdout, pid, tid) = RunThreadExec(launcher, target, "echo ran; exit 5", marker);
        Assert.Equal(5, code);
        Assert.Contains("ran", stdout);

        var launch = agent.Events.WaitFor(e => e.TryGetProperty("process_exec", out _) && Proc(e, "process_exec").GetProperty("binary").GetString() == launcher
            && Proc(e, "process_exec").GetProperty("pid").GetInt32() == pid, "exec of the launcher");
        var exec = agent.Events.WaitFor(e => ExportedEvents.IsExecOf(e, marker) && Proc(e, "process_exec").GetProperty("binary").GetString() == target,
            "exec from the thread");
        var p = Proc(exec, "process_exec");
        Assert.Equal(target, p.GetProperty("binary").GetString());
        Assert.Equal(pid, p.GetProperty("pid").GetInt32());
        Assert.Equal(pid, p.GetProperty("tid").GetInt32()); // the thread became the leader
        var parent = exec.GetProperty("process_exec").GetProperty("parent");
        Assert.Equal(Environment.ProcessId, parent.GetProperty("pid").GetInt32());
        Assert.Equal(parent.GetProperty("exec_id").GetString(), p.GetProperty("parent_exec_id").GetString());
        Assert.Equal(Proc(launch, "process_exec").GetProperty("parent_exec_id").GetString(), p.GetProperty("parent_exec_id").GetString());

        // exec-from-tmp at the thread's execve: the launcher's process (pid) and the new file.
        var hit = agent.Events.WaitFor(e => Body(e, "exec-from-tmp") is { } b && b.GetProperty("process").GetProperty("pid").GetInt32() == pid
            && b.GetProperty("args")[0].GetProperty("string_arg").GetString() == target, "exec-from-tmp event of the thread's exec");
        var body = Body(hit, "exec-from-tmp")!.Value;
        Assert.Equal(target, body.GetProperty("args")[0].GetProperty("string_arg").GetString());
        Assert.Equal(launcher, body.GetProperty("process").GetProperty("binary").GetString());
        Assert.False(body.GetProperty("securityagent").GetProperty("enforced").GetBoolean());

        // One exit, the new program's, paired with its exec: the replaced leader and the old thread leave none.
        var exit = agent.Events.WaitFor(e => ExportedEvents.IsExitOf(e, marker), "exit of the exec'd program");
        Assert.Equal(5, exit.GetProperty("process_exit").GetProperty("status").GetInt32());
        Assert.Equal(pid, Proc(exit, "process_exit").GetProperty("pid").GetInt32());
        Assert.Equal(p.GetProperty("exec_id").GetString(), Proc(exit, "process_exit").GetProperty("exec_id").GetString());
        Thread.Sleep(300); // a stray exit of the old leader or thread would be in the same batch or the next
        var exits = agent.Events.Where(e => e.TryGetProperty("process_exit", out _) && Proc(e, "process_exit").GetProperty("pid").GetInt32() is var x && (x == pid || x == tid));
        Assert.Single(exits);
        Assert.DoesNotContain("unattributed", exit.GetRawText());
    }

    [Fact]
    public void A_sigkill_exec_policy_scoped_to_the_launcher_kills_an_exec_from_a_non_leader_thread_before_the_new_program_runs()
    {
        using var dir = new TempDir();
        var (launcher, target) = Build(dir);
        var yaml = $"""
            apiVersion: securityagent.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: thread-exec-kill
            spec:
              options:
              - name: policy-mode
                value: enforce
              tracepoints:
              - subsystem: syscalls
                event: sys_enter_execve
                args:
                - index: 5
                  type: string
                selectors:
                - matchBinaries:
                  - operator: In
                    values: ["{launcher}"]
                  matchArgs:
                  - index: 5
                    operator: Equal
                    values: ["{target}"]
                  matchActions:
                  - action: Sigkill
            """;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["kill.yaml"] = yaml }, "--export-extensions");
        var marker = "thread-kill-" + Guid.NewGuid().ToString("N")[..12];

        var (code, stdout, pid, tid) = RunThreadExec(launcher, target, "echo ran; exit 5", marker);
        Assert.Equal(137, code);
        Assert.DoesNotContain("ran", stdout);

        var hit = agent.Events.WaitFor(e => Body(e, "thread-exec-kill") is { } b && b.GetProperty("process").GetProperty("pid").GetInt32() == pid,
            "thread-exec-kill event");
        var body = Body(hit, "thread-exec-kill")!.Value;
        Assert.Equal(target, body.GetProperty("args")[0].GetProperty("string_arg").GetString());
        Assert.True(body.GetProperty("securityagent").GetProperty("enforced").GetBoolean());
        var exit = agent.Events.WaitFor(e => e.TryGetProperty("process_exit", out _) && Proc(e, "process_exit").GetProperty("pid").GetInt32() == pid, "exit of the launcher");
        Assert.Equal("SIGKILL", exit.GetProperty("process_exit").GetProperty("signal").GetString());
        Assert.Equal(launcher, Proc(exit, "process_exit").GetProperty("binary").GetString());
        Assert.Empty(agent.Events.Where(e => ExportedEvents.IsExecOf(e, marker) && Proc(e, "process_exec").GetProperty("binary").GetString() == target));
    }
}
