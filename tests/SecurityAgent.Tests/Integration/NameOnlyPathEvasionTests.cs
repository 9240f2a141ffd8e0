using System.Text.Json;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>Syscalls that only take a name (unlink, rename, chmod, chown, mkdir, truncate, link) reached through a
/// symlinked parent directory or a hard link are caught on the real path, after the call, through fanotify: on the
/// real kernel, with a test-built program (the only process the policy names) and files in the test's temp dir.</summary>
[Collection("kernel")]
public class NameOnlyPathEvasionTests
{
    private const string OpSource = """
        #include <stdlib.h>
        #include <string.h>
        #include <unistd.h>
        #include <sys/syscall.h>
        /* op NAME PATH [PATH2] [sleep]: one syscall by its own number, then (with "sleep") 5 s alive, so a kill after the
           call shows as the exit status. Exit 0 when the call succeeded, 1 when it failed. */
        int main(int argc, char **argv) {
            const char *op = argv[1], *a = argv[2], *b = argc > 3 ? argv[3] : "";
            long r = -1;
            if (!strcmp(op, "unlink")) r = syscall(SYS_unlink, a);
            else if (!strcmp(op, "rename")) r = syscall(SYS_rename, a, b);
            else if (!strcmp(op, "chmod")) r = syscall(SYS_chmod, a, 0600);
            else if (!strcmp(op, "chown")) r = syscall(SYS_chown, a, 1, 1);
            else if (!strcmp(op, "mkdir")) r = syscall(SYS_mkdir, a, 0700);
            else if (!strcmp(op, "truncate")) r = syscall(SYS_truncate, a, 0L);
            else if (!strcmp(op, "link")) r = syscall(SYS_link, a, b);
            if (!strcmp(argv[argc - 1], "sleep")) sleep(5);
            return r == 0 ? 0 : 1;
        }
        """;

    private const string LoopSource = """
        #include <fcntl.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include <unistd.h>
        #include <sys/syscall.h>
        /* loop REAL LINK NAME N MODE: N times, creates REAL/NAME, then unlinks it by its own syscall number through
           LINK/NAME (MODE "link"), or every other time through REAL/NAME (MODE "alternate"). Exit 0 when every call
           succeeded. */
        int main(int argc, char **argv) {
            char real[4096], link[4096];
            int n = atoi(argv[4]);
            snprintf(real, sizeof real, "%s/%s", argv[1], argv[3]);
            snprintf(link, sizeof link, "%s/%s", argv[2], argv[3]);
            for (int i = 0; i < n; i++) {
                int fd = open(real, O_CREAT | O_WRONLY, 0600);
                if (fd < 0) return 2;
                close(fd);
                const char *name = !strcmp(argv[5], "alternate") && i % 2 ? real : link;
                if (syscall(SYS_unlink, name) != 0) return 1;
            }
            return 0;
        }
        """;

    private static readonly string[] Calls = ["unlink", "rename", "chmod", "chown", "mkdir", "truncate", "link"];

    /// <summary>protected/ holds the files the policy watches; elsewhere/p is a symlink to protected/, elsewhere/hl-* are
    /// hard links to protected files; elsewhere/plain is an unrelated file.</summary>
    private sealed class Scene : IDisposable
    {
        public TempDir Dir { get; } = new();
        public string Protected => Dir.File("protected");
        public string Elsewhere => Dir.File("elsewhere");
        public string Op { get; }

        public Scene()
        {
            Directory.CreateDirectory(Protected);
            Directory.CreateDirectory(Elsewhere);
            foreach (var f in (string[])["u1", "u2", "u3", "r1", "r2", "c1", "c2", "o1", "o2", "t1", "t2", "l1"])
                File.WriteAllText(Path.Combine(Protected, f), "secret\n");
            // Changes a stat cannot tell: a chmod to the mode the file has, a truncate of an empty file.
            File.WriteAllText(Path.Combine(Protected, "c3"), "secret\n");
            File.SetUnixFileMode(Path.Combine(Protected, "c3"), UnixFileMode.UserRead | UnixFileMode.UserWrite);
            File.WriteAllText(Path.Combine(Protected, "t3"), "");
            File.WriteAllText(Path.Combine(Elsewhere, "plain"), "plain\n");
            File.CreateSymbolicLink(Path.Combine(Elsewhere, "p"), Protected);
            foreach (var f in (string[])["u2", "r2", "c2", "o2", "t2"])
                Assert.Equal(0, Run.Wait("/usr/bin/ln", [Path.Combine(Protected, f), Path.Combine(Elsewhere, "hl-" + f)]).Code);
            Op = CProgram.Build(Dir, "victim-op", OpSource, "-O1");
        }

