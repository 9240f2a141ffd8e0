using SecurityAgent.Kernel;
using SecurityAgent.Policies;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Unit;

/// <summary>A generated_ftrace list (Tetragon's list-generated-ftrace): on the node, a kprobe on each kernel function of
/// tracefs available_filter_functions the pattern matches (module functions left out, each name once, at most
/// <see cref="FtraceFunctions.MaxFunctions"/>); for another kernel, resolved later on the node, and said so.</summary>
public sealed class FtraceListTests : IDisposable
{
    private readonly TempDir _dir = new();

    private const string Ksys = """
          lists:
          - name: ksys
            type: generated_ftrace
            pattern: "^ksys_*"
          kprobes:
          - call: "list:ksys"
            selectors:
            - matchBinaries:
              - operator: In
                values: ["/tmp/secagent-test/kill"]

        """;

    private string FilterFunctions(params string[] lines)
    {
        var path = _dir.File("available_filter_functions");
        File.WriteAllLines(path, lines);
        return path;
    }

    private static ValidatedPolicy Check(string spec, string filterFunctions, KernelFeatures? kernel = null, bool forOtherKernel = false) =>
        Assert.Single(new PolicyValidator(kernel ?? KernelFeatures.Everything, tracefs: null) { ForOtherKernel = forOtherKernel, FilterFunctions = filterFunctions }
            .ValidateText("p.yaml", "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: p\nspec:\n" + spec));

    [Fact]
    public void Each_kernel_function_matching_the_pattern_is_a_plain_kprobe_of_the_policy_with_its_selectors()
    {
        var file = FilterFunctions("do_sys_open", "ksys_write", "ksys_read", "__ksys_ioctl", "vfs_read", "ksys_read", "ksys_mod_thing [some_module]",
            "__ftrace_invalid_address___1234", "ksysfoo");
        var v = Check(Ksys, file);
        Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
        var plan = v.Plan!;
        Assert.Equal(["ksys_read", "ksys_write", "ksysfoo"], plan.Hooks.Select(h => h.Target));
        Assert.All(plan.Hooks, h => Assert.Equal((HookKind.Kprobe, Mechanism.Kprobe, 1), (h.Kind, h.Mechanism, h.Selectors.Count)));
        var list = Assert.Single(plan.FtraceLists);
        Assert.Equal(("ksys", file, 3), (list.Name, list.Source, list.Functions!.Count));
        Assert.Contains($"list:ksys (generated_ftrace): a kprobe on each kernel function matching '^ksys_*'", PlanExplainer.Explain(plan));
        Assert.Contains($"{file}: 3 function(s): ksys_read, ksys_write, ksysfoo", PlanExplainer.Explain(plan));
    }

    [Fact]
    public void The_pattern_matches_anywhere_in_the_name_as_Go_regexp_MatchString_does()
    {
        var v = Check(Ksys.Replace("^ksys_*", "_rea[d]$"), FilterFunctions("ksys_read", "vfs_read", "ksys_readahead", "read"));
        Assert.Equal(["ksys_read", "vfs_read"], v.Plan!.Hooks.Select(h => h.Name));
    }

    [Fact]
    public void The_compiler_on_the_node_resolves_the_list_as_the_validator_does()
    {
        var file = FilterFunctions("ksys_read", "vfs_read");
        var v = Check(Ksys, file);
        var plan = new PolicyCompiler(KernelFeatures.Everything, (_, _) => null) { FilterFunctions = file }.Compile(v);
        Assert.Equal(["ksys_read"], plan.Hooks.Select(h => h.Name));
    }

    [Fact]
    public void A_pattern_matching_no_function_or_too_many_is_an_error_at_the_call_naming_the_file()
    {
        var none = Check(Ksys, FilterFunctions("vfs_read", "vfs_write"));
        var d = Assert.Single(none.Diagnostics);
        Assert.Equal(("spec.kprobes[0].call", 11), (d.Field, d.Line));
        Assert.Contains("list:ksys: the kernel functions matching '^ksys_*' in ", d.Message);
        Assert.EndsWith("available_filter_functions: no kernel function matches it", d.Message);

        var many = Check(Ksys, FilterFunctions(Enumerable.Range(0, FtraceFunctions.MaxFunctions + 1).Select(i => $"ksys_f{i}").ToArray()));
        Assert.Contains($"{FtraceFunctions.MaxFunctions + 1} kernel functions match it, more than the {FtraceFunctions.MaxFunctions} one list may hook (narrow the pattern)",
            Assert.Single(many.Diagnostics).Message);
    }

    [Fact]
    public void An_unreadable_available_filter_functions_is_an_error_that_says_so()
    {
        var v = Check(Ksys, _dir.File("missing"));
        Assert.Contains("missing cannot be read", Assert.Single(v.Diagnostics).Message);
    }

    [Fact]
    public void For_another_kernel_the_list_is_accepted_and_resolved_on_the_node_at_load()
    {
        var v = Check(Ksys, _dir.File("never-read"), forOtherKernel: true);
        Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
        Assert.DoesNotContain(v.Notes, n => n.Message.StartsWith("unsupported:"));
        Assert.Contains(v.Notes, n => n.Field == "spec.kprobes[0].call" && n.Message.Contains("read on the node when the policy loads"));
        var list = Assert.Single(v.Plan!.FtraceLists);
        Assert.Null(list.Functions);
        Assert.Empty(v.Plan.Hooks);
        Assert.Contains("in /sys/kernel/tracing/available_filter_functions, read on the node when the policy loads", PlanExplainer.Explain(v.Plan));
    }

    [Fact]
    public void For_another_kernel_the_hooks_selectors_are_still_checked()
    {
        var v = Check(Ksys.Replace("operator: In", "operator: Inn"), _dir.File("never-read"), forOtherKernel: true);
        Assert.False(v.Ok);
    }

    [Fact]
    public void A_kernel_without_kprobes_refuses_the_list_naming_the_missing_hook()
    {
        var noKprobes = KernelFeatures.Everything with
        {
            Mechanisms = KernelFeatures.Everything.Mechanisms.ToDictionary(m => m.Key, m => m.Key == Mechanism.Kprobe ? Availability.No("kernel built without kprobes (no kprobe PMU)") : m.Value),
        };
        var d = Assert.Single(Check(Ksys, FilterFunctions("ksys_read"), noKprobes).Diagnostics);
        Assert.Equal("needs kprobes to hook the kernel functions of list:ksys (generated_ftrace: the functions matching '^ksys_*'), and this kernel has none "
            + "(kprobe: kernel built without kprobes (no kprobe PMU))", d.Message);
    }

    [Theory]
    [InlineData("    pattern: \"^ksys_*\"\n    values: [ksys_read]\n", "spec.lists[0].values[0]", "takes no values")]
    [InlineData("", "spec.lists[0].name", "needs a pattern")]
    [InlineData("    pattern: \"ksys_(\"\n", "spec.lists[0].pattern", "is not a regular expression")]
    public void A_list_without_a_usable_pattern_or_with_values_is_refused_as_Tetragon_does(string fields, string field, string message)
    {
        var spec = "  lists:\n  - name: ksys\n    type: generated_ftrace\n" + fields + "  kprobes:\n  - call: \"list:ksys\"\n";
        var v = Check(spec, FilterFunctions("ksys_read"), forOtherKernel: true);
        Assert.Contains(v.Diagnostics, d => d.Field == field && d.Message.Contains(message));
    }

    public void Dispose() => _dir.Dispose();
}
