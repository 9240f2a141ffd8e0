using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>`lsmhooks: socket_connect` with Override, which on this kernel (no BPF LSM) runs on cgroup
/// connect hooks: the connect fails in the kernel with the policy's errno, only for the chosen binary.</summary>
[Collection("kernel")]
public class ConnectDenyTests
{
    private static (int Code, string Stderr) Connect(string bash, int port) =>
        Run.Wait(bash, ["-c", $"exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected"]) is var r ? (r.Code, r.Stderr + r.Stdout) : default;

    [Theory]
    [InlineData(-1, "Operation not permitted")]
    [InlineData(-13, "Permission denied")]
    public void A_socket_connect_override_denies_the_chosen_binary_with_the_errno_and_lets_others_connect(int errno, string message)
    {
        using var dir = new TempDir();
        var victim = dir.CopyBinary("/usr/bin/bash", "victim-bash");
        var other = dir.CopyBinary("/usr/bin/bash", "other-bash");
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var policy = $"deny-connect{-errno}";
        using var agent = new AgentProcess(new Dictionary<string, string> { ["c.yaml"] = ConnectPolicies.Deny(policy, victim, port, errno) }, "--export-extensions");

        var denied = Connect(victim, port);
        Assert.NotEqual(0, denied.Code);
        Assert.Contains(message, denied.Stderr);
        Assert.DoesNotContain("connected", denied.Stderr);

        var allowed = Connect(other, port);
        Assert.Equal(0, allowed.Code);
        Assert.Contains("connected", allowed.Stderr);

        var ev = agent.Events.WaitFor(e => e.TryGetProperty("process_lsm", out var b) && b.GetProperty("policy_name").GetString() == policy, "process_lsm event");
        var body = ev.GetProperty("process_lsm");
        Assert.Equal("socket_connect", body.GetProperty("function_name").GetString());
        Assert.Equal("KPROBE_ACTION_OVERRIDE", body.GetProperty("action").GetString());
        Assert.True(body.GetProperty("securityagent").GetProperty("enforced").GetBoolean());
        var sa = body.GetProperty("args")[0].GetProperty("sockaddr_arg");
        Assert.Equal(("AF_INET", "127.0.0.1", port), (sa.GetProperty("family").GetString(), sa.GetProperty("addr").GetString(), sa.GetProperty("port").GetInt32()));
        Assert.Equal(victim, body.GetProperty("process").GetProperty("binary").GetString());
        Unit.JsonFormatTests.AssertValid(agent.Events.RawLines.First(l => l.Contains("process_lsm")));
    }
}
