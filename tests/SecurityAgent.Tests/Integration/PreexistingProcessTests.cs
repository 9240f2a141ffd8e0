using System.Text.Json;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>Processes that were running before the agent started: the kernel's per-process record (sa_proc) is written
/// for them from /proc at start-up, so the selectors that read it (matchNamespaceChanges, matchPIDs isNamespacePID with
/// followForks) and in_init_tree mean for them what they mean for processes the kernel saw fork and exec.</summary>
[Collection("kernel")]
public class PreexistingProcessTests
{
    private const int Killed = 137;

    /// <summary>Waits for argv[2] to exist, then, when argv[3] is "uts", unshares its uts namespace, then mkdir(argv[1]).</summary>
    private const string WaiterSource = """
        #define _GNU_SOURCE
        #include <sched.h>
        #include <string.h>
        #include <sys/stat.h>
        #include <unistd.h>

        int main(int argc, char **argv)
        {
            struct stat st;
            for (int i = 0; stat(argv[2], &st) != 0; i++) {
                if (i > 3000)
                    return 5;
                usleep(10000);
            }
            if (argc > 3 && !strcmp(argv[3], "uts") && unshare(CLONE_NEWUTS))
                return 2;
            return mkdir(argv[1], 0700) ? 1 : 0;
        }
        """;

    [Fact]
    public void A_process_started_before_the_agent_is_matched_on_its_namespace_change_and_its_pid_tree_and_is_in_the_init_tree()
    {
        using var dir = new TempDir();
        var changer = CProgram.Build(dir, "early-changer", WaiterSource, "-O1");
        var treeMember = CProgram.Build(dir, "early-tree", WaiterSource, "-O1");
        var go = dir.File("go");
        using var changing = Run.Start(changer, [dir.File("changed"), go, "uts"]);
        // In a new pid namespace whose init (sh, pid 1 there) waits for it: the pid tree walk goes through sh.
        using var member = Run.Start("unshare", ["--fork", "--pid", "/bin/sh", "-c", $"{treeMember} {dir.File("in-tree")} {go}; exit $?"]);
        try
        {
            var policy = $"""
                apiVersion: cilium.io/v1alpha1
                kind: TracingPolicy
                metadata:
                  name: early
                spec:
                  lists:
                  - name: dircalls
                    type: syscalls
                    values: ["sys_mkdir", "sys_mkdirat"]
                  kprobes:
                  - call: "list:dircalls"
                    selectors:
                    - matchBinaries:
                      - operator: In
                        values: ["{changer}"]
                      matchNamespaceChanges:
                      - operator: In
                        values: [Uts]
                      matchActions:
                      - action: Sigkill
                    - matchBinaries:
                      - operator: In
                        values: ["{treeMember}"]
                      matchPIDs:
                      - operator: In
                        followForks: true
                        isNamespacePID: true
                        values: [1]
                      matchActions:
                      - action: Sigkill
                """;
            using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy });
            Assert.Contains("Policy early loaded", agent.Stderr);
            File.WriteAllText(go, "");

            // Without a kernel record the namespace change could not be seen (no exec to compare with) and the pid
            // tree walk would stop at the unknown process: both would live.
            Assert.True(changing.WaitForExit(30_000) && member.WaitForExit(30_000), "the waiters did not finish");
            Assert.Equal(Killed, changing.ExitCode);
            Assert.Equal(Killed, member.ExitCode);

            bool Hit(JsonElement e, string binary) => e.TryGetProperty("process_kprobe", out var k) && k.GetProperty("process").GetProperty("binary").GetString() == binary;
            foreach (var binary in new[] { changer, treeMember })
            {
                var process = agent.Events.WaitFor(e => Hit(e, binary), $"the kill of {binary}").GetProperty("process_kprobe").GetProperty("process");
                if (binary == changer)
                    Assert.Equal(changing.Id, process.GetProperty("pid").GetInt32());
                Assert.Contains("procFS", process.GetProperty("flags").GetString());
                // Descended from a pid namespace's init (pid 1, or sh in the new one), as Tetragon's /proc reader computes it.
                Assert.True(process.GetProperty("in_init_tree").GetBoolean());
                Assert.Contains("inInitTree", process.GetProperty("flags").GetString());
            }
        }
        finally
        {
            foreach (var p in new[] { changing, member })
                if (!p.HasExited)
                {
                    p.Kill(entireProcessTree: true);
                    p.WaitForExit();
                }
        }
    }
}
