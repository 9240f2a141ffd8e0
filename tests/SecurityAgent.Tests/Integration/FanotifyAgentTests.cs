using System.Diagnostics;
using System.Text.Json;
using SecurityAgent.Kernel;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>A host test of the fanotify deny path: skipped where the kernel lacks fanotify permission events, or has BPF LSM
/// (there the same policies deny through BPF LSM: <see cref="VmLaneTests"/>).</summary>
public sealed class FanotifyDenyFactAttribute : FactAttribute
{
    public FanotifyDenyFactAttribute()
    {
        if (RequiresKernelAttribute.Missing([Mechanism.FanotifyPerm]).Count > 0)
            Skip = "needs fanotify permission events (CONFIG_FANOTIFY_ACCESS_PERMISSIONS)";
        else if (RequiresKernelAttribute.Missing([Mechanism.Lsm]).Count == 0)
            Skip = "this kernel has BPF LSM: file and exec denies run there (the VM lane tests them)";
    }
}

/// <summary>The real agent with lsmhooks Override policies on this kernel (no BPF LSM): the deny runs on fanotify
/// permission events, and the events are the ones the BPF LSM path makes in the VM lane. Every policy names a binary
/// copied into the test's temp dir and files there, so nothing else on the machine is marked or denied.</summary>
[Collection("kernel")]
public class FanotifyAgentTests
{
    private static string FileOpen(string name, string binary, string op, string path, string mode = "enforce", string failMode = "fail-open") => $"""
        apiVersion: cilium.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: {name}
        spec:
          options:
          - name: policy-mode
            value: {mode}
          - name: fail-mode
            value: {failMode}
          lsmhooks:
          - hook: file_open
            args:
            - index: 0
              type: file
            selectors:
            - matchBinaries:
              - operator: In
                values: ["{binary}"]
              matchArgs:
              - index: 0
                operator: {op}
                values: ["{path}"]
              matchActions:
              - action: Override
                argError: -1
        """;

    private static JsonElement PolicyEvent(AgentProcess agent, string policy, Func<JsonElement, bool>? also = null) =>
        agent.Events.WaitFor(e => e.TryGetProperty("process_lsm", out var b) && b.GetProperty("policy_name").GetString() == policy && (also?.Invoke(b) ?? true),
            $"process_lsm of {policy}").GetProperty("process_lsm");

    private static (int Code, string Stdout, string Stderr) Cli(AgentProcess agent, params string[] args) =>
        Run.Wait("dotnet", [Repo.AgentDll, .. args, "--api-socket", agent.Socket]);

