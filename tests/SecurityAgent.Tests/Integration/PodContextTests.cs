using System.Text.Json;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>Pod context in events: processes in kubelet-shaped cgroups, pods served by an in-test API server.</summary>
[Collection("kernel")]
public class PodContextTests
{
    internal static string Pod(string ns, string name, string uid, string app, string replicaSet, string containerName, string containerId, string runtime) => $$$"""
        {"apiVersion":"v1","kind":"Pod",
         "metadata":{"name":"{{{name}}}","namespace":"{{{ns}}}","uid":"{{{uid}}}","labels":{"app":"{{{app}}}"},
                     "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"{{{replicaSet}}}","uid":"x"}]},
         "spec":{"nodeName":"node-1","containers":[{"name":"{{{containerName}}}","image":"registry.example/{{{app}}}:1.2"}]},
         "status":{"containerStatuses":[{"name":"{{{containerName}}}","containerID":"{{{runtime}}}://{{{containerId}}}",
                   "image":"registry.example/{{{app}}}:1.2","imageID":"registry.example/{{{app}}}@sha256:{{{containerId[..32]}}}"}]}}
        """;

    /// <summary>The tool's exec (not the shell's before it, which carries the marker among its arguments too).</summary>
    private static JsonElement ExecOf(AgentProcess agent, string marker) =>
        agent.Events.WaitFor(e => ExportedEvents.IsExecOf(e, marker) && e.GetProperty("process_exec").GetProperty("process").GetProperty("binary").GetString()!.EndsWith("pod-tool"),
            "exec of " + marker, TimeSpan.FromSeconds(15)).GetProperty("process_exec").GetProperty("process");

    [Fact]
    public async Task Exec_events_carry_the_pod_of_the_container_for_both_cgroup_drivers_and_a_late_pod_is_filled_in()
    {
        await using var api = new FakeKubeApiServer();
        using var cgroups = new KubeletCgroups();
        using var dir = new TempDir();
        var tool = dir.CopyBinary("/usr/bin/true", "pod-tool");
        string uidA = Guid.NewGuid().ToString(), uidB = Guid.NewGuid().ToString(), uidC = Guid.NewGuid().ToString();
        string cidA = KubeletCgroups.NewContainerId(), cidB = KubeletCgroups.NewContainerId(), cidC = KubeletCgroups.NewContainerId();
        var cgA = cgroups.Systemd(uidA, cidA);
        var cgB = cgroups.Cgroupfs(uidB, cidB);
        var cgC = cgroups.Systemd(uidC, cidC, runtime: "crio");
        api.ApplyPod(Pod("shop", "cart-7d9f8-abcde", uidA, "cart", "cart-7d9f8", "cart", cidA, "containerd"));
        api.ApplyPod(Pod("bank", "ledger-5c6b7-fghij", uidB, "ledger", "ledger-5c6b7", "ledger", cidB, "cri-o"));
        using var agent = new AgentProcess("--kubeconfig", api.WriteKubeconfig(dir.Path), "--node-name", "node-1");

        Assert.Equal(0, KubeletCgroups.RunIn(cgA, tool, "marker-a").Code);
        var a = ExecOf(agent, "marker-a");
        Assert.Equal(cidA, a.GetProperty("docker").GetString());
        var podA = a.GetProperty("pod");
        Assert.Equal(("shop", "cart-7d9f8-abcde", uidA), (podA.GetProperty("namespace").GetString(), podA.GetProperty("name").GetString(), podA.GetProperty("uid").GetString()));
        Assert.Equal("cart", podA.GetProperty("pod_labels").GetProperty("app").GetString());
        Assert.Equal(("cart", "Deployment"), (podA.GetProperty("workload").GetString(), podA.GetProperty("workload_kind").GetString())); // ReplicaSet cart-7d9f8 belongs to Deployment cart
        Assert.Equal(("containerd://" + cidA, "cart"), (podA.GetProperty("container").GetProperty("id").GetString(), podA.GetProperty("container").GetProperty("name").GetString()));
        Assert.Equal("registry.example/cart:1.2", podA.GetProperty("container").GetProperty("image").GetProperty("name").GetString());

        Assert.Equal(0, KubeletCgroups.RunIn(cgB, tool, "marker-b").Code);
        var podB = ExecOf(agent, "marker-b").GetProperty("pod");
        Assert.Equal(("bank", "ledger-5c6b7-fghij", "ledger"), (podB.GetProperty("namespace").GetString(), podB.GetProperty("name").GetString(), podB.GetProperty("container").GetProperty("name").GetString()));

        // A container whose pod the watch has not delivered yet: its event waits, and goes out complete.
        var started = DateTime.UtcNow;
        Assert.Equal(0, KubeletCgroups.RunIn(cgC, tool, "marker-c").Code);
        Thread.Sleep(800); // well inside the agent's 5 s wait for a pod, on a loaded machine too
        Assert.Empty(agent.Events.Where(e => ExportedEvents.IsExecOf(e, "marker-c") && e.GetProperty("process_exec").GetProperty("process").GetProperty("binary").GetString()!.EndsWith("pod-tool")));
        api.ApplyPod(Pod("late", "late-1a2b3-klmno", uidC, "late", "late-1a2b3", "late", cidC, "cri-o"));
        var podC = ExecOf(agent, "marker-c").GetProperty("pod");
        Assert.Equal("late-1a2b3-klmno", podC.GetProperty("name").GetString());
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(8));

