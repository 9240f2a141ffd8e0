using System.Text.Json;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>Return probes on syscalls (`return: true` on a syscall kprobe), on the real kernel: the enter decides the
/// entry selectors and keeps the event, the syscall's exit tracepoint reads the return value, runs matchReturnArgs and
/// matchReturnActions and posts one event with `return`. Policies are scoped to binaries copied into the test's temp
/// dir and to files inside it.</summary>
[Collection("kernel")]
public class ReturnProbeTests
{
    private static string Policy(string name, string binary, string dir, string returnActions) => $"""
        apiVersion: cilium.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: {name}
        spec:
          kprobes:
          - call: sys_openat
            syscall: true
            return: true
            args:
            - index: 1
              type: string
            - index: 2
              type: int
            returnArg:
              index: 0
              type: int
            selectors:
            - matchBinaries:
              - operator: In
                values: ["{binary}"]
              matchArgs:
              - index: 1
                operator: Prefix
                values: ["{dir}/"]
              matchReturnArgs:
              - index: 0
                operator: LessThan
                values: ["0"]
        {returnActions}
        """;

    private static JsonElement? Kprobe(JsonElement e, string policy) =>
        e.TryGetProperty("process_kprobe", out var k) && k.GetProperty("policy_name").GetString() == policy ? k : null;

