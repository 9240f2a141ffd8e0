using SecurityAgent.Kernel;
using SecurityAgent.Policies;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Unit;

/// <summary>The rules the validator and the compiler share (one message, in one place), and the warnings.</summary>
public class PolicyRuleTests
{
    private static IReadOnlyList<ValidatedPolicy> Check(string yaml, KernelFeatures? f = null) =>
        new PolicyValidator(f ?? PolicyValidatorTests.OurKernel, PolicyCompilerTests.Formats).ValidateText("p.yaml", yaml);

    private static string Openat(string selectors) => $"""
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
            selectors:
        {selectors}
        """;

    [Fact]
    public void Override_on_a_syscall_kprobe_is_refused_once_without_suggesting_a_kprobe_where_fanotify_cannot_deny()
    {
        var noFanotify = PolicyValidatorTests.OurKernel with
        {
            Mechanisms = PolicyValidatorTests.OurKernel.Mechanisms.ToDictionary(m => m.Key, m => m.Key == Mechanism.FanotifyPerm ? Availability.No("not here") : m.Value),
        };
        var yaml = TestPolicies.SyscallKprobeKill("p", "/x", "/y").Replace("- action: Sigkill", "- action: Override\n        argError: -1");
        var d = Assert.Single(Assert.Single(Check(yaml, noFanotify)).Diagnostics);
        Assert.Contains("Override cannot change a tracepoint's outcome (kprobe __x64_sys_openat (on the tracepoint syscalls/sys_enter_openat here))", d.Message);
        Assert.DoesNotContain("use an lsmhook or a kprobe", d.Message);
        // Without this kernel's tracepoint formats (validating elsewhere) the placement is known: the same one message.
        var elsewhere = Assert.Single(Assert.Single(new PolicyValidator(noFanotify, tracefs: null).ValidateText("p.yaml", yaml)).Diagnostics);
        Assert.Equal(d, elsewhere);
    }

    [Fact]
    public void Sigkill_and_capabilities_are_refused_only_where_socket_connect_runs_on_cgroup_hooks()
    {
        var yaml = ConnectPolicies.Deny("c", "/x", 1, -1).Replace("      - action: Override\n        argError: -1", "      - action: Sigkill")
            .Replace("      matchArgs:", "      matchCapabilities:\n      - operator: In\n        values: [\"CAP_NET_RAW\"]\n      matchArgs:");
        var here = Assert.Single(Check(yaml)).Diagnostics;
        Assert.Contains(here, d => d.Message.StartsWith("unsupported: Sigkill on lsmhook socket_connect (on cgroup connect hooks here)"));
        Assert.Contains(here, d => d.Message.StartsWith("unsupported: matchCapabilities on lsmhook socket_connect (on cgroup connect hooks here)"));
        // With BPF LSM the same hook signals and reads capabilities.
        var lsm = Assert.Single(Check(yaml, KernelFeatures.Everything));
        Assert.True(lsm.Ok, string.Join("\n", lsm.Diagnostics));
        Assert.Equal(Mechanism.Lsm, lsm.Plan!.Hooks[0].Mechanism);
    }

    [Fact]
    public void What_the_validator_compiles_for_a_kernel_the_compiler_compiles_to_the_same_plan()
    {
        var yaml = TestPolicies.OpenatKill("same", "/tmp/x/cat", "/etc/shadow");
        var v = Assert.Single(Check(yaml));
        var plan = new PolicyCompiler(PolicyValidatorTests.OurKernel, PolicyCompilerTests.Formats).Compile(v);
        Assert.Equal(PlanExplainer.Explain(v.Plan!), PlanExplainer.Explain(plan));
    }

    [Fact]
    public void A_matchargs_entry_is_resolved_by_one_rule_for_index_position_and_args()
    {
        // Tracepoint: index names the argument with that index, else a position in args; args: [N] names the N-th entry.
        var tp = TestPolicies.OpenatKill("r", "/x", "/y");
        Assert.True(Assert.Single(Check(tp.Replace("      - index: 6\n        operator: Prefix", "      - index: 0\n        operator: Prefix"))).Ok);
        Assert.True(Assert.Single(Check(tp.Replace("      - index: 6\n        operator: Prefix", "      - args: [0]\n        operator: Prefix"))).Ok);
        var d = Assert.Single(Assert.Single(Check(tp.Replace("      - index: 6\n        operator: Prefix", "      - index: 3\n        operator: Prefix"))).Diagnostics);
        Assert.Equal("no argument with index 3 in the hook's args (indexes: 6)", d.Message);
        var a = Assert.Single(Assert.Single(Check(tp.Replace("      - index: 6\n        operator: Prefix", "      - args: [2]\n        operator: Prefix"))).Diagnostics);
        Assert.Equal("spec.tracepoints[0].selectors[0].matchArgs[0].args[0]", a.Field);
    }

