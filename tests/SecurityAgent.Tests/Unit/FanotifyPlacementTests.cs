using SecurityAgent.Fanotify;
using SecurityAgent.Kernel;
using SecurityAgent.Policies;

namespace SecurityAgent.Tests.Unit;

/// <summary>Where a deny of a file open or an exec runs: BPF LSM where the kernel has it, fanotify permission events
/// where it does not, and what a fanotify decision can and cannot evaluate.</summary>
public class FanotifyPlacementTests
{
    private static readonly KernelFeatures OurKernel = PolicyValidatorTests.OurKernel;

    private static readonly KernelFeatures NoFanotify = OurKernel with
    {
        Mechanisms = OurKernel.Mechanisms.ToDictionary(m => m.Key, m => m.Key == Mechanism.FanotifyPerm ? Availability.No("not here") : m.Value),
    };

    internal static string Policy(string hook, string type, string op, string path, string action = "Override", string extra = "", string options = "") => $"""
        apiVersion: cilium.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: p
        spec:
        {options}  lsmhooks:
          - hook: {hook}
            args:
            - index: 0
              type: {type}
            selectors:
            - matchBinaries:
              - operator: In
                values: ["/tmp/t/cat"]
              matchArgs:
              - index: 0
                operator: {op}
                values: ["{path}"]
        {extra}      matchActions:
              - action: {action}
                argError: -1
        """;

    private static ValidatedPolicy Validate(string yaml, KernelFeatures f) =>
        Assert.Single(new PolicyValidator(f, tracefs: null).ValidateText("p.yaml", yaml));

    private static PolicyPlan Compile(string yaml, KernelFeatures f)
    {
        var v = Validate(yaml, f);
        Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
        return new PolicyCompiler(f, PolicyCompilerTests.Formats).Compile(v);
    }

    [Theory]
    [InlineData("file_open", "file", "FAN_OPEN_PERM")]
    [InlineData("file_permission", "file", "FAN_ACCESS_PERM")]
    [InlineData("bprm_check_security", "linux_binprm", "FAN_OPEN_EXEC_PERM")]
    public void An_lsm_deny_places_on_fanotify_without_bpf_lsm_and_on_bpf_lsm_where_the_kernel_has_it(string hook, string type, string fanEvent)
    {
        var yaml = Policy(hook, type, "Prefix", "/tmp/t/secret/");
        var here = Assert.Single(Compile(yaml, OurKernel).Hooks);
        Assert.Equal((Mechanism.FanotifyPerm, fanEvent, hook), (here.Mechanism, here.Target, here.Name));
        Assert.Contains("no BPF LSM", here.Why);
        Assert.Contains("fail-open", here.Why);
        Assert.Equal(Mechanism.Lsm, Assert.Single(Compile(yaml, KernelFeatures.Everything).Hooks).Mechanism);
    }

    [Fact]
    public void Explain_names_the_mechanism_why_and_what_is_marked()
    {
        var text = PlanExplainer.Explain(Compile(Policy("file_open", "file", "Equal", "/tmp/t/key"), OurKernel));
        Assert.Contains("mechanism: fanotify FAN_OPEN_PERM", text);
        Assert.Contains("marks the inode of /tmp/t/key", text);
        Assert.Contains("default on timeout: allow (fail-open)", text);
        Assert.Contains("decided by the agent's fanotify decision thread", text);
    }

    [Fact]
    public void A_deny_without_bpf_lsm_or_fanotify_is_refused_never_downgraded_to_monitoring()
    {
        var d = Assert.Single(Validate(Policy("file_open", "file", "Prefix", "/tmp/t/"), NoFanotify).Diagnostics);
        Assert.StartsWith("needs BPF LSM", d.Message);
    }

    [Fact]
    public void A_hook_that_only_posts_still_needs_bpf_lsm()
    {
        var d = Assert.Single(Validate(Policy("file_open", "file", "Prefix", "/tmp/t/", action: "Post"), OurKernel).Diagnostics);
        Assert.StartsWith("needs BPF LSM", d.Message);
    }