        public void Dispose() => Dir.Dispose();

        public string Policy(string name, string mode) => $"""
            apiVersion: securityagent.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: {name}
            spec:
              options:
              - name: policy-mode
                value: {mode}
              kprobes:
            {string.Concat(Calls.Select(Hook))}
            """;

        private string Hook(string call) => $"""
              - call: sys_{call}
                syscall: true
                args:
                - index: 0
                  type: string
                  label: path
                selectors:
                - matchArgs:
                  - index: 0
                    operator: Prefix
                    values: ["{Protected}/"]
                  matchBinaries:
                  - operator: In
                    values: ["{Op}"]
                  matchActions:
                  - action: Sigkill

            """;

        /// <summary>Each evasion: the call, its arguments, and the real path the event must report.</summary>
        public IEnumerable<(string What, string Call, string[] Args, string Real)> Evasions()
        {
            string p = Path.Combine(Elsewhere, "p"), e = Elsewhere, r = Protected;
            yield return ("unlink through a symlinked parent", "unlink", [p + "/u1"], r + "/u1");
            yield return ("rename through a symlinked parent", "rename", [p + "/r1", e + "/r1-moved"], r + "/r1");
            yield return ("chmod through a symlinked parent", "chmod", [p + "/c1"], r + "/c1");
            yield return ("chown through a symlinked parent", "chown", [p + "/o1"], r + "/o1");
            yield return ("mkdir through a symlinked parent", "mkdir", [p + "/newdir"], r + "/newdir");
            yield return ("truncate through a symlinked parent", "truncate", [p + "/t1"], r + "/t1");
            yield return ("link of a file through a symlinked parent", "link", [p + "/l1", e + "/l1-link"], r + "/l1");
            yield return ("unlink of a hard link", "unlink", [e + "/hl-u2"], r + "/u2");
            yield return ("rename of a hard link", "rename", [e + "/hl-r2", e + "/hl-r2-moved"], r + "/r2");
            yield return ("chmod of a hard link", "chmod", [e + "/hl-c2"], r + "/c2");
            yield return ("chown of a hard link", "chown", [e + "/hl-o2"], r + "/o2");
            yield return ("truncate of a hard link", "truncate", [e + "/hl-t2"], r + "/t2");
            yield return ("chmod to the same mode through a symlinked parent", "chmod", [p + "/c3"], r + "/c3");
            yield return ("truncate that does not shorten through a symlinked parent", "truncate", [p + "/t3"], r + "/t3");
        }
    }

    private static JsonElement? Body(JsonElement e, string policy) => PathEvasionTests.Body(e, policy);

    private static string Function(JsonElement body) => body.GetProperty("function_name").GetString()!;

    private static string Arg0(JsonElement body) => body.GetProperty("args")[0].GetProperty("string_arg").GetString()!;

    private static JsonElement WaitFor(AgentProcess agent, string policy, string call, string real, string what) =>
        Body(agent.Events.WaitFor(e => Body(e, policy) is { } b && Function(b).EndsWith("sys_" + call, StringComparison.Ordinal) && Arg0(b) == real,
            $"{policy} event for {what} ({real})"), policy)!.Value;