    [Fact]
    public void A_selector_split_by_a_stray_dash_warns_that_it_matches_every_call()
    {
        var yaml = Openat("""
            - matchBinaries:
              - operator: In
                values: ["/usr/bin/cat"]
            - matchActions:
              - action: Post
            """.Replace("\n", "\n    ").Insert(0, "    "));
        var r = Assert.Single(Check(yaml));
        Assert.True(r.Ok);
        var w = Assert.Single(r.Warnings);
        Assert.Equal(("spec.kprobes[0].selectors[1]", Severity.Warning, 16), (w.Field, w.Severity, w.Line));
        Assert.Contains("a stray '-' that split one selector into two?", w.Message);
        Assert.StartsWith("p.yaml:16:7: warning: ", w.ToString());
    }

    [Fact]
    public void A_hot_syscall_without_selectors_warns_and_a_rare_one_does_not()
    {
        var hot = Openat("").Replace("    selectors:\n", "");
        Assert.Contains("every openat of every process is posted", Assert.Single(Assert.Single(Check(hot)).Warnings).Message);
        var rare = hot.Replace("sys_openat", "sys_mount");
        Assert.Empty(Assert.Single(Check(rare)).Warnings);
    }

    [Fact]
    public void A_path_selector_on_a_name_the_kernel_resolves_does_not_warn_of_spelling_evasions()
    {
        // openat's file name is joined to the cwd/dirfd, folded and re-checked at exit in the kernel.
        var r = Assert.Single(Check(TestPolicies.OpenatKill("w", "/tmp/x/cat", "/etc/shadow")));
        Assert.True(r.Ok, string.Join("\n", r.Diagnostics));
        Assert.DoesNotContain(r.Warnings, w => w.Message.Contains("raw path string"));
        // A kernel-resolved path (BPF LSM file_open) does not warn.
        var lsm = "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: l\nspec:\n  lsmhooks:\n  - hook: file_open\n    args:\n    - index: 0\n      type: file\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: Prefix\n        values: [\"/etc/shadow\"]\n";
        var l = Assert.Single(Check(lsm, KernelFeatures.Everything));
        Assert.True(l.Ok, string.Join("\n", l.Diagnostics));
        Assert.Empty(l.Warnings);
    }

    [Fact]
    public void An_empty_file_warns_that_it_holds_no_policy()
    {
        foreach (var text in new[] { "", "# only a comment\n", "---\n" })
        {
            var r = Assert.Single(Check(text));
            Assert.Empty(r.Diagnostics);
            Assert.False(r.Ok);
            Assert.Equal("p.yaml:1:1: warning: the file holds no policy (it is empty or only comments)", Assert.Single(r.Warnings).ToString());
        }
    }

    [Fact]
    public void A_directory_is_validated_as_its_policy_files()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("b.yaml"), TestPolicies.OpenatKill("b", "/x", "/y"));
        File.WriteAllText(dir.File("a.yml"), TestPolicies.OpenatKill("a", "/x", "/y"));
        File.WriteAllText(dir.File("notes.txt"), "not a policy");
        Assert.Equal([dir.File("a.yml"), dir.File("b.yaml")], PolicyFiles.Expand([dir.Path]));
        var code = Run.Wait("dotnet", [Repo.AgentDll, "policy", "validate", dir.Path]);
        Assert.True(code.Code == 0, code.Stdout + code.Stderr);
        Assert.Contains("TracingPolicy a: ok", code.Stdout);
        Assert.Contains("TracingPolicy b: ok", code.Stdout);
    }

    [Fact]
    public void Only_a_path_string_the_kernel_does_not_resolve_warns_that_it_is_matched_as_spelled()
    {
        static string Hook(string syscall) => $$"""
            apiVersion: cilium.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: p
            spec:
              kprobes:
              - call: {{syscall}}
                syscall: true
                args:
                - index: 0
                  type: string
                selectors:
                - matchArgs:
                  - index: 0
                    operator: Prefix
                    values: ["/etc/"]
            """;
        var validator = new PolicyValidator(PolicyValidatorTests.OurKernel, (_, ev) => ev switch
        {
            "sys_enter_unlink" => PolicyCompilerTests.Syscall(ev, ("const char *", "pathname")),
            "sys_enter_pivot_root" => PolicyCompilerTests.Syscall(ev, ("const char *", "new_root"), ("const char *", "put_old")),
            _ => null,
        });
        IReadOnlyList<PolicyDiagnostic> Warnings(string syscall)
        {
            var r = Assert.Single(validator.ValidateText("p.yaml", Hook(syscall)));
            Assert.True(r.Ok, string.Join("\n", r.Diagnostics));
            Assert.Equal(Mechanism.Tracepoint, r.Plan!.Hooks[0].Mechanism);
            return r.Warnings;
        }
        // unlink's name is resolved in the kernel (and re-checked after the call): no warning.
        Assert.DoesNotContain(Warnings("sys_unlink"), w => w.Message.Contains("raw path string"));
        // pivot_root's names are not: the policy matches the string as the process spelled it, and says so.
        var w = Assert.Single(Warnings("sys_pivot_root"), w => w.Message.Contains("raw path string"));
        Assert.Contains("pivot_root", w.Message);
    }
}
