using System.Text.Json;
using System.Text.RegularExpressions;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>Tracing policies enforced by the real agent on this kernel, against binaries copied into the
/// test's temp dir: nothing else on the machine can match.</summary>
[Collection("kernel")]
public class PolicyEnforcementTests
{
    private static bool IsPolicyEvent(JsonElement e, string policy, out JsonElement body)
    {
        foreach (var type in new[] { "process_tracepoint", "process_kprobe", "process_lsm" })
            if (e.TryGetProperty(type, out body) && body.GetProperty("policy_name").GetString() == policy)
                return true;
        body = default;
        return false;
    }

    private sealed class Scene : IDisposable
    {
        public TempDir Dir { get; } = new();
        public string Victim { get; }
        public string Other { get; }
        public string Secret { get; }
        public string Plain { get; }

        public Scene()
        {
            Victim = Dir.CopyBinary("/usr/bin/cat", "victim-cat");
            Other = Dir.CopyBinary("/usr/bin/cat", "other-cat");
            Secret = Dir.File("secret.txt");
            Plain = Dir.File("plain.txt");
            File.WriteAllText(Secret, "TOP-SECRET\n");
            File.WriteAllText(Plain, "plain\n");
        }

        public void Dispose() => Dir.Dispose();
    }

    private static void AssertKillsOnlyTheMatchingBinaryAndPath(string policyYaml, string policy, string eventType, Scene s)
    {
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policyYaml }, "--export-extensions");
        Assert.Contains($"Policy {policy} loaded", agent.Stderr);

        var killed = Run.Wait(s.Victim, [s.Secret]);
        Assert.Equal(137, killed.Code);          // 128 + SIGKILL
        Assert.Equal("", killed.Stdout);         // killed before the open returned: no byte of the file
        Assert.Equal((0, "plain\n"), (Run.Wait(s.Victim, [s.Plain]).Code, Run.Wait(s.Victim, [s.Plain]).Stdout));
        Assert.Equal((0, "TOP-SECRET\n"), (Run.Wait(s.Other, [s.Secret]).Code, Run.Wait(s.Other, [s.Secret]).Stdout));

        var ev = agent.Events.WaitFor(e => IsPolicyEvent(e, policy, out _), "policy event");
        Thread.Sleep(500);
        var all = agent.Events.Where(e => IsPolicyEvent(e, policy, out _));
        Assert.Single(all);
        var body = ev.GetProperty(eventType);
        Assert.Equal("KPROBE_ACTION_SIGKILL", body.GetProperty("action").GetString());
        Assert.True(body.GetProperty("securityagent").GetProperty("enforced").GetBoolean());
        Assert.Equal("kernel", body.GetProperty("securityagent").GetProperty("decided_by").GetString());
        Assert.Equal(s.Victim, body.GetProperty("process").GetProperty("binary").GetString());
        Assert.Equal(s.Secret, body.GetProperty("args")[0].GetProperty("string_arg").GetString());
        var exit = agent.Events.WaitFor(e => e.TryGetProperty("process_exit", out var x)
            && x.GetProperty("process").GetProperty("binary").GetString() == s.Victim && x.TryGetProperty("signal", out _), "exit of the victim");
        Assert.Equal("SIGKILL", exit.GetProperty("process_exit").GetProperty("signal").GetString());
        foreach (var line in agent.Events.RawLines)
            Unit.JsonFormatTests.AssertValid(line);
    }

    [Fact]
    public void A_sigkill_policy_on_openat_kills_the_matching_binary_before_it_reads_and_leaves_others_alone()
    {
        using var s = new Scene();
        AssertKillsOnlyTheMatchingBinaryAndPath(TestPolicies.OpenatKill("tp-kill", s.Victim, s.Secret), "tp-kill", "process_tracepoint", s);
    }

    [Fact]
    public void A_syscall_kprobe_behaves_identically_on_this_kernel_through_the_syscall_tracepoint()
    {
        using var s = new Scene();
        AssertKillsOnlyTheMatchingBinaryAndPath(TestPolicies.SyscallKprobeKill("kp-kill", s.Victim, s.Secret), "kp-kill", "process_kprobe", s);
    }

    [Fact]
    public void The_same_policy_in_monitor_mode_kills_nothing_and_reports_what_it_would_have_done()
    {
        using var s = new Scene();
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = TestPolicies.OpenatKill("tp-monitor", s.Victim, s.Secret, mode: "monitor") }, "--export-extensions");

        var r = Run.Wait(s.Victim, [s.Secret]);
        Assert.Equal((0, "TOP-SECRET\n"), (r.Code, r.Stdout));

        var body = agent.Events.WaitFor(e => IsPolicyEvent(e, "tp-monitor", out _), "monitor event").GetProperty("process_tracepoint");
        Assert.Equal("KPROBE_ACTION_SIGKILL", body.GetProperty("action").GetString());
        Assert.Equal("monitor", body.GetProperty("securityagent").GetProperty("policy_mode").GetString());
        Assert.False(body.GetProperty("securityagent").GetProperty("enforced").GetBoolean());
    }

    [Fact]
    public void Two_hundred_thousand_non_matching_opens_by_a_matched_binary_stay_in_the_kernel()
    {
        using var s = new Scene();
        var loop = s.Dir.CopyBinary(Repo.File_("build", "bench", "openloop"), "openloop");
        var policy = TestPolicies.OpenatKill("tp-filter", loop, s.Secret);
        string stderr;
        List<JsonElement> events;
        using (var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy }))
        {
            var r = Run.Wait(loop, [s.Plain, "200000"]);
            Assert.Equal((0, "200000\n"), (r.Code, r.Stdout));
            Thread.Sleep(300);
            events = agent.Events.Where(e => IsPolicyEvent(e, "tp-filter", out _));
            agent.Terminate();
            stderr = agent.Stderr;
        }
        Assert.Empty(events);
        var m = Regex.Match(stderr, @"Policy tp-filter hook syscalls/sys_enter_openat: seen=(\d+) matched=(\d+) filtered=(\d+) posted=(\d+) enforced=(\d+)");
        Assert.True(m.Success, "no kernel counters in the agent log:\n" + stderr);
        long seen = long.Parse(m.Groups[1].Value), matched = long.Parse(m.Groups[2].Value), filtered = long.Parse(m.Groups[3].Value);
        Assert.True(seen >= 200_000, $"seen={seen}");
        Assert.Equal(0, matched);
        Assert.Equal(seen, filtered);
        Assert.Equal("0", m.Groups[4].Value);
    }

    [Fact]
    public void The_userspace_filter_debug_option_posts_every_call_from_the_kernel_and_filters_in_user_space()
    {
        using var s = new Scene();
        var stats = s.Dir.File("stats.json");
        var policy = TestPolicies.OpenatKill("tp-userspace", s.Victim, s.Secret);
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy }, "--debug-userspace-filter", "true", "--stats-file", stats);
        Assert.True(agent.WaitForLog("selectors run in user space"), agent.Stderr);

        Assert.Equal((0, "TOP-SECRET\n"), (Run.Wait(s.Victim, [s.Secret]).Code, Run.Wait(s.Victim, [s.Secret]).Stdout)); // never enforced
        Run.Wait(s.Other, [s.Secret]);
        var body = agent.Events.WaitFor(e => IsPolicyEvent(e, "tp-userspace", out _), "event").GetProperty("process_tracepoint");
        Assert.Equal(s.Victim, body.GetProperty("process").GetProperty("binary").GetString());
        Thread.Sleep(1200);
        Assert.All(agent.Events.Where(e => IsPolicyEvent(e, "tp-userspace", out _)),
            e => Assert.Equal(s.Victim, e.GetProperty("process_tracepoint").GetProperty("process").GetProperty("binary").GetString()));
        var st = JsonDocument.Parse(File.ReadAllText(stats)).RootElement;
        Assert.True(st.GetProperty("user_space_filtered").GetInt64() > 0);
        var hook = st.GetProperty("hooks")[0];
        Assert.Equal(hook.GetProperty("seen").GetInt64(), hook.GetProperty("matched").GetInt64()); // the kernel filtered nothing
    }

    [Fact]
    public void A_rate_limited_post_reports_once_per_window_and_counts_the_rest_in_the_kernel()
    {
        using var s = new Scene();
        var policy = TestPolicies.OpenatKill("tp-rate", s.Victim, s.Secret, action: "Post\n        rateLimit: 1m");
        string stderr;
        using (var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy }))
        {
            for (int i = 0; i < 3; i++)
                Assert.Equal(0, Run.Wait(s.Victim, [s.Secret, s.Secret]).Code); // one process, two opens each
            int Posted() => agent.Events.Where(e => IsPolicyEvent(e, "tp-rate", out _)).Count;
            for (var deadline = DateTime.UtcNow.AddSeconds(10); Posted() < 3 && DateTime.UtcNow < deadline; ) Thread.Sleep(100);
            Thread.Sleep(500); // room for a fourth, which must not come
            Assert.Equal(3, Posted()); // once per process and minute
            agent.Terminate();
            stderr = agent.Stderr;
        }
        Assert.Matches(@"Policy tp-rate hook syscalls/sys_enter_openat: seen=\d+ matched=6 filtered=\d+ posted=3 enforced=0 rate_limited=3", stderr);
    }

    [Fact]
    public void Matching_on_the_parent_binary_is_decided_in_user_space_and_kills_through_a_pidfd()
    {
        using var s = new Scene();
        var parentSh = s.Dir.CopyBinary("/usr/bin/dash", "parent-sh");
        var childSh = s.Dir.CopyBinary("/usr/bin/dash", "child-sh");
        var policy = TestPolicies.OpenatKill("tp-parent", childSh, s.Secret).Replace("""
              matchActions:
        """, """
              matchParentBinaries:
              - operator: In
                values: ["PARENT"]
              matchActions:
        """.Replace("PARENT", parentSh));
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy }, "--export-extensions");

        // child-sh opens the secret (matched in the kernel), then waits: user space must kill it.
        var r = Run.Wait(parentSh, ["-c", $"{childSh} -c 'exec 3< {s.Secret}; sleep 10; echo survived'"], timeoutMs: 20_000);
        Assert.DoesNotContain("survived", r.Stdout);

        var body = agent.Events.WaitFor(e => IsPolicyEvent(e, "tp-parent", out _), "parent-rule event").GetProperty("process_tracepoint");
        Assert.Equal("user_space", body.GetProperty("securityagent").GetProperty("decided_by").GetString());
        Assert.True(body.GetProperty("securityagent").GetProperty("enforced").GetBoolean());
        Assert.Equal(parentSh, body.GetProperty("parent").GetProperty("binary").GetString());

        // The same child under another parent is not matched.
        var other = Run.Wait("/bin/sh", ["-c", $"{childSh} -c 'exec 3< {s.Secret}; echo survived'"]);
        Assert.Contains("survived", other.Stdout);
    }

    [Fact]
    public void After_user_space_decides_the_next_matching_operation_is_enforced_in_the_kernel_from_the_deny_set()
    {
        using var s = new Scene();
        var parentSh = s.Dir.CopyBinary("/usr/bin/dash", "parent-sh");
        var child = s.Dir.CopyBinary("/usr/bin/bash", "child-bash");
        var policy = TestPolicies.OpenatKill("tp-deny", child, s.Secret, action: "Signal\n        argSig: 10").Replace("""
              matchActions:
        """, $"""
              matchParentBinaries:
              - operator: In
                values: ["{parentSh}"]
              matchActions:
        """);
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy }, "--export-extensions");

        // SIGUSR1 is trapped, so the child survives both signals and reports them.
        var script = $"trap 'echo usr1' USR1; exec 3< {s.Secret}; sleep 3; exec 4< {s.Secret}; sleep 1; echo done";
        var r = Run.Wait(parentSh, ["-c", $"{child} -c \"{script}\""], timeoutMs: 20_000);
        Assert.Contains("done", r.Stdout);
        Assert.Equal(2, r.Stdout.Split('\n').Count(l => l == "usr1"));

        var events = new List<JsonElement>();
        for (int i = 0; i < 50 && events.Count < 2; i++, Thread.Sleep(100))
            events = agent.Events.Where(e => IsPolicyEvent(e, "tp-deny", out _));
        Assert.Equal(2, events.Count);
        var first = events[0].GetProperty("process_tracepoint");
        var second = events[1].GetProperty("process_tracepoint");
        Assert.Equal(("user_space", true), (first.GetProperty("securityagent").GetProperty("decided_by").GetString(), first.GetProperty("securityagent").GetProperty("enforced").GetBoolean()));
        Assert.Equal(("kernel_deny_set", true), (second.GetProperty("securityagent").GetProperty("decided_by").GetString(), second.GetProperty("securityagent").GetProperty("enforced").GetBoolean()));
        Assert.Equal("KPROBE_ACTION_SIGNAL", second.GetProperty("action").GetString());
    }

    [Fact]
    public void Policies_hot_reload_add_change_and_remove_without_restarting_and_a_broken_edit_keeps_the_good_version()
    {
        using var s = new Scene();
        using var agent = new AgentProcess();
        var file = Path.Combine(agent.Dir.File("policies"), "hot.yaml");
        bool Killed() => Run.Wait(s.Victim, [s.Secret]).Code == 137;
        // Up to 15 s: the first policy waits for the background program loads on a loaded machine; the bench measures how fast.
        static bool Eventually(Func<bool> f) => Poll.Within(TimeSpan.FromSeconds(15), f, everyMs: 100);

        File.WriteAllText(file, TestPolicies.OpenatKill("hot", s.Victim, s.Secret));
        Assert.True(Eventually(Killed), "added policy did not take effect within 15 s:\n" + agent.Stderr);

        File.WriteAllText(file, TestPolicies.OpenatKill("hot", s.Victim, s.Secret) + "\n  bogus: [");
        Thread.Sleep(1200);
        Assert.True(Killed(), "a broken edit unloaded the good version");
        Assert.True(agent.WaitForLog("last good version stays loaded"), agent.Stderr);

        File.WriteAllText(file, TestPolicies.OpenatKill("hot", s.Victim, s.Secret, mode: "monitor"));
        Assert.True(Eventually(() => !Killed()), "switching to monitor did not take effect:\n" + agent.Stderr);

        File.WriteAllText(file, TestPolicies.OpenatKill("hot", s.Victim, s.Secret));
        Assert.True(Eventually(Killed));
        File.Delete(file);
        Assert.True(Eventually(() => !Killed()), "removed policy still enforces");
        Assert.True(agent.WaitForLog("Policy hot unloaded"), agent.Stderr);
    }
}