    [Fact]
    public void A_failed_open_posts_one_event_with_its_return_value_and_arguments_and_a_successful_open_posts_none()
    {
        using var dir = new TempDir();
        var cat = dir.CopyBinary("/usr/bin/cat", "ret-cat");
        File.WriteAllText(dir.File("present.txt"), "here\n");
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = Policy("ret-open", cat, dir.Path, "") });
        Assert.Contains("Policy ret-open loaded", agent.Stderr);

        var r = Run.Wait(cat, [dir.File("missing.txt"), dir.File("present.txt")]);
        Assert.Equal(1, r.Code);
        Assert.Contains("here", r.Stdout);
        var ev = Kprobe(agent.Events.WaitFor(e => Kprobe(e, "ret-open") is not null, "the failed open's event"), "ret-open")!.Value;
        Assert.Equal(dir.File("missing.txt"), ev.GetProperty("args")[0].GetProperty("string_arg").GetString());
        Assert.Equal(-2, ev.GetProperty("return").GetProperty("int_arg").GetInt32()); // -ENOENT
        Assert.Equal("KPROBE_ACTION_POST", ev.GetProperty("action").GetString());
        Assert.Equal("KPROBE_ACTION_POST", ev.GetProperty("return_action").GetString());
        Assert.Equal("__x64_sys_openat", ev.GetProperty("function_name").GetString());
        Thread.Sleep(500);
        var all = agent.Events.Where(e => Kprobe(e, "ret-open") is not null);
        Assert.Single(all); // the successful open of present.txt matched at entry, and its return value did not
    }

    [Fact]
    public void Sigkill_on_a_return_match_kills_the_process_before_it_runs_its_next_line()
    {
        using var dir = new TempDir();
        var sh = dir.CopyBinary("/usr/bin/dash", "ret-sh");
        File.WriteAllText(dir.File("present.txt"), "here\n");
        using var agent = new AgentProcess(new Dictionary<string, string>
        {
            ["p.yaml"] = Policy("ret-kill", sh, dir.Path, "      matchReturnActions:\n      - action: Sigkill"),
        });
        Assert.Contains("Policy ret-kill loaded", agent.Stderr);

        // The shell opens both files itself (exec redirections): the successful open lets it go on, the failed one
        // is killed at the syscall's return, before `echo NEXT`.
        var r = Run.Wait(sh, ["-c", $"echo FIRST; exec 3< {dir.File("present.txt")}; echo SECOND; exec 4< {dir.File("missing.txt")}; echo NEXT"]);
        Assert.Equal(128 + 9, r.Code);
        Assert.Contains("SECOND", r.Stdout);
        Assert.DoesNotContain("NEXT", r.Stdout);
        var ev = Kprobe(agent.Events.WaitFor(e => Kprobe(e, "ret-kill") is not null, "the killed open's event"), "ret-kill")!.Value;
        Assert.Equal(dir.File("missing.txt"), ev.GetProperty("args")[0].GetProperty("string_arg").GetString());
        Assert.Equal(-2, ev.GetProperty("return").GetProperty("int_arg").GetInt32());
        Assert.Equal("KPROBE_ACTION_SIGKILL", ev.GetProperty("return_action").GetString());
    }

    [Fact]
    public void Write_with_sizeArgIndex_reports_exactly_the_bytes_written_and_read_with_returnCopy_reports_the_bytes_read()
    {
        using var dir = new TempDir();
        var sh = dir.CopyBinary("/usr/bin/dash", "buf-sh");
        var cat = dir.CopyBinary("/usr/bin/cat", "buf-cat");
        var content = "hello\0world\n"u8.ToArray();
        File.WriteAllBytes(dir.File("data.bin"), content);
        var policy = $"""
            apiVersion: cilium.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: buffers
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
                - index: 2
                  type: size_t
                selectors:
                - matchBinaries:
                  - operator: In
                    values: ["{sh}"]
              - call: sys_read
                syscall: true
                return: true
                args:
                - index: 0
                  type: int
                - index: 1
                  type: char_buf
                  returnCopy: true
                - index: 2
                  type: size_t
                returnArg:
                  index: 0
                  type: size_t
                selectors:
                - matchBinaries:
                  - operator: In
                    values: ["{cat}"]
                  matchReturnArgs:
                  - index: 0
                    operator: GreaterThan
                    values: ["0"]
            """;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy });
        Assert.Contains("Policy buffers loaded", agent.Stderr);

        var w = Run.Wait(sh, ["-c", "printf 'AB\\000CD'"]);
        Assert.Equal(0, w.Code);
        var written = Kprobe(agent.Events.WaitFor(e => Kprobe(e, "buffers") is { } k && k.GetProperty("function_name").GetString() == "__x64_sys_write", "the write's event"), "buffers")!.Value;
        Assert.Equal("AB\0CD"u8.ToArray(), written.GetProperty("args")[1].GetProperty("bytes_arg").GetBytesFromBase64());
        Assert.Equal("5", written.GetProperty("args")[2].GetProperty("size_arg").GetString());

        var r = Run.Wait(cat, [dir.File("data.bin")]);
        Assert.Equal(0, r.Code);
        // The loader's reads of the libraries are reported too; the file's read is the one with its bytes.
        var read = Kprobe(agent.Events.WaitFor(e => Kprobe(e, "buffers") is { } k && k.GetProperty("function_name").GetString() == "__x64_sys_read"
            && k.GetProperty("args")[1].TryGetProperty("bytes_arg", out var b) && b.GetBytesFromBase64().SequenceEqual(content), "the file read's event"), "buffers")!.Value;
        Assert.Equal(content.Length.ToString(), read.GetProperty("return").GetProperty("size_arg").GetString());
        Assert.Equal("KPROBE_ACTION_POST", read.GetProperty("return_action").GetString());
    }

    [Fact]
    public void More_return_hooks_on_one_call_than_the_kernel_keeps_are_counted_as_lost_not_dropped_silently()
    {
        using var dir = new TempDir();
        var cat = dir.CopyBinary("/usr/bin/cat", "ret-many-cat");
        // Five policies each keep the same call's event for its return: the kernel keeps Contract.RetMax (4) per call.
        var policies = Enumerable.Range(1, Events.Contract.RetMax + 1).ToDictionary(i => $"p{i}.yaml", i => Policy($"ret-many-{i}", cat, dir.Path, ""));
        using var agent = new AgentProcess(policies);
        Assert.True(agent.WaitForLog($"Policy ret-many-{Events.Contract.RetMax + 1} loaded", 30_000), agent.Stderr);

        Assert.Equal(1, Run.Wait(cat, [dir.File("missing.txt")]).Code);
        Assert.True(agent.WaitForLog("kernel_lost=1 ", 10_000), agent.Stderr);
        int Posted() => Enumerable.Range(1, Events.Contract.RetMax + 1).Count(i => agent.Events.Where(x => Kprobe(x, $"ret-many-{i}") is not null).Count > 0);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (Posted() < Events.Contract.RetMax && DateTime.UtcNow < deadline)
            Thread.Sleep(100);
        Thread.Sleep(500);
        Assert.Equal(Events.Contract.RetMax, Posted()); // one event per kept hook, the fifth counted above
    }
}
