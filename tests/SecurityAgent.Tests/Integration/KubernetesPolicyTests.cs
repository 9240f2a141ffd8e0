using System.Text.Json;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>Policy CRDs applied, changed and deleted through an API server take effect on the real kernel.</summary>
[Collection("kernel")]
public class KubernetesPolicyTests
{
    /// <summary>What kubectl sends for a YAML manifest: the same document as typed JSON.</summary>
    private static string Crd(string yaml) =>
        SecurityAgent.Policies.YamlDocuments.Parse("manifest.yaml", yaml).Documents.Single().ToJson();

    /// <summary>How long a change may take to arrive before the test fails: generous, as these tests check that it arrives
    /// (how fast is the bench's to measure), and CI runs them beside other tests on two cores.</summary>
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(15);

    private static bool Within(TimeSpan t, Func<bool> condition) => Poll.Within(t, condition, everyMs: 50);

    [Fact]
    public async Task Policy_crds_applied_changed_and_deleted_take_effect_within_two_seconds_across_bookmarks_410_and_dropped_watches()
    {
        await using var api = new FakeKubeApiServer();
        using var dir = new TempDir();
        var victim = dir.CopyBinary("/usr/bin/cat", "crd-victim");
        File.WriteAllText(dir.File("secret"), "S\n");
        bool Killed() => Run.Wait(victim, [dir.File("secret")]).Code == 137;
        var enforce = Crd(TestPolicies.OpenatKill("crd-policy", victim, dir.File("secret")));
        var monitor = Crd(TestPolicies.OpenatKill("crd-policy", victim, dir.File("secret"), mode: "monitor"));
        using var agent = new AgentProcess("--kubeconfig", api.WriteKubeconfig(dir.Path));
        Assert.True(agent.WaitForLog("Watching policy CRDs"), agent.Stderr);

        api.Apply("tracingpolicies", enforce);
        Assert.True(Within(Settle, Killed), "applied CRD not enforced\n" + agent.Stderr);

        api.Apply("tracingpolicies", monitor);
        Assert.True(Within(Settle, () => !Killed()), "changed CRD not in effect");

        // Bookmarks move the watch on; then the history is compacted and every watch dropped: the agent must relist.
        api.Bookmark();
        api.Expire();
        api.DropWatches();
        api.Apply("tracingpolicies", enforce);
        Assert.True(Within(Settle, Killed), "change after 410 and dropped watches not in effect\n" + agent.Stderr);

        api.Delete("tracingpolicies", "crd-policy");
        Assert.True(Within(Settle, () => !Killed()), "deleted CRD still enforced");
        Assert.True(agent.WaitForLog("Policy crd-policy unloaded (deleted from the cluster)"));
    }

    [Fact]
    public async Task A_crd_that_fails_validation_is_reported_and_the_others_keep_running()
    {
        await using var api = new FakeKubeApiServer();
        using var dir = new TempDir();
        var victim = dir.CopyBinary("/usr/bin/cat", "crd-victim2");
        File.WriteAllText(dir.File("secret"), "S\n");
        using var agent = new AgentProcess("--kubeconfig", api.WriteKubeconfig(dir.Path));
        api.Apply("tracingpolicies", Crd(TestPolicies.OpenatKill("good-crd", victim, dir.File("secret"))));
        api.Apply("tracingpolicies", Crd(TestPolicies.OpenatKill("bad-crd", victim, "/x").Replace("operator: Prefix", "operator: Prefx")));
        Assert.True(agent.WaitForLog("Policy bad-crd from the cluster rejected"), agent.Stderr);
        Assert.Contains("is not one of the allowed values", agent.Stderr);
        Assert.True(Within(Settle, () => Run.Wait(victim, [dir.File("secret")]).Code == 137), "the good CRD is not enforced");
    }

    [Fact]
    public async Task Without_the_right_token_the_agent_backs_off_instead_of_hammering_the_api_server()
    {
        await using var api = new FakeKubeApiServer();
        using var dir = new TempDir();
        var config = api.WriteKubeconfig(dir.Path);
        File.WriteAllText(config, File.ReadAllText(config).Replace(api.Token, "wrong-token"));
        using var agent = new AgentProcess("--kubeconfig", config);
        Thread.Sleep(3000);
        // Exponential backoff from 200 ms: a handful of attempts per watched collection in 3 s, not hundreds.
        List<string> queries;
        lock (api.Queries) queries = api.Queries.ToList();
        var perCollection = queries.GroupBy(q => q.Split('?')[0]).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(3, perCollection.Count); // policies, namespaced policies, the node's pods
        Assert.All(perCollection, kv => Assert.InRange(kv.Value, 2, 7));
        Assert.Contains("Unauthorized", agent.Stderr);
    }
}