        lock (api.Queries)
            Assert.Contains(api.Queries, q => q.StartsWith("/api/v1/pods") && q.Contains("fieldSelector=spec.nodeName%3Dnode-1"));
        foreach (var line in agent.Events.RawLines.Where(l => l.Contains("\"pod\"")).Take(20))
            Unit.JsonFormatTests.AssertValid(line);
    }

    [Fact]
    public async Task The_container_pid_is_the_pid_in_the_process_pid_namespace_1_for_the_init_of_a_new_one()
    {
        await using var api = new FakeKubeApiServer();
        using var cgroups = new KubeletCgroups();
        using var dir = new TempDir();
        var tool = dir.CopyBinary("/usr/bin/true", "pod-tool");
        string uid = Guid.NewGuid().ToString(), cid = KubeletCgroups.NewContainerId();
        var cg = cgroups.Systemd(uid, cid);
        api.ApplyPod(Pod("shop", "nspid-7d9f8-abcde", uid, "nspid", "nspid-7d9f8", "app", cid, "containerd"));
        using var agent = new AgentProcess("--kubeconfig", api.WriteKubeconfig(dir.Path), "--node-name", "node-1");

        // unshare forks the child that becomes init (pid 1) of the new pid namespace, which then execs the tool.
        Assert.Equal(0, KubeletCgroups.RunIn(cg, "/usr/bin/unshare", "--pid", "--fork", tool, "marker-init").Code);
        var init = ExecOf(agent, "marker-init");
        Assert.Equal(1u, init.GetProperty("pod").GetProperty("container").GetProperty("pid").GetUInt32());
        Assert.NotEqual(1u, init.GetProperty("pid").GetUInt32());

        // Without a namespace of its own, the container pid is the host pid.
        Assert.Equal(0, KubeletCgroups.RunIn(cg, tool, "marker-host").Code);
        var host = ExecOf(agent, "marker-host");
        Assert.Equal(host.GetProperty("pid").GetUInt32(), host.GetProperty("pod").GetProperty("container").GetProperty("pid").GetUInt32());
    }

    [Fact]
    public async Task A_pod_selector_policy_enforces_in_the_kernel_only_in_the_selected_pod()
    {
        await using var api = new FakeKubeApiServer();
        using var cgroups = new KubeletCgroups();
        using var dir = new TempDir();
        var cat = dir.CopyBinary("/usr/bin/cat", "scoped-cat");
        File.WriteAllText(dir.File("secret"), "S\n");
        string uidV = Guid.NewGuid().ToString(), uidO = Guid.NewGuid().ToString();
        string cidV = KubeletCgroups.NewContainerId(), cidO = KubeletCgroups.NewContainerId();
        var cgVictim = cgroups.Systemd(uidV, cidV);
        var cgOther = cgroups.Cgroupfs(uidO, cidO);
        api.ApplyPod(Pod("prod", "victim-1a-b", uidV, "victim", "victim-1a", "app", cidV, "containerd"));
        api.ApplyPod(Pod("prod", "other-2b-c", uidO, "other", "other-2b", "app", cidO, "containerd"));
        var policy = TestPolicies.OpenatKill("scoped-kill", cat, dir.File("secret")).Replace("spec:\n", "spec:\n  podSelector:\n    matchLabels:\n      app: victim\n");
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy }, "--kubeconfig", api.WriteKubeconfig(dir.Path), "--node-name", "node-1");

        bool KilledIn(string? cgroup) => (cgroup is null ? Run.Wait(cat, [dir.File("secret")]) : KubeletCgroups.RunIn(cgroup, cat, dir.File("secret"))).Code == 137;
        // The pods arrive after the policy loads (the agent's first list of them, then its scope refresh): up to 15 s.
        static bool Eventually(Func<bool> f) => Poll.Within(TimeSpan.FromSeconds(15), f, everyMs: 100);

        Assert.True(Eventually(() => KilledIn(cgVictim)), "not killed in the selected pod\n" + agent.Stderr);
        Assert.False(KilledIn(cgOther), "killed in a pod the selector does not select");
        Assert.False(KilledIn(null), "killed outside any pod");
        var ev = agent.Events.WaitFor(e => e.TryGetProperty("process_tracepoint", out var b) && b.GetProperty("policy_name").GetString() == "scoped-kill", "policy event");
        Assert.Equal("victim-1a-b", ev.GetProperty("process_tracepoint").GetProperty("process").GetProperty("pod").GetProperty("name").GetString());
    }
}
