using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using SecurityAgent.Kubernetes;
using SecurityAgent.Policies;
using SecurityAgent.Sensors;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Unit;

/// <summary>A kernel side that records what it is asked to do, and fails when told to.</summary>
internal sealed class FakeLoader : IPolicyLoader
{
    private uint _next = 1;
    public List<string> Calls { get; } = [];
    public Func<PolicyPlan, Exception?> Fail { get; set; } = _ => null;

    public LoadedPolicy Load(PolicyPlan plan)
    {
        lock (Calls)
        {
            if (Fail(plan) is { } e) throw e;
            Calls.Add($"load {plan.Name} {(plan.Enforce ? "enforce" : "monitor")}");
            var l = new LoadedPolicy { Plan = plan };
            foreach (var _ in plan.Hooks) l.HookIds.Add(_next++);
            return l;
        }
    }

    public void Unload(LoadedPolicy loaded)
    {
        lock (Calls) Calls.Add($"unload {loaded.Plan.Name}");
    }

    public HookStats Stats(uint hookId) => new(10, 4, 4, 1, 0);

    public static PolicyManager Manager(FakeLoader loader)
    {
        var m = new PolicyManager();
        m.Attach(new PolicyValidator(PolicyValidatorTests.OurKernel, PolicyCompilerTests.Formats), loader, NullLogger.Instance);
        return m;
    }
}

public class PolicyManagerTests
{
    private readonly FakeLoader _loader = new();
    private readonly PolicyManager _m;
    private static readonly PolicyOrigin A = PolicyOrigin.File("/p/a.yaml"), B = PolicyOrigin.File("/p/b.yaml");

    public PolicyManagerTests() => _m = FakeLoader.Manager(_loader);

    private static string P(string name, string mode = "enforce", string path = "/etc/shadow") => TestPolicies.OpenatKill(name, "/tmp/x/cat", path, mode);

    [Fact]
    public void The_start_up_warm_up_policy_compiles_and_encodes_so_the_first_real_policy_finds_its_code_run_once()
    {
        Assert.True(PolicyManager.WarmUp(new PolicyValidator(PolicyValidatorTests.OurKernel, PolicyCompilerTests.Formats)));
    }

    [Fact]
    public void A_source_loads_its_policies_and_the_same_content_again_reloads_nothing()
    {
        var o = _m.Apply(A, P("one") + "\n---\n" + P("two"));
        Assert.True(o.Ok, string.Join("\n", o.Errors));
        Assert.Equal(["one", "two"], o.Loaded.Select(k => k.Name));
        Assert.Empty(o.Warnings); // openat names are resolved in the kernel: no spelling-evasion warning
        Assert.True(_m.Apply(A, "# a comment does not change the policies\n" + P("one") + "\n---\n" + P("two")).Ok);
        Assert.Equal(["load one enforce", "load two enforce"], _loader.Calls);
        Assert.Equal(2, _m.LoadedCount);
    }

    [Fact]
    public void A_new_version_is_attached_before_the_old_one_is_detached()
    {
        _m.Apply(A, P("one"));
        _m.Apply(A, P("one", path: "/etc/gshadow"));
        Assert.Equal(["load one enforce", "load one enforce", "unload one"], _loader.Calls);
    }

    [Fact]
    public void A_broken_new_version_keeps_the_last_good_one_loaded_and_says_why()
    {
        _m.Apply(A, P("one") + "\n---\n" + P("two"));
        var o = _m.Apply(A, P("one").Replace("operator: Prefix", "operator: Prefx") + "\n---\nkey: [unclosed\n");
        Assert.False(o.Ok);
        Assert.Contains(o.Errors, e => e.Contains("'Prefx' is not one of the allowed values"));
        Assert.Contains(o.Errors, e => e.Contains("YAML syntax error"));
        Assert.Equal(["load one enforce", "load two enforce"], _loader.Calls); // nothing unloaded: the syntax error may hide "two"
        Assert.Equal(2, _m.LoadedCount);
    }

    [Fact]
    public void A_version_the_kernel_refuses_keeps_the_old_one_and_an_exception_becomes_that_policys_error()
    {
        _m.Apply(A, P("one"));
        _loader.Fail = _ => new NullReferenceException("engine bug");
        var o = _m.Apply(A, P("one", path: "/etc/gshadow"));
        Assert.Equal("/p/a.yaml: policy one failed to load: engine bug; the previous version stays loaded", Assert.Single(o.Errors));
        Assert.Equal(["load one enforce"], _loader.Calls);
        Assert.Equal(1, _m.LoadedCount);
        Assert.Equal(o.Errors[0], Assert.Single(_m.List()).Error);
    }

