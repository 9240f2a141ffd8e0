using System.Text.Json;
using SecurityAgent.Kernel;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>A generated_ftrace list end to end through the real agent in a kernel with kprobes (the VM lane): the
/// functions of tracefs available_filter_functions matching the pattern, resolved when the policy loads, each a kprobe
/// of the policy. The policy is scoped to a binary the test copied into its own directory.</summary>
[Collection("kernel")]
public class FtraceListVmTests
{
    [RequiresKernel(Mechanism.Kprobe)]
    public void Every_function_the_pattern_matches_is_hooked_and_posts_events_for_the_process_the_test_started()
    {
        using var dir = new TempDir();
        var cat = dir.CopyBinary("/usr/bin/cat", "ftrace-cat");
        File.WriteAllText(dir.File("in.txt"), "ftrace list\n");
        var policy = $"""
            apiVersion: cilium.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: ftrace-vfs
            spec:
              lists:
              - name: vfsrw
                type: generated_ftrace
                pattern: "^vfs_(read|write)$"
              kprobes:
              - call: "list:vfsrw"
                selectors:
                - matchBinaries:
                  - operator: In
                    values: ["{cat}"]
            """;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy });
        Assert.Contains("Policy ftrace-vfs loaded", agent.Stderr);

        var r = Run.Wait(cat, [dir.File("in.txt")]);
        Assert.Equal((0, "ftrace list\n"), (r.Code, r.Stdout));
        foreach (var function in new[] { "vfs_read", "vfs_write" })
        {
            var ev = agent.Events.WaitFor(e => e.TryGetProperty("process_kprobe", out var k) && k.GetProperty("policy_name").GetString() == "ftrace-vfs"
                && k.GetProperty("function_name").GetString() == function, $"{function} from the test's cat", TimeSpan.FromSeconds(30)).GetProperty("process_kprobe");
            Assert.Equal(cat, ev.GetProperty("process").GetProperty("binary").GetString());
        }
        Thread.Sleep(300);
        Assert.All(agent.Events.RawLines.Where(l => l.Contains("ftrace-vfs")).Select(l => JsonDocument.Parse(l).RootElement)
                .Where(e => e.TryGetProperty("process_kprobe", out _)).Select(e => e.GetProperty("process_kprobe")),
            k => Assert.Equal(cat, k.GetProperty("process").GetProperty("binary").GetString()));
    }
}
