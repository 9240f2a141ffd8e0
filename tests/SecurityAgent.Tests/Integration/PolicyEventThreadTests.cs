using System.Text.Json;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>A policy event names the thread that made the call, as Tetragon's process.tid does, while process.pid stays
/// the process's (its thread-group leader's): on the real kernel, with a test-built program that opens a test-owned
/// file from a second thread and then from its leader.</summary>
[Collection("kernel")]
public class PolicyEventThreadTests
{
    /// <summary>"thread-open FILE": a new thread prints "PID TID" and opens FILE; once it is joined, the leader opens it.</summary>
    private const string Source = """
        #include <fcntl.h>
        #include <pthread.h>
        #include <stdio.h>
        #include <unistd.h>
        #include <sys/syscall.h>
        static const char *file;
        static void *run(void *unused) {
            printf("%ld %ld\n", (long)getpid(), (long)syscall(SYS_gettid));
            fflush(stdout);
            int fd = open(file, O_RDONLY);
            if (fd >= 0) close(fd);
            return fd >= 0 ? NULL : (void *)1;
        }
        int main(int argc, char **argv) {
            pthread_t t;
            void *failed;
            if (argc < 2) return 2;
            file = argv[1];
            if (pthread_create(&t, NULL, run, NULL) || pthread_join(t, &failed) || failed) return 3;
            int fd = open(file, O_RDONLY);
            return fd >= 0 ? 0 : 4;
        }
        """;

    private static string Policy(string binary, string file) => $"""
        apiVersion: securityagent.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: thread-open
        spec:
          kprobes:
          - call: sys_openat
            syscall: true
            args:
            - index: 1
              type: string
            selectors:
            - matchArgs:
              - index: 1
                operator: Equal
                values: ["{file}"]
              matchBinaries:
              - operator: In
                values: ["{binary}"]
        """;

    [Fact]
    public void An_open_by_a_thread_that_is_not_the_leader_reports_that_threads_tid_and_the_leaders_pid_and_the_leaders_open_its_own()
    {
        using var dir = new TempDir();
        var program = CProgram.Build(dir, "thread-open", Source, "-O1", "-pthread");
        var file = dir.File("watched.txt");
        File.WriteAllText(file, "x\n");
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = Policy(program, file) });
        Assert.Contains("Policy thread-open loaded", agent.Stderr);

        var r = Run.Wait(program, [file]);
        Assert.True(r.Code == 0, $"thread-open: {r.Code} {r.Stderr}");
        var ids = r.Stdout.Trim().Split(' ');
        int pid = int.Parse(ids[0]), tid = int.Parse(ids[1]);
        Assert.NotEqual(pid, tid);

        static JsonElement? Process(JsonElement e) =>
            e.TryGetProperty("process_kprobe", out var k) && k.GetProperty("policy_name").GetString() == "thread-open" ? k.GetProperty("process") : null;
        var byThread = Process(agent.Events.WaitFor(e => Process(e) is { } p && p.GetProperty("tid").GetInt32() == tid, $"the open by thread {tid}"))!.Value;
        Assert.Equal(pid, byThread.GetProperty("pid").GetInt32());
        Assert.Equal(program, byThread.GetProperty("binary").GetString());
        var byLeader = Process(agent.Events.WaitFor(e => Process(e) is { } p && p.GetProperty("pid").GetInt32() == pid && p.GetProperty("tid").GetInt32() == pid,
            "the open by the leader"))!.Value;

        // Both are the one process the exec started (the thread made no process of its own), whose exec says the leader.
        var exec = agent.Events.WaitFor(e => e.TryGetProperty("process_exec", out var x) && x.GetProperty("process").GetProperty("pid").GetInt32() == pid
            && x.GetProperty("process").GetProperty("binary").GetString() == program, "the program's exec").GetProperty("process_exec").GetProperty("process");
        Assert.Equal(pid, exec.GetProperty("tid").GetInt32());
        Assert.Equal(exec.GetProperty("exec_id").GetString(), byThread.GetProperty("exec_id").GetString());
        Assert.Equal(exec.GetProperty("exec_id").GetString(), byLeader.GetProperty("exec_id").GetString());
        Assert.Equal(2, agent.Events.Where(e => Process(e) is not null).Count);
    }
}