    [FanotifyDenyFact]
    public void A_file_open_override_without_bpf_lsm_makes_the_open_fail_with_eperm_through_fanotify_with_the_lsm_event()
    {
        using var dir = new TempDir();
        var cat = dir.CopyBinary("/usr/bin/cat", "fan-cat");
        File.WriteAllText(dir.File("denied.txt"), "DENIED\n");
        File.WriteAllText(dir.File("allowed.txt"), "ALLOWED\n");
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = FileOpen("fan-file-open", cat, "Equal", dir.File("denied.txt")) }, "--export-extensions");

        // One cat, both files: the denied open fails, the process continues to the next file.
        var r = Run.Wait(cat, [dir.File("denied.txt"), dir.File("allowed.txt")]);
        Assert.Equal(1, r.Code);
        Assert.Contains("Operation not permitted", r.Stderr);
        Assert.Equal("ALLOWED\n", r.Stdout);
        Assert.Equal("DENIED\n", Run.Wait("/usr/bin/cat", [dir.File("denied.txt")]).Stdout); // other binaries still open it

        var ev = PolicyEvent(agent, "fan-file-open");
        Assert.Equal("file_open", ev.GetProperty("function_name").GetString());
        Assert.Equal(dir.File("denied.txt"), ev.GetProperty("args")[0].GetProperty("file_arg").GetProperty("path").GetString());
        Assert.Equal("KPROBE_ACTION_OVERRIDE", ev.GetProperty("action").GetString());
        Assert.True(ev.GetProperty("securityagent").GetProperty("enforced").GetBoolean());
        Assert.Equal(cat, ev.GetProperty("process").GetProperty("binary").GetString());
        Assert.Equal("fanotify", ev.GetProperty("securityagent").GetProperty("decided_by").GetString());
        Assert.Single(agent.Events.Where(e => e.TryGetProperty("process_lsm", out _))); // the allowed file and the other cat: no event
        Unit.JsonFormatTests.AssertValid(agent.Events.RawLines.First(l => l.Contains("fan-file-open")));

        var list = JsonDocument.Parse(Cli(agent, "policy", "list", "-o", "json").Stdout).RootElement;
        var hook = list.EnumerateArray().Single(x => x.GetProperty("name").GetString() == "fan-file-open").GetProperty("hooks")[0];
        Assert.Equal(("fanotify", "FAN_OPEN_PERM"), (hook.GetProperty("mechanism").GetString(), hook.GetProperty("target").GetString()));
        Assert.Equal(1, hook.GetProperty("enforced").GetInt64());
        var fan = JsonDocument.Parse(Cli(agent, "status", "-o", "json").Stdout).RootElement.GetProperty("fanotify");
        Assert.Equal(1, fan.GetProperty("denied").GetInt64());
        Assert.Equal(0, fan.GetProperty("defaulted").GetProperty("timeout").GetInt64() + fan.GetProperty("defaulted").GetProperty("overload").GetInt64());
        Assert.Equal(1, fan.GetProperty("marks").GetInt64()); // the file's inode: no directory, mount or file system
    }

    [FanotifyDenyFact]
    public async Task A_pod_selector_policy_on_fanotify_denies_the_open_only_in_the_selected_pods_cgroup()
    {
        await using var api = new FakeKubeApiServer();
        using var cgroups = new KubeletCgroups();
        using var dir = new TempDir();
        var cat = dir.CopyBinary("/usr/bin/cat", "fan-scoped-cat");
        File.WriteAllText(dir.File("secret"), "S\n");
        string uidV = Guid.NewGuid().ToString(), uidO = Guid.NewGuid().ToString();
        string cidV = KubeletCgroups.NewContainerId(), cidO = KubeletCgroups.NewContainerId();
        var cgVictim = cgroups.Systemd(uidV, cidV);
        var cgOther = cgroups.Cgroupfs(uidO, cidO);
        api.ApplyPod(PodContextTests.Pod("prod", "victim-1a-b", uidV, "victim", "victim-1a", "app", cidV, "containerd"));
        api.ApplyPod(PodContextTests.Pod("prod", "other-2b-c", uidO, "other", "other-2b", "app", cidO, "containerd"));
        var policy = FileOpen("fan-scoped", cat, "Equal", dir.File("secret")).Replace("spec:\n", "spec:\n  podSelector:\n    matchLabels:\n      app: victim\n");
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy }, "--kubeconfig", api.WriteKubeconfig(dir.Path), "--node-name", "node-1", "--export-extensions");

        (int Code, string Stdout, string Stderr) CatIn(string? cgroup) => cgroup is null ? Run.Wait(cat, [dir.File("secret")]) : KubeletCgroups.RunIn(cgroup, cat, dir.File("secret"));
        // The pods arrive after the policy loads (the agent's first list of them, then its scope refresh): up to 15 s.
        static bool Eventually(Func<bool> f) => Poll.Within(TimeSpan.FromSeconds(15), f, everyMs: 100);

        // The pods arrive after the policy loads: the scope fills in when they do.
        Assert.True(Eventually(() => CatIn(cgVictim).Code == 1), "not denied in the selected pod\n" + agent.Stderr);
        var denied = CatIn(cgVictim);
        Assert.Equal((1, ""), (denied.Code, denied.Stdout));
        Assert.Contains("Operation not permitted", denied.Stderr);
        Assert.Equal((0, "S\n"), CatIn(cgOther) is var o ? (o.Code, o.Stdout) : default);
        Assert.Equal((0, "S\n"), CatIn(null) is var n ? (n.Code, n.Stdout) : default);
        var ev = PolicyEvent(agent, "fan-scoped");
        Assert.True(ev.GetProperty("securityagent").GetProperty("enforced").GetBoolean());
        Assert.Equal("victim-1a-b", ev.GetProperty("process").GetProperty("pod").GetProperty("name").GetString());
    }

    [FanotifyDenyFact]
    public void In_monitor_mode_the_open_succeeds_and_the_event_says_it_was_not_enforced()
    {
        using var dir = new TempDir();
        var cat = dir.CopyBinary("/usr/bin/cat", "fan-mon-cat");
        Directory.CreateDirectory(dir.File("secret"));
        File.WriteAllText(dir.File("secret/key"), "KEY\n");
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = FileOpen("fan-monitor", cat, "Prefix", dir.File("secret/"), mode: "monitor") }, "--export-extensions");

        Assert.Equal((0, "KEY\n"), Run.Wait(cat, [dir.File("secret/key")]) is var r ? (r.Code, r.Stdout) : default);
        var ev = PolicyEvent(agent, "fan-monitor");
        Assert.False(ev.GetProperty("securityagent").GetProperty("enforced").GetBoolean());
        Assert.Equal(dir.File("secret/key"), ev.GetProperty("args")[0].GetProperty("file_arg").GetProperty("path").GetString());
    }

    [FanotifyDenyFact]
    public void A_bprm_check_security_override_makes_the_exec_fail_and_the_shell_exit_126_instead_of_a_kill()
    {
        using var dir = new TempDir();
        var banned = dir.CopyBinary("/usr/bin/true", "fan-banned");
        var fine = dir.CopyBinary("/usr/bin/true", "fan-fine");
        var policy = $"""
            apiVersion: cilium.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: fan-exec
            spec:
              lsmhooks:
              - hook: bprm_check_security
                args:
                - index: 0
                  type: linux_binprm
                selectors:
                - matchArgs:
                  - index: 0
                    operator: Equal
                    values: ["{banned}"]
                  matchActions:
                  - action: Override
                    argError: -1
            """;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy }, "--export-extensions");

        var r = Run.Wait("/bin/bash", ["-c", banned]);
        Assert.Equal(126, r.Code);
        Assert.Contains("Operation not permitted", r.Stderr);
        Assert.Equal(0, Run.Wait("/bin/bash", ["-c", fine]).Code);

        var ev = PolicyEvent(agent, "fan-exec");
        Assert.Equal("bprm_check_security", ev.GetProperty("function_name").GetString());
        Assert.True(ev.GetProperty("securityagent").GetProperty("enforced").GetBoolean());
        Assert.Contains(banned, ev.GetProperty("args")[0].ToString());
    }

    [FanotifyDenyFact]
    public void An_open_waiting_for_a_stopped_agent_completes_when_the_agent_is_killed_and_marks_go_with_it()
    {
        using var dir = new TempDir();
        var cat = dir.CopyBinary("/usr/bin/cat", "fan-wait-cat");
        File.WriteAllText(dir.File("held.txt"), "HELD\n");
        // fail-closed: with the agent gone the kernel still allows, because the group's fd closed.
        var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = FileOpen("fan-held", cat, "Equal", dir.File("held.txt"), failMode: "fail-closed") }, "--export-extensions");
        try
        {
            Assert.Equal(1, Run.Wait(cat, [dir.File("held.txt")]).Code); // enforcing

            Assert.Equal(0, Run.Wait("kill", ["-STOP", agent.Pid.ToString()]).Code);
            using var opener = Run.Start(cat, [dir.File("held.txt")]);
            Assert.False(opener.WaitForExit(500), "the open should wait for the stopped agent");
            Assert.Equal("D", File.ReadAllText($"/proc/{opener.Id}/stat").Split(' ')[2]); // blocked in open(2)

            var sw = Stopwatch.StartNew();
            Assert.Equal(0, Run.Wait("kill", ["-KILL", agent.Pid.ToString()]).Code);
            Assert.True(opener.WaitForExit(5000), "the opener stayed blocked after the agent died");
            Assert.Equal((0, "HELD\n"), (opener.ExitCode, opener.StandardOutput.ReadToEnd()));
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5));
            Assert.Equal(0, Run.Wait(cat, [dir.File("held.txt")]).Code); // no mark outlives the agent
        }
        finally
        {
            Run.Wait("kill", ["-CONT", agent.Pid.ToString()]);
            agent.Dispose();
        }
    }

    [FanotifyDenyFact]
    public void Switching_the_mode_and_deleting_the_policy_change_the_fanotify_rules_and_leave_no_mark()
    {
        using var dir = new TempDir();
        var cat = dir.CopyBinary("/usr/bin/cat", "fan-switch-cat");
        File.WriteAllText(dir.File("f.txt"), "F\n");
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = FileOpen("fan-switch", cat, "Equal", dir.File("f.txt")) }, "--export-extensions");
        Assert.Equal(1, Run.Wait(cat, [dir.File("f.txt")]).Code);

        Assert.Equal(0, Cli(agent, "policy", "mode", "fan-switch", "monitor").Code);
        Assert.Equal(0, Run.Wait(cat, [dir.File("f.txt")]).Code);
        PolicyEvent(agent, "fan-switch", b => !b.GetProperty("securityagent").GetProperty("enforced").GetBoolean());
        Assert.Equal(0, Cli(agent, "policy", "mode", "fan-switch", "enforce").Code);
        Assert.Equal(1, Run.Wait(cat, [dir.File("f.txt")]).Code);

        File.Delete(agent.Dir.File("policies/p.yaml"));
        Assert.True(agent.WaitForLog("Policy fan-switch unloaded"), agent.Stderr);
        Assert.Equal((0, "F\n"), Run.Wait(cat, [dir.File("f.txt")]) is var r ? (r.Code, r.Stdout) : default);
        Assert.Equal(0, JsonDocument.Parse(Cli(agent, "status", "-o", "json").Stdout).RootElement.GetProperty("fanotify").GetProperty("marks").GetInt64());
    }
}
