using SecurityAgent.Kernel;
using SecurityAgent.Policies;

namespace SecurityAgent.Tests.Unit;

/// <summary>spec.enforcers + NotifyEnforcer (Tetragon's killer.yaml): enforced at the notifying hook when it is one of
/// the enforced syscalls (the signal from the hook, argError only where the syscall function can be overridden), else at
/// the thread's next enforced call by the enforcer program.</summary>
public sealed class EnforcerCompilerTests
{
    private static TracepointFormat? Formats(string subsys, string ev) => (subsys, ev) switch
    {
        ("raw_syscalls", "sys_enter") => new TracepointFormat(subsys, ev, 2, [.. Common(), new("id", "long", 8, 8, true), new("args", "unsigned long[6]", 16, 48, false)]),
        ("syscalls", "sys_enter_dup" or "sys_enter_openat" or "sys_enter_getppid") => new TracepointFormat(subsys, ev, 1,
            [.. Common(), new("__syscall_nr", "int", 8, 4, true), new("fildes", "unsigned int", 16, 8, false)]),
        _ => null,
    };

    private static List<TracepointField> Common() =>
    [
        new("common_type", "unsigned short", 0, 2, false), new("common_flags", "unsigned char", 2, 1, false),
        new("common_preempt_count", "unsigned char", 3, 1, false), new("common_pid", "int", 4, 4, true),
    ];

    private static ValidatedPolicy Check(string spec, KernelFeatures? kernel = null) =>
        Assert.Single(new PolicyValidator(kernel ?? PolicyValidatorTests.OurKernel, Formats)
            .ValidateText("p.yaml", "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: p\nspec:\n" + spec));

    private static string Killer(string actionArgs = "argError: -1\n        argSig: 9", string list = "[sys_dup, sys_dup2]", string inMap = "list:dups") => $"""
          lists:
          - name: dups
            type: syscalls
            values: {list}
          enforcers:
          - calls: ["list:dups"]
          tracepoints:
          - subsystem: raw_syscalls
            event: sys_enter
            args:
            - index: 4
              type: syscall64
            selectors:
            - matchArgs:
              - index: 0
                operator: InMap
                values: ["{inMap}"]
              matchBinaries:
              - operator: In
                values: ["/tmp/secagent-test/victim"]
              matchActions:
              - action: NotifyEnforcer
                {actionArgs}

        """;

    [Fact]
    public void A_killer_style_policy_signals_from_raw_syscalls_sys_enter_and_says_argError_is_not_applied_on_a_tracepoint()
    {
        var v = Check(Killer());
        Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
        var sel = Assert.Single(Assert.Single(v.Plan!.Hooks).Selectors);
        Assert.Equal(Actions.Post | Actions.Signal | Actions.NotifyEnforcer, sel.Actions);
        Assert.Equal((9, 0), (sel.Signal, sel.Error));
        var warning = Assert.Single(v.Warnings, x => x.Field.EndsWith("argError"));
        Assert.Equal((28, 19), (warning.Line, warning.Column));
        Assert.Contains("bpf_override_return", warning.Message);
        Assert.Contains("fmod_ret", warning.Message);
        var explain = PlanExplainer.Explain(v.Plan!);
        Assert.Contains("NotifyEnforcer, enforced at this hook (it is one of spec.enforcers' calls): signal 9 from the hook, before the call runs; argError is not applied", explain);
    }

    [Fact]
    public void ArgError_without_SIGKILL_on_a_tracepoint_is_refused_naming_the_missing_mechanisms()
    {
        var v = Check(Killer("argError: -1"));
        Assert.False(v.Ok);
        var e = Assert.Single(v.Diagnostics, x => x.Severity == Severity.Error);
        Assert.Equal(("spec.tracepoints[0].selectors[0].matchActions[0].argError", 28, 19), (e.Field, e.Line, e.Column));
        Assert.Contains("CONFIG_BPF_KPROBE_OVERRIDE", e.Message);
        Assert.Contains("fmod_ret on __x64_sys_*", e.Message);
    }

    [Fact]
    public void A_signal_alone_is_carried_with_the_NotifyEnforcer_action_name()
    {
        var sel = Assert.Single(Assert.Single(Check(Killer("argSig: 10")).Plan!.Hooks).Selectors);
        Assert.Equal((Actions.Post | Actions.Signal | Actions.NotifyEnforcer, 10), (sel.Actions, sel.Signal));
        Assert.Equal("KPROBE_ACTION_NOTIFYENFORCER", Export.PolicyArgs.ActionName(sel.Actions));
    }

