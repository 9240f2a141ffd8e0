using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>Tetragon-style policies that now load on this kernel, run by the real agent against binaries copied into
/// the test's temp dir (nothing else on the machine can match).</summary>
[Collection("kernel")]
public class TetragonLanguageTests
{
    [Fact]
    public void A_kprobe_on_a_syscalls_list_enforces_on_every_listed_syscall_through_its_tracepoint()
    {
        using var dir = new TempDir();
        var mkdir = dir.CopyBinary("/usr/bin/mkdir", "victim-mkdir");
        var rmdir = dir.CopyBinary("/usr/bin/rmdir", "victim-rmdir");
        var other = dir.CopyBinary("/usr/bin/mkdir", "other-mkdir");
        var target = Path.Combine(dir.Path, "made");
        var policy = $"""
            apiVersion: cilium.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: dir-calls
            spec:
              lists:
              - name: dircalls
                type: syscalls
                values: ["sys_mkdir", "sys_mkdirat", "sys_rmdir"]
              kprobes:
              - call: "list:dircalls"
                selectors:
                - matchBinaries:
                  - operator: In
                    values: ["{mkdir}", "{rmdir}"]
                  matchActions:
                  - action: Sigkill
            """;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy });
        Assert.Contains("Policy dir-calls loaded", agent.Stderr);

        Assert.Equal(137, Run.Wait(mkdir, [target + "-by-victim"]).Code); // 128 + SIGKILL, on mkdir or mkdirat
        Assert.Equal(0, Run.Wait(other, [target]).Code);
        Assert.True(Directory.Exists(target));
        Assert.Equal(137, Run.Wait(rmdir, [target]).Code); // another syscall of the same list
        var functions = new HashSet<string>();
        agent.Events.WaitFor(e => e.TryGetProperty("process_kprobe", out var b) && b.GetProperty("policy_name").GetString() == "dir-calls"
            && functions.Add(b.GetProperty("function_name").GetString()!) && functions.Any(f => f.Contains("rmdir")) && functions.Any(f => f.Contains("mkdir")),
            "events from both syscalls");
    }

    [Fact]
    public void A_socket_connect_deny_declaring_the_socket_as_tetragon_does_loads_and_denies_the_chosen_binary()
    {
        using var dir = new TempDir();
        var victim = dir.CopyBinary("/usr/bin/bash", "victim-bash");
        var other = dir.CopyBinary("/usr/bin/bash", "other-bash");
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["c.yaml"] = ConnectPolicies.Deny("tetragon-connect", victim, port, -1, declareSocket: true) });
        Assert.Contains("Policy tetragon-connect loaded", agent.Stderr);

        string Connect(string bash) => Run.Wait(bash, ["-c", $"exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected"]) is var r ? r.Stdout + r.Stderr : "";
        Assert.Contains("Operation not permitted", Connect(victim));
        Assert.Contains("connected", Connect(other));

        var body = agent.Events.WaitFor(e => e.TryGetProperty("process_lsm", out var b) && b.GetProperty("policy_name").GetString() == "tetragon-connect", "process_lsm event")
            .GetProperty("process_lsm");
        var arg = Assert.Single(body.GetProperty("args").EnumerateArray()); // the socket is declared, not read: the destination only
        Assert.Equal(port, arg.GetProperty("sockaddr_arg").GetProperty("port").GetInt32());
    }

    [Fact]
    public async Task A_GetUrl_action_makes_the_agent_get_the_url_when_the_chosen_binary_matches()
    {
        using var dir = new TempDir();
        var victim = dir.CopyBinary("/usr/bin/cat", "victim-cat");
        var canary = dir.File("canary.txt");
        File.WriteAllText(canary, "x\n");
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var policy = $"""
            apiVersion: cilium.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: canary
            spec:
              kprobes:
              - call: sys_openat
                syscall: true
                args:
                - index: 1
                  type: string
                selectors:
                - matchBinaries:
                  - operator: In
                    values: ["{victim}"]
                  matchArgs:
                  - index: 1
                    operator: Equal
                    values: ["{canary}"]
                  matchActions:
                  - action: GetUrl
                    argUrl: "http://127.0.0.1:{port}/canary?token=t1"
            """;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy });
        Assert.Contains("Policy canary loaded", agent.Stderr);

        Assert.Equal(0, Run.Wait(victim, [canary]).Code);
        using var client = await listener.AcceptTcpClientAsync().WaitAsync(TimeSpan.FromSeconds(15));
        var buffer = new byte[2048];
        int read = await client.GetStream().ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.StartsWith("GET /canary?token=t1 HTTP/1.1", System.Text.Encoding.ASCII.GetString(buffer, 0, read));
        agent.Events.WaitFor(e => e.TryGetProperty("process_kprobe", out var b) && b.GetProperty("policy_name").GetString() == "canary", "the canary event");
    }

    private static (int Code, string Stdout, string Stderr) Secagent(params string[] args) => Run.Wait("dotnet", [Repo.AgentDll, .. args], timeoutMs: 30_000);

    private const string TcpConnect = """
        apiVersion: cilium.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: tcp-connect
        spec:
          kprobes:
          - call: tcp_connect
            syscall: false
            args:
            - index: 0
              type: sock
            return: true
            returnArg:
              index: 0
              type: sock
            selectors:
            - matchReturnArgs:
              - index: 0
                operator: Equal
                values: ["0"]
        """;

    [Fact]
    public void Validating_for_another_kernel_judges_its_mechanisms_and_exits_3_when_only_this_builds_engine_lacks_a_feature()
    {
        using var dir = new TempDir();
        var policy = dir.File("tcp.yaml");
        File.WriteAllText(policy, TcpConnect);
        var node = dir.File("node.json");
        File.WriteAllText(node, Secagent("probe", "--json").Stdout);

        var all = Secagent("policy", "validate", "--for-kernel", "all", policy);
        Assert.Equal(3, all.Code);
        Assert.Contains("unsupported: matchReturnArgs on a returned sock", all.Stdout);
        Assert.Contains("valid for kernel any", all.Stdout);

        var here = Secagent("policy", "validate", "--for-kernel", node, policy);
        Assert.Equal(1, here.Code); // this machine has no kprobes: the hook itself is refused, at its position
        Assert.Contains($"{policy}:7:11: spec.kprobes[0].call: needs kprobes or fentry to hook 'tcp_connect'", here.Stdout);

        File.WriteAllText(node, "{\"kernel\": \"6.1\"}");
        var bad = Secagent("policy", "validate", "--for-kernel", node, policy);
        Assert.Equal(1, bad.Code);
        Assert.Contains("not the output of `secagent probe --json`", bad.Stderr);
    }
}
