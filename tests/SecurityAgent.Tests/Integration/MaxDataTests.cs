using System.Text.Json;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>maxData on the real kernel (Tetragon's meaning): a syscall's char_buf with sizeArgIndex longer than the
/// event's 255 bytes comes whole, up to 327,360 bytes, in data records the agent joins to the event. The writer is dd
/// copied into the test's temp dir (the policy is scoped to it), writing a file of known bytes to /dev/null in one
/// write.</summary>
[Collection("kernel")]
public class MaxDataTests
{
    private static string Policy(string dd) => $"""
        apiVersion: cilium.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: maxdata
        spec:
          kprobes:
          - call: sys_write
            syscall: true
            args:
            - index: 0
              type: int
            - index: 1
              type: char_buf
              sizeArgIndex: 3
              maxData: true
            - index: 2
              type: size_t
            selectors:
            - matchBinaries:
              - operator: In
                values: ["{dd}"]
        """;

    private static byte[] Pattern(int n) => Enumerable.Range(0, n).Select(i => (byte)(i * 31 + i / 977)).ToArray();

    private static JsonElement Write(AgentProcess agent, int size) =>
        agent.Events.WaitFor(e => e.TryGetProperty("process_kprobe", out var k) && k.GetProperty("policy_name").GetString() == "maxdata"
            && k.GetProperty("args")[2].GetProperty("size_arg").GetString() == size.ToString(), $"the write of {size} bytes").GetProperty("process_kprobe");

    [Fact]
    public void A_write_of_100000_bytes_is_exported_whole_as_bytes_arg_and_one_of_400000_keeps_327360_bytes_with_orig_size()
    {
        using var dir = new TempDir();
        var dd = dir.CopyBinary("/usr/bin/dd", "md-dd");
        var small = Pattern(100_000);
        var large = Pattern(400_000);
        File.WriteAllBytes(dir.File("small.bin"), small);
        File.WriteAllBytes(dir.File("large.bin"), large);
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = Policy(dd) });
        Assert.Contains("Policy maxdata loaded", agent.Stderr);

        Assert.Equal(0, Run.Wait(dd, [$"if={dir.File("small.bin")}", "of=/dev/null", "bs=100000", "count=1", "status=none"]).Code);
        var ev = Write(agent, 100_000);
        Assert.Equal(small, ev.GetProperty("args")[1].GetProperty("bytes_arg").GetBytesFromBase64());

        Assert.Equal(0, Run.Wait(dd, [$"if={dir.File("large.bin")}", "of=/dev/null", "bs=400000", "count=1", "status=none"]).Code);
        var big = Write(agent, 400_000).GetProperty("args")[1].GetProperty("truncated_bytes_arg");
        Assert.Equal("400000", big.GetProperty("orig_size").GetString());
        Assert.Equal(large[..327_360], big.GetProperty("bytes_arg").GetBytesFromBase64());
    }

    [Fact]
    public void A_short_write_stays_in_the_event_alone_and_a_maxData_write_does_not_leave_its_buffer_to_the_next_event()
    {
        using var dir = new TempDir();
        var dd = dir.CopyBinary("/usr/bin/dd", "md-dd2");
        var mid = Pattern(5000);
        File.WriteAllBytes(dir.File("mid.bin"), mid);
        File.WriteAllBytes(dir.File("tiny.bin"), mid[..100]);
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = Policy(dd) });
        Assert.Contains("Policy maxdata loaded", agent.Stderr);

        Assert.Equal(0, Run.Wait(dd, [$"if={dir.File("mid.bin")}", "of=/dev/null", "bs=5000", "count=1", "status=none"]).Code);
        Assert.Equal(mid, Write(agent, 5000).GetProperty("args")[1].GetProperty("bytes_arg").GetBytesFromBase64());
        Assert.Equal(0, Run.Wait(dd, [$"if={dir.File("tiny.bin")}", "of=/dev/null", "bs=100", "count=1", "status=none"]).Code);
        Assert.Equal(mid[..100], Write(agent, 100).GetProperty("args")[1].GetProperty("bytes_arg").GetBytesFromBase64());
    }
}