    [Fact]
    public void A_raw_syscalls_selector_that_can_match_enforced_and_other_calls_is_refused_at_the_action()
    {
        var spec = Killer("argSig: 9").Replace("values: [\"list:dups\"]", "values: [\"list:dups\", \"2\"]");
        var v = Check(spec);
        var e = Assert.Single(v.Diagnostics, x => x.Severity == Severity.Error);
        Assert.Equal(("spec.tracepoints[0].selectors[0].matchActions[0].action", 27, 17), (e.Field, e.Line, e.Column));
        Assert.Contains("can match both spec.enforcers' calls and others", e.Message);
        var unconfined = Check(Killer("argSig: 9").Replace("    - matchArgs:\n      - index: 0\n        operator: InMap\n        values: [\"list:dups\"]\n      matchBinaries:", "    - matchBinaries:"));
        Assert.Contains(unconfined.Diagnostics, x => x.Severity == Severity.Error && x.Message.Contains("can match both spec.enforcers' calls and others"));
    }

    [Fact]
    public void A_raw_syscalls_selector_confined_to_other_calls_notifies_for_the_next_enforced_call()
    {
        var v = Check(Killer("argSig: 9", inMap: "2"));
        Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
        var sel = Assert.Single(Assert.Single(v.Plan!.Hooks).Selectors);
        Assert.Equal((Actions.Post | Actions.NotifyEnforcer | Actions.NotifyNext, 9), (sel.Actions, sel.Signal));
        Assert.Equal([32UL, 33UL], v.Plan!.EnforcedCalls);
    }

    [Fact]
    public void A_syscall_tracepoint_on_an_enforced_call_signals_at_once_and_one_on_another_call_notifies_for_the_next()
    {
        const string spec = """
              enforcers:
              - calls: ["sys_dup"]
              tracepoints:
              - subsystem: syscalls
                event: sys_enter_EVENT
                selectors:
                - matchBinaries:
                  - operator: In
                    values: ["/tmp/secagent-test/victim"]
                  matchActions:
                  - action: NotifyEnforcer
                    argSig: 9

            """;
        var ok = Check(spec.Replace("EVENT", "dup"));
        Assert.True(ok.Ok, string.Join("\n", ok.Diagnostics));
        Assert.Equal(Actions.Post | Actions.Signal | Actions.NotifyEnforcer, Assert.Single(Assert.Single(ok.Plan!.Hooks).Selectors).Actions);
        Assert.Empty(ok.Plan!.EnforcedCalls); // nothing for the enforcer program: no program is loaded for it
        var later = Check(spec.Replace("EVENT", "openat"));
        Assert.True(later.Ok, string.Join("\n", later.Diagnostics));
        var sel = Assert.Single(Assert.Single(later.Plan!.Hooks).Selectors);
        // The hook signals nothing itself: the enforcer program sends signal 9 at the thread's next dup.
        Assert.Equal((Actions.Post | Actions.NotifyEnforcer | Actions.NotifyNext, 9), (sel.Actions, sel.Signal));
        Assert.Equal([32UL], later.Plan!.EnforcedCalls);
        Assert.Contains("NotifyEnforcer: the thread is notified here, and the enforcer program (raw_syscalls/sys_enter) sends signal 9 at its next call among spec.enforcers' calls, before that call runs",
            PlanExplainer.Explain(later.Plan!));
        Assert.Equal("KPROBE_ACTION_NOTIFYENFORCER", Export.PolicyArgs.ActionName(sel.Actions));
    }

    private const string OpenThenDup = """
          enforcers:
          - calls: ["sys_dup"]
          tracepoints:
          - subsystem: syscalls
            event: sys_enter_openat
            selectors:
            - matchBinaries:
              - operator: In
                values: ["/tmp/secagent-test/victim"]
              matchActions:
              - action: NotifyEnforcer
                ACTION

        """;

    [Fact]
    public void ArgError_for_the_next_enforced_call_is_a_warning_with_SIGKILL_an_error_without_and_an_engine_gap_where_override_exists()
    {
        var killed = Check(OpenThenDup.Replace("ACTION", "argError: -1\n        argSig: 9"));
        Assert.True(killed.Ok, string.Join("\n", killed.Diagnostics));
        var w = Assert.Single(killed.Warnings, x => x.Field.EndsWith("argError"));
        Assert.Equal((17, 19), (w.Line, w.Column));
        Assert.Contains("a tracepoint cannot fail the call", w.Message);
        Assert.Equal(0, Assert.Single(Assert.Single(killed.Plan!.Hooks).Selectors).Error);

        var alone = Check(OpenThenDup.Replace("ACTION", "argError: -1"));
        var e = Assert.Single(alone.Diagnostics, x => x.Severity == Severity.Error);
        Assert.Equal(("spec.tracepoints[0].selectors[0].matchActions[0].argError", 17, 19), (e.Field, e.Line, e.Column));
        Assert.Contains("needs bpf_override_return", e.Message);

        var everywhere = Check(OpenThenDup.Replace("ACTION", "argError: -1"), KernelFeatures.Everything);
        Assert.Contains(everywhere.Diagnostics, x => x.Severity == Severity.Error && x.Field.EndsWith("argError")
            && x.Message.Contains("NotifyEnforcer argError at the thread's next enforced call") && x.Message.Contains("not carried by this build's kernel engine yet"));
    }