    [Fact]
    public void A_name_another_source_holds_is_refused_clearly_and_loads_when_the_holder_goes()
    {
        _m.Apply(A, P("shared"));
        var crd = PolicyOrigin.Crd("uid-1", "crd/shared");
        var o = _m.Apply(crd, P("shared", "monitor"));
        Assert.Equal("crd/shared: policy shared is already loaded from /p/a.yaml; not loaded from here (it loads when that one goes)", Assert.Single(o.Errors));
        _m.Remove(A, "/p/a.yaml removed");
        Assert.Equal(["load shared enforce", "unload shared", "load shared monitor"], _loader.Calls);
        Assert.Equal("crd/shared", Assert.Single(_m.List()).Origin);
    }

    [Fact]
    public void A_namespaced_policy_never_takes_the_name_of_a_cluster_wide_one()
    {
        _m.Apply(A, P("same"));
        var o = _m.Apply(B, P("same").Replace("kind: TracingPolicy", "kind: TracingPolicyNamespaced").Replace("  name: same", "  name: same\n  namespace: team"));
        Assert.True(o.Ok, string.Join("\n", o.Errors));
        Assert.Equal(["same", "team/same"], _m.List().Select(p => p.Key.ToString()));
    }

    [Fact]
    public void Mode_disable_and_enable_are_runtime_switches_that_outlive_a_new_version()
    {
        _m.Apply(A, P("one"));
        Assert.True(_m.SetMode("one", enforce: false).Ok);
        _m.Apply(A, P("one", path: "/etc/gshadow"));
        Assert.True(_m.Disable("one").Ok);
        Assert.False(Assert.Single(_m.List()).Loaded);
        Assert.True(_m.Enable("one").Ok);
        Assert.Equal(["load one enforce", "load one monitor", "unload one", "load one monitor", "unload one", "unload one", "load one monitor"], _loader.Calls);
        Assert.Equal(PolicyFailure.NotFound, _m.SetMode("nope", true).Failure);
    }

    [Fact]
    public void Policies_a_source_no_longer_holds_are_unloaded_and_removing_the_source_unloads_the_rest()
    {
        _m.Apply(A, P("one") + "\n---\n" + P("two"));
        _m.Apply(A, P("two"));
        _m.Remove(A, "gone");
        Assert.Equal(["load one enforce", "load two enforce", "unload one", "unload two"], _loader.Calls);
        Assert.Empty(_m.List());
    }

    [Fact]
    public void Hook_counters_of_every_loaded_policy_come_from_one_place()
    {
        _m.Apply(A, P("one") + "\n---\n" + P("two"));
        var stats = _m.HookStats();
        Assert.Equal([("one", "syscalls/sys_enter_openat", "tracepoint"), ("two", "syscalls/sys_enter_openat", "tracepoint")],
            stats.Select(h => (h.Policy, h.Hook, h.Mechanism)).Order());
        Assert.All(stats, h => Assert.Equal(6UL, h.Stats.Filtered));
    }

    [Fact]
    public void Before_the_agent_is_up_and_after_it_stops_nothing_is_applied()
    {
        var m = new PolicyManager();
        Assert.Equal(PolicyFailure.NotReady, m.Apply(A, P("one")).Failure);
        _m.Apply(A, P("one"));
        _m.Detach();
        Assert.Equal(PolicyFailure.NotReady, _m.Apply(B, P("two")).Failure);
        Assert.Empty(_m.HookStats());
    }

    private static JsonElement Crd(string json) => JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 100_000 }).RootElement;

    [Fact]
    public void A_cluster_object_too_large_too_deep_or_of_an_unknown_version_or_kind_is_rejected_with_the_reason()
    {
        const string ok = """{"apiVersion":"securityagent.io/v1alpha1","kind":"TracingPolicy","metadata":{"name":"x","uid":"u"},"spec":{}}""";
        Assert.Null(CrdPolicySource.Problem(Crd(ok), "securityagent.io/v1alpha1", "TracingPolicy"));
        Assert.Equal("unknown apiVersion/kind 'securityagent.io/v1beta9/TracingPolicy' in the TracingPolicy collection (this agent reads securityagent.io/v1alpha1 TracingPolicy)",
            CrdPolicySource.Problem(Crd(ok.Replace("v1alpha1", "v1beta9")), "securityagent.io/v1alpha1", "TracingPolicy"));
        Assert.Contains("unknown apiVersion/kind", CrdPolicySource.Problem(Crd(ok.Replace("\"TracingPolicy\"", "\"Pod\"")), "securityagent.io/v1alpha1", "TracingPolicy"));
        var deep = ok.Replace("\"spec\":{}", "\"spec\":{\"uprobes\":" + new string('[', 5000) + new string(']', 5000) + "}");
        Assert.Equal($"the object nests deeper than {PolicyLimits.MaxDepth} levels (limit)", CrdPolicySource.Problem(Crd(deep), "securityagent.io/v1alpha1", "TracingPolicy"));
        var big = ok.Replace("\"spec\":{}", "\"spec\":{\"x\":\"" + new string('x', PolicyLimits.MaxBytes) + "\"}");
        Assert.StartsWith("the object is ", CrdPolicySource.Problem(Crd(big), "securityagent.io/v1alpha1", "TracingPolicy"));
    }
}
