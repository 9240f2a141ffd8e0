using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>What "Agent ready" means: without policies, the lifecycle programs are attached and the policy programs load
/// in the background (status says so, a policy added meanwhile waits for them and then enforces); with policies at
/// start, those policies enforce. The real agent binary; policies kill only a binary copied into the test's temp dir.</summary>
[Collection("kernel")]
public class AgentStartupTests
{
    private static HttpClient Api(AgentProcess agent) => new(new SocketsHttpHandler
    {
        ConnectCallback = async (_, ct) =>
        {
            var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            await s.ConnectAsync(new UnixDomainSocketEndPoint(agent.Socket), ct);
            return new NetworkStream(s, true);
        },
    }) { Timeout = TimeSpan.FromSeconds(30) };

    private static async Task<string?> PolicyPrograms(HttpClient api) =>
        JsonDocument.Parse(await api.GetStringAsync("http://agent/v1/status")).RootElement.GetProperty("policy_programs").GetString();

    [Fact]
    public async Task Without_policies_the_agent_is_ready_before_the_policy_programs_load_and_a_policy_added_right_after_ready_enforces_once_they_are()
    {
        using var dir = new TempDir();
        var victim = dir.CopyBinary("/usr/bin/cat", "startup-victim");
        File.WriteAllText(dir.File("secret"), "S\n");
        using var agent = new AgentProcess();
        using var api = Api(agent);

        Assert.Contains("0 policies loaded", agent.Stderr);
        Assert.Contains(await PolicyPrograms(api), new[] { "loading", "loaded" });

        var add = await api.PostAsync("http://agent/v1/policies",
            new StringContent(TestPolicies.OpenatKill("startup-policy", victim, dir.File("secret")), Encoding.UTF8, "application/yaml"));
        Assert.True(add.IsSuccessStatusCode, await add.Content.ReadAsStringAsync());
        Assert.Equal("loaded", await PolicyPrograms(api));
        Assert.Equal(137, Run.Wait(victim, [dir.File("secret")]).Code);

        // Ready came first: the phases logged once the background load is over put its end after ready.
        Assert.True(agent.WaitForLog("Policy programs loaded"), agent.Stderr);
        var phases = Regex.Match(agent.Stderr, @"Policy programs loaded.*: (.*)").Groups[1].Value;
        int At(string phase) => int.Parse(Regex.Match(phases, $@"\b{phase} (\d+)").Groups[1].Value);
        Assert.True(At("ready") < At("policy-programs"), phases);
    }

    [Fact]
    public async Task With_a_policy_in_the_policy_dir_ready_means_it_enforces()
    {
        using var dir = new TempDir();
        var victim = dir.CopyBinary("/usr/bin/cat", "startup-victim2");
        File.WriteAllText(dir.File("secret"), "S\n");
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = TestPolicies.OpenatKill("startup-dir-policy", victim, dir.File("secret")) });

        Assert.Equal(137, Run.Wait(victim, [dir.File("secret")]).Code);
        Assert.Contains("1 policies loaded", agent.Stderr);
        using var api = Api(agent);
        Assert.Equal("loaded", await PolicyPrograms(api));
    }
}