    [Fact]
    public void A_notification_for_a_later_call_with_matchParentBinaries_is_refused()
    {
        var v = Check(OpenThenDup.Replace("ACTION", "argSig: 9").Replace("    - matchBinaries:", "    - matchParentBinaries:\n      - operator: In\n        values: [\"/bin/sh\"]\n      matchBinaries:"));
        var e = Assert.Single(v.Diagnostics, x => x.Severity == Severity.Error);
        Assert.Equal("spec.tracepoints[0].selectors[0].matchParentBinaries", e.Field);
        Assert.Contains("decided in user space", e.Message);
    }

    [Fact]
    public void On_a_kernel_with_bpf_override_return_a_syscall_kprobe_fails_the_call_with_argError_and_signals()
    {
        const string spec = """
              enforcers:
              - calls: ["__x64_sys_dup"]
              kprobes:
              - call: sys_dup
                syscall: true
                selectors:
                - matchBinaries:
                  - operator: In
                    values: ["/tmp/secagent-test/victim"]
                  matchActions:
                  - action: NotifyEnforcer
                    argError: -13
                    argSig: 10

            """;
        var v = Check(spec, KernelFeatures.Everything);
        Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
        var hook = Assert.Single(v.Plan!.Hooks);
        Assert.Equal((Mechanism.Kprobe, "__x64_sys_dup"), (hook.Mechanism, hook.Name));
        var sel = Assert.Single(hook.Selectors);
        Assert.Equal((Actions.Post | Actions.Signal | Actions.Override | Actions.NotifyEnforcer, 10, -13), (sel.Actions, sel.Signal, sel.Error));
        Assert.Contains("signal 10 from the hook, before the call runs and the call fails with errno -13 (bpf_override_return)", PlanExplainer.Explain(v.Plan!));
        // Here (no kprobes): the hook runs on the syscall's tracepoint, where argError without SIGKILL cannot be honoured.
        Assert.Contains(Check(spec).Diagnostics, x => x.Severity == Severity.Error && x.Field.EndsWith("argError") && x.Message.Contains("bpf_override_return"));
    }

    [Fact]
    public void Enforcer_calls_that_are_not_syscalls_and_unknown_lists_are_refused_where_they_are_written()
    {
        var v = Check("""
              lists:
              - name: fns
                type: generated_ftrace
                pattern: "^vfs_"
              enforcers:
              - calls: ["security_file_open", "list:nope", "list:fns"]
              tracepoints:
              - subsystem: syscalls
                event: sys_enter_dup
                selectors:
                - matchActions:
                  - action: NotifyEnforcer
                    argSig: 9

            """, KernelFeatures.Everything);
        var errors = v.Diagnostics.Where(x => x.Severity == Severity.Error).ToList();
        Assert.Contains(errors, x => x.Field == "spec.enforcers[0].calls[0]" && x.Message.Contains("'security_file_open' is not a syscall"));
        Assert.Contains(errors, x => x.Field == "spec.enforcers[0].calls[1]" && x.Message.Contains("no list named 'nope'"));
        Assert.Contains(errors, x => x.Field == "spec.enforcers[0].calls[2]" && x.Message.Contains("a list of type generated_ftrace"));
    }

    [Fact]
    public void NotifyEnforcer_without_spec_enforcers_or_without_what_to_do_is_refused()
    {
        var noEnforcers = Check(Killer("argSig: 9").Replace("  enforcers:\n  - calls: [\"list:dups\"]\n", ""));
        Assert.Contains(noEnforcers.Diagnostics, x => x.Message == "action NotifyEnforcer needs spec.enforcers (the calls it denies)");
        var nothing = Check(Killer("rateLimit: \"1m\"").Replace("rateLimit: \"1m\"", ""));
        Assert.Contains(nothing.Diagnostics, x => x.Message == "action NotifyEnforcer needs argError or argSig (what the enforcer does)");
    }

    [Fact]
    public void CleanupEnforcerNotification_drops_the_policys_notification_and_needs_spec_enforcers()
    {
        var v = Check(OpenThenDup.Replace("ACTION", "argSig: 9") + """
              - subsystem: syscalls
                event: sys_enter_getppid
                selectors:
                - matchActions:
                  - action: CleanupEnforcerNotification

            """);
        Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
        var cleanup = Assert.Single(v.Plan!.Hooks[1].Selectors);
        Assert.Equal(Actions.Post | Actions.EnfCleanup, cleanup.Actions);
        Assert.Equal("KPROBE_ACTION_CLEANUPENFORCERNOTIFICATION", Export.PolicyArgs.ActionName(cleanup.Actions));
        var without = Check("""
              tracepoints:
              - subsystem: syscalls
                event: sys_enter_getppid
                selectors:
                - matchActions:
                  - action: CleanupEnforcerNotification

            """);
        var e = Assert.Single(without.Diagnostics, x => x.Severity == Severity.Error);
        Assert.Equal(("spec.tracepoints[0].selectors[0].matchActions[0].action", "action CleanupEnforcerNotification needs spec.enforcers (it drops this policy's NotifyEnforcer notifications)"), (e.Field, e.Message));
    }
}