    [Fact]
    public async Task Name_only_calls_through_a_symlinked_parent_or_a_hard_link_are_reported_on_the_real_path_and_unrelated_files_are_not()
    {
        using var s = new Scene();
        int port;
        using (var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0)) { probe.Start(); port = ((System.Net.IPEndPoint)probe.LocalEndpoint).Port; }
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = s.Policy("names-monitor", "monitor") }, "--export-extensions",
            "--metrics-address", $"127.0.0.1:{port}");
        Assert.Contains("Policy names-monitor loaded", agent.Stderr);
        foreach (var (what, call, args, real) in s.Evasions())
        {
            var r = Run.Wait(s.Op, [call, .. args]);
            Assert.True(r.Code == 0, $"{what}: the call must succeed in monitor mode: {r.Code} {r.Stderr}");
            var body = WaitFor(agent, "names-monitor", call, real, what);
            var ext = body.GetProperty("securityagent");
            Assert.True(ext.GetProperty("matched_at_exit").GetBoolean(), what);
            Assert.Equal("fanotify", ext.GetProperty("decided_by").GetString());
            Assert.False(ext.GetProperty("enforced").GetBoolean(), what);
            // The string the process passed, as the kernel noted it at entry, beside the real path.
            var passed = ext.GetProperty("passed_args").EnumerateArray().Single(a => a.GetProperty("arg").GetInt32() == 0);
            Assert.Equal(args[0], passed.GetProperty("string_arg").GetString());
        }

        // A file created under the Prefix after the policy loaded, then hard-linked elsewhere: removing the other name is
        // seen on the file (the watcher marked it by inode when it was created).
        File.WriteAllText(Path.Combine(s.Protected, "n1"), "secret\n");
        Assert.True(agent.WaitForInodeMark(Path.Combine(s.Protected, "n1")), "the file created under the Prefix was never marked:\n" + string.Join("\n", agent.FanotifyMarks()));
        Assert.Equal(0, Run.Wait("/usr/bin/ln", [Path.Combine(s.Protected, "n1"), Path.Combine(s.Elsewhere, "hl-n1")]).Code);
        Assert.Equal(0, Run.Wait(s.Op, ["unlink", s.Elsewhere + "/hl-n1"]).Code);
        var late = WaitFor(agent, "names-monitor", "unlink", s.Protected + "/n1", "unlink of a hard link to a file created after load");
        Assert.Equal(s.Elsewhere + "/hl-n1", late.GetProperty("securityagent").GetProperty("passed_args")[0].GetProperty("string_arg").GetString());

        // The same calls on an unrelated file, by the same program, through the same directories: nothing.
        foreach (var call in (string[])["chmod", "chown", "truncate"])
            Assert.Equal(0, Run.Wait(s.Op, [call, s.Elsewhere + "/plain"]).Code);
        Assert.Equal(0, Run.Wait(s.Op, ["link", s.Elsewhere + "/plain", s.Elsewhere + "/plain-link"]).Code);
        Assert.Equal(0, Run.Wait(s.Op, ["rename", s.Elsewhere + "/plain-link", s.Elsewhere + "/plain-moved"]).Code);
        Assert.Equal(0, Run.Wait(s.Op, ["unlink", s.Elsewhere + "/plain-moved"]).Code);
        Assert.Equal(0, Run.Wait(s.Op, ["mkdir", s.Elsewhere + "/dir"]).Code);

        // A direct call the kernel matches at entry is reported once, not again after the call.
        Assert.Equal(0, Run.Wait(s.Op, ["unlink", s.Protected + "/u3"]).Code);
        var direct = WaitFor(agent, "names-monitor", "unlink", s.Protected + "/u3", "a direct unlink");
        Assert.False(direct.GetProperty("securityagent").TryGetProperty("matched_at_exit", out _));
        Thread.Sleep(1000);
        var mine = agent.Events.Where(e => Body(e, "names-monitor") is not null).Select(e => Body(e, "names-monitor")!.Value).ToList();
        Assert.Single(mine, b => Arg0(b) == s.Protected + "/u3");
        Assert.DoesNotContain(mine, b => Arg0(b).StartsWith(s.Elsewhere, StringComparison.Ordinal) && !Arg0(b).Contains("/r1-moved") && !Arg0(b).Contains("hl-"));
        // One event per call, by the hook of the syscall made: a chmod to the same mode is not taken for a chown.
        Assert.Equal(s.Evasions().Count() + 2, mine.Count);
        Assert.DoesNotContain(mine, b => Function(b).EndsWith("sys_chown", StringComparison.Ordinal) && Arg0(b) == s.Protected + "/c3");

        // The after-the-call path is counted where operators look: changes posted, and no overflow of its queue.
        using var http = new HttpClient();
        var text = await http.GetStringAsync($"http://127.0.0.1:{port}/metrics");
        double Value(string series) => double.Parse(text.Split('\n').Single(l => l.StartsWith(series + " ")).Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(Value("secagent_path_changes_total{outcome=\"posted\"}") >= s.Evasions().Count(), text);
        Assert.True(Value("secagent_path_changes_total{outcome=\"read\"}") >= Value("secagent_path_changes_total{outcome=\"posted\"}"));
        Assert.Equal(0, Value("secagent_path_change_overflows_total"));
        Assert.Equal(0, Value("secagent_after_call_notes_lost_total"));
    }

    [Fact]
    public void Fifty_unlinks_through_a_symlinked_parent_are_fifty_events_and_a_call_the_kernel_matched_at_entry_is_one_of_them()
    {
        const int N = 50;
        using var s = new Scene();
        var loop = CProgram.Build(s.Dir, "victim-loop", LoopSource, "-O1");
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = s.Policy("names-loop", "monitor").Replace($"[\"{s.Op}\"]", $"[\"{s.Op}\", \"{loop}\"]") },
            "--export-extensions");
        Assert.Contains("Policy names-loop loaded", agent.Stderr);
        string link = Path.Combine(s.Elsewhere, "p");

        List<JsonElement> Unlinks(string name) => agent.Events.Where(e => Body(e, "names-loop") is { } b
            && Function(b).EndsWith("sys_unlink", StringComparison.Ordinal) && Arg0(b) == s.Protected + "/" + name).Select(e => Body(e, "names-loop")!.Value).ToList();

        // Every call through the link is reported after it, each with the string it passed: fanotify merges the same
        // change of the same thread while it is queued, and each call it merged is still its own event.
        var r = Run.Wait(loop, [s.Protected, link, "x1", N.ToString(System.Globalization.CultureInfo.InvariantCulture), "link"]);
        Assert.True(r.Code == 0, $"the loop must succeed in monitor mode: {r.Code} {r.Stderr}");
        // Half direct, half through the link: the direct ones the kernel matches at entry, each reported once.
        r = Run.Wait(loop, [s.Protected, link, "x2", N.ToString(System.Globalization.CultureInfo.InvariantCulture), "alternate"]);
        Assert.True(r.Code == 0, $"the alternating loop must succeed: {r.Code} {r.Stderr}");
        // A marker after both loops: once its event is in, the loops' after-call events were read before it.
        Assert.Equal(0, Run.Wait(s.Op, ["unlink", link + "/u1"]).Code);
        WaitFor(agent, "names-loop", "unlink", s.Protected + "/u1", "the marker unlink");
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while ((Unlinks("x1").Count < N || Unlinks("x2").Count < N) && DateTime.UtcNow < deadline)
            Thread.Sleep(100);
        Thread.Sleep(1000); // no repeat comes later

        var x1 = Unlinks("x1");
        Assert.Equal(N, x1.Count);
        Assert.All(x1, b =>
        {
            var ext = b.GetProperty("securityagent");
            Assert.True(ext.GetProperty("matched_at_exit").GetBoolean());
            Assert.Equal(link + "/x1", ext.GetProperty("passed_args")[0].GetProperty("string_arg").GetString());
        });
        var x2 = Unlinks("x2");
        Assert.Equal(N, x2.Count);
        Assert.Equal(N / 2, x2.Count(b => b.GetProperty("securityagent").TryGetProperty("matched_at_exit", out _)));
    }

    [Fact]
    public void In_enforce_mode_a_call_through_a_symlinked_parent_or_a_hard_link_is_killed_after_the_call()
    {
        using var s = new Scene();
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = s.Policy("names-kill", "enforce") }, "--export-extensions");
        Assert.Contains("Policy names-kill loaded", agent.Stderr);
        foreach (var (what, call, args, real) in s.Evasions().Where(e => e.What.StartsWith("unlink") || e.What.StartsWith("chmod")))
        {
            var r = Run.Wait(s.Op, [call, .. args, "sleep"]);
            Assert.True(r.Code == 137, $"{what}: expected SIGKILL after the call, got {r.Code} {r.Stderr}");
            var body = WaitFor(agent, "names-kill", call, real, what);
            Assert.True(body.GetProperty("securityagent").GetProperty("enforced").GetBoolean(), what);
        }
        // After the call: the file is gone although the process was killed (said so in --explain and docs/policies.md).
        Assert.False(File.Exists(s.Protected + "/u1"));
        // An unrelated file: the program lives on.
        Assert.Equal(0, Run.Wait(s.Op, ["chmod", s.Elsewhere + "/plain", "sleep"]).Code);
    }
}