    [Fact]
    public void A_syscall_kprobe_asking_for_override_on_openat_denies_through_fanotify_and_matching_flags_is_refused()
    {
        const string yaml = """
            apiVersion: cilium.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: p
            spec:
              kprobes:
              - call: sys_openat
                syscall: true
                args:
                - index: 1
                  type: string
                - index: 2
                  type: int
                selectors:
                - matchArgs:
                  - index: 1
                    operator: Prefix
                    values: ["/tmp/t/"]
                  matchActions:
                  - action: Override
                    argError: -1
            """;
        var hook = Assert.Single(Compile(yaml, OurKernel).Hooks);
        Assert.Equal((HookKind.Kprobe, Mechanism.FanotifyPerm, "FAN_OPEN_PERM"), (hook.Kind, hook.Mechanism, hook.Target));
        var flags = yaml.Replace("""
                    values: ["/tmp/t/"]
            """, """
                    values: ["/tmp/t/"]
                  - index: 2
                    operator: Equal
                    values: [0]
            """);
        var d = Assert.Single(Validate(flags, OurKernel).Diagnostics);
        Assert.Contains("sees the opened file's path only", d.Message);
        Assert.Equal("spec.kprobes[0].selectors[0]", d.Field);
    }

    [Fact]
    public void Fail_closed_is_an_option_and_reaches_the_rules()
    {
        var plan = Compile(Policy("file_open", "file", "Prefix", "/tmp/t/", options: "  options:\n  - name: fail-mode\n    value: fail-closed\n"), OurKernel);
        Assert.True(plan.FailClosed);
        var (rule, _) = Assert.Single(FanotifyPolicies.Rules(plan, plan.Hooks[0], "h"));
        Assert.Equal((FailMode.Closed, RuleMode.Enforce), (rule.FailMode, rule.Mode));
        var bad = Validate(Policy("file_open", "file", "Prefix", "/tmp/t/", options: "  options:\n  - name: fail-mode\n    value: closed\n"), OurKernel);
        Assert.Contains(bad.Diagnostics, d => d.Message.StartsWith("fail-mode must be 'fail-open' or 'fail-closed'"));
    }

    [Fact]
    public void A_selector_becomes_a_rule_with_the_same_paths_binary_and_mode_and_monitor_mode_only_reports()
    {
        var plan = Compile(Policy("file_open", "file", "Equal", "/tmp/t/key"), OurKernel);
        var (rule, selector) = Assert.Single(FanotifyPolicies.Rules(plan, plan.Hooks[0], "h"));
        Assert.Equal((0, "h/0", "h", FileOperations.Open, RuleMode.Enforce, FailMode.Open), (selector, rule.Id, rule.Group, rule.Operations, rule.Mode, rule.FailMode));
        var path = Assert.Single(rule.Paths);
        Assert.Equal((StringOp.Equal, "/tmp/t/key"), (path.Op, Assert.Single(path.Values)));
        var process = Assert.IsType<ProcessSelector>(rule.Process);
        Assert.Equal((StringOp.Equal, "/tmp/t/cat"), (process.Binary!.Op, Assert.Single(process.Binary.Values)));

        var monitor = plan with { Enforce = false };
        Assert.Equal(RuleMode.Monitor, FanotifyPolicies.Rules(monitor, monitor.Hooks[0], "h")[0].Rule.Mode);
    }

    [Fact]
    public void An_errno_other_than_eperm_is_refused_on_fanotify_and_kept_on_bpf_lsm()
    {
        var yaml = Policy("file_open", "file", "Prefix", "/tmp/t/").Replace("argError: -1", "argError: -13");
        Assert.Contains(Validate(yaml, OurKernel).Diagnostics, d => d.Message.StartsWith("argError -13 on fanotify permission events"));
        Assert.Equal(-13, Compile(yaml, KernelFeatures.Everything).Hooks[0].Selectors[0].Error);
    }

    [Fact]
    public void Pod_scope_and_parent_binaries_on_fanotify_are_refused_as_not_implemented()
    {
        var scoped = Validate(Policy("file_open", "file", "Prefix", "/tmp/t/") + "\n  podSelector:\n    matchLabels:\n      app: x\n", OurKernel);
        Assert.Contains(scoped.Diagnostics, d => d.Message.Contains("fanotify") && d.Message.Contains("not implemented"));
        var parents = Validate(Policy("file_open", "file", "Prefix", "/tmp/t/",
            extra: "      matchParentBinaries:\n      - operator: In\n        values: [\"/bin/bash\"]\n"), OurKernel);
        Assert.Contains(parents.Diagnostics, d => d.Message.Contains("matchParentBinaries on fanotify"));
    }
}
