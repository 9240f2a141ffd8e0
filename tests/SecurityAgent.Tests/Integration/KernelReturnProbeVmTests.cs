using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using SecurityAgent.Kernel;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>Return probes on kernel functions (a kretprobe beside the kprobe) and socket tracking, end to end through the
/// real agent in a kernel with kprobes (the VM lane): the event posted at return with the function's return value, and
/// TrackSock's attribution of later events on a sock to the process that made it, whichever task the kernel handles
/// them in. Every policy is scoped to a binary the test copied into its own directory, or to its own ports.</summary>
[Collection("kernel")]
public class KernelReturnProbeVmTests
{
    private static IEnumerable<JsonElement> Events(AgentProcess agent, string policy) =>
        agent.Events.RawLines.Where(l => l.Contains(policy)).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(e => e.TryGetProperty("process_kprobe", out var k) && k.GetProperty("policy_name").GetString() == policy)
            .Select(e => e.GetProperty("process_kprobe"));

    private static JsonElement WaitFor(AgentProcess agent, string policy, string what, Func<JsonElement, bool> also) =>
        agent.Events.WaitFor(e => e.TryGetProperty("process_kprobe", out var k) && k.GetProperty("policy_name").GetString() == policy && also(k),
            what, TimeSpan.FromSeconds(30)).GetProperty("process_kprobe");

    [RequiresKernel(Mechanism.Kprobe)]
    public void A_kretprobe_posts_one_event_at_return_with_the_functions_return_value_when_matchReturnArgs_pass()
    {
        using var dir = new TempDir();
        var cat = dir.CopyBinary("/usr/bin/cat", "kret-cat");
        File.WriteAllText(dir.File("present.txt"), "here\n");
        var policy = $"""
            apiVersion: cilium.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: kret-openat2
            spec:
              kprobes:
              - call: do_sys_openat2
                syscall: false
                return: true
                args:
                - index: 0
                  type: int
                returnArg:
                  index: 0
                  type: int
                selectors:
                - matchBinaries:
                  - operator: In
                    values: ["{cat}"]
                  matchReturnArgs:
                  - index: 0
                    operator: Equal
                    values: ["-2"]
            """;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy });
        Assert.Contains("Policy kret-openat2 loaded", agent.Stderr);

        var r = Run.Wait(cat, [dir.File("missing.txt"), dir.File("present.txt")]);
        Assert.Equal(1, r.Code);
        Assert.Contains("here", r.Stdout);
        var ev = WaitFor(agent, "kret-openat2", "the failed open's return event", _ => true);
        Assert.Equal("do_sys_openat2", ev.GetProperty("function_name").GetString());
        Assert.Equal(-100, ev.GetProperty("args")[0].GetProperty("int_arg").GetInt32()); // AT_FDCWD, as the call saw it
        Assert.Equal(-2, ev.GetProperty("return").GetProperty("int_arg").GetInt32()); // -ENOENT
        Assert.Equal("KPROBE_ACTION_POST", ev.GetProperty("return_action").GetString());
        Assert.Equal(cat, ev.GetProperty("process").GetProperty("binary").GetString());
        Thread.Sleep(500);
        // cat's successful opens (its libraries, present.txt) matched at entry; their return values (fds) did not.
        Assert.All(Events(agent, "kret-openat2"), e => Assert.Equal(-2, e.GetProperty("return").GetProperty("int_arg").GetInt32()));
        Unit.JsonFormatTests.AssertValid(agent.Events.RawLines.First(l => l.Contains("kret-openat2")));
    }

    [RequiresKernel(Mechanism.Kprobe)]
    public void TrackSock_on_the_sock_sk_alloc_returns_attributes_later_events_on_it_to_the_process_that_made_it()
    {
        using var dir = new TempDir();
        var tracked = dir.CopyBinary("/usr/bin/bash", "kret-tracked-bash");
        var plain = dir.CopyBinary("/usr/bin/bash", "kret-plain-bash");
        using var trackedListener = new TcpListener(IPAddress.Loopback, 0);
        using var plainListener = new TcpListener(IPAddress.Loopback, 0);
        trackedListener.Start();
        plainListener.Start();
        int trackedPort = ((IPEndPoint)trackedListener.LocalEndpoint).Port, plainPort = ((IPEndPoint)plainListener.LocalEndpoint).Port;
        var policy = $"""
            apiVersion: cilium.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: kret-socktrack
            spec:
              kprobes:
              - call: sk_alloc
                syscall: false
                return: true
                args:
                - index: 1
                  type: int
                returnArg:
                  index: 0
                  type: sock
                returnArgAction: TrackSock
                selectors:
                - matchBinaries:
                  - operator: In
                    values: ["{tracked}"]
                  matchArgs:
                  - index: 1
                    operator: Equal
                    values: ["2"]
              - call: tcp_rcv_established
                syscall: false
                args:
                - index: 0
                  type: sock
                selectors:
                - matchArgs:
                  - index: 0
                    operator: DPort
                    values: ["{trackedPort}", "{plainPort}"]
                  - index: 0
                    operator: DAddr
                    values: ["127.0.0.1"]
            """;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy });
        Assert.Contains("Policy kret-socktrack loaded", agent.Stderr);

        // Each bash connects, then waits in `sleep` (another program) while this process sends to it: the kernel
        // handles the segment arriving on bash's sock in the sender's softirq, not in bash.
        var procs = new[] { (tracked, trackedListener, trackedPort), (plain, plainListener, plainPort) }.Select(p =>
        {
            var run = Task.Run(() => Run.Wait(p.Item1, ["-c", $"exec 3<>/dev/tcp/127.0.0.1/{p.Item3} && sleep 3 && echo done"]));
            using var client = p.Item2.AcceptTcpClient();
            client.GetStream().Write("x"u8);
            return run;
        }).ToList();
        foreach (var run in procs)
            Assert.Contains("done", run.Result.Stdout);

        static JsonElement Sock(JsonElement k) => k.GetProperty("args")[0].GetProperty("sock_arg");
        var alloc = WaitFor(agent, "kret-socktrack", "sk_alloc's return event", k => k.GetProperty("function_name").GetString() == "sk_alloc");
        Assert.Equal(tracked, alloc.GetProperty("process").GetProperty("binary").GetString());
        var returned = alloc.GetProperty("return").GetProperty("sock_arg");
        Assert.Equal("AF_INET", returned.GetProperty("family").GetString());

        var onTracked = WaitFor(agent, "kret-socktrack", "the segment on the tracked sock",
            k => k.GetProperty("function_name").GetString() == "tcp_rcv_established" && Sock(k).GetProperty("dport").GetInt32() == trackedPort);
        Assert.Equal(returned.GetProperty("cookie").GetString(), Sock(onTracked).GetProperty("cookie").GetString()); // the same sock (a uint64: a JSON string)
        Assert.Equal(tracked, onTracked.GetProperty("process").GetProperty("binary").GetString());
        Assert.Equal(alloc.GetProperty("process").GetProperty("pid").GetInt32(), onTracked.GetProperty("process").GetProperty("pid").GetInt32());

        // The untracked sock's segment is the task's that handled it: not the bash that owns it.
        var onPlain = WaitFor(agent, "kret-socktrack", "the segment on the untracked sock",
            k => k.GetProperty("function_name").GetString() == "tcp_rcv_established" && Sock(k).GetProperty("dport").GetInt32() == plainPort);
        Assert.NotEqual(plain, onPlain.GetProperty("process").GetProperty("binary").GetString());
    }
}
