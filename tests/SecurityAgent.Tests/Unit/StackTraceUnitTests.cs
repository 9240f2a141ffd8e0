using SecurityAgent.Policies;
using SecurityAgent.Stacks;

namespace SecurityAgent.Tests.Unit;

public class StackTraceUnitTests
{
    private static string Policy(string hook) => $"""
        apiVersion: cilium.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: stacks
        spec:
        {hook}
            selectors:
            - matchActions:
              - action: Post
                kernelStackTrace: true
                userStackTrace: true
        """;

    [Fact]
    public void A_post_with_both_stack_traces_on_a_syscall_kprobe_asks_the_kernel_for_both_stacks()
    {
        var v = Assert.Single(new PolicyValidator(PolicyValidatorTests.OurKernel, tracefs: null).ValidateText("p.yaml",
            Policy("  kprobes:\n  - call: sys_setuid\n    syscall: true")));
        Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
        var plan = new PolicyCompiler(PolicyValidatorTests.OurKernel, PolicyCompilerTests.Formats).Compile(v);
        var sel = Assert.Single(Assert.Single(plan.Hooks).Selectors);
        Assert.Equal(Actions.Post | Actions.KernelStack | Actions.UserStack, sel.Actions);
    }

    [Fact]
    public void Stack_traces_on_a_connect_hook_that_runs_on_cgroup_programs_are_refused_at_the_field()
    {
        var v = Assert.Single(new PolicyValidator(PolicyValidatorTests.OurKernel, tracefs: null).ValidateText("p.yaml",
            Policy("  lsmhooks:\n  - hook: socket_connect")));
        Assert.False(v.Ok);
        Assert.Contains(v.Diagnostics, d => d.ToString().Contains("kernelStackTrace: unsupported: kernelStackTrace on", StringComparison.Ordinal)
            && d.ToString().Contains("bpf_get_stack", StringComparison.Ordinal));
    }

    [Fact]
    public void Kallsyms_lines_give_text_symbols_and_drop_the_module_suffix()
    {
        Assert.Equal((0xffffffff81000000UL, "_stext"), KernelSymbols.Parse("ffffffff81000000 T _stext"));
        Assert.Equal((0xffffffffc0a01000UL, "nf_hook"), KernelSymbols.Parse("ffffffffc0a01000 t nf_hook\t[nf_tables]"));
        Assert.Null(KernelSymbols.Parse("ffffffff82000000 D some_data"));
        Assert.Null(KernelSymbols.Parse("0000000000000000 T hidden_by_kptr_restrict"));
        var syms = new KernelSymbols([0x1000, 0x2000], ["a", "b"]);
        Assert.Equal((0x2000UL, "b"), syms.Find(0x2010));
        Assert.Null(syms.Find(0x10));
    }

    [Fact]
    public void Maps_lines_keep_file_backed_executable_mappings_with_their_offset_device_and_inode()
    {
        var m = StackSymbolizer.ParseMapsLine("7f0000001000-7f0000002000 r-xp 00028000 fd:01 1234567 /usr/lib/x86_64-linux-gnu/libc.so.6");
        Assert.Equal(new StackSymbolizer.Mapping(0x7f0000001000, 0x7f0000002000, 0x28000, 0xfdUL << 20 | 1, 1234567, "/usr/lib/x86_64-linux-gnu/libc.so.6"), m);
        Assert.Null(StackSymbolizer.ParseMapsLine("7f0000001000-7f0000002000 rw-p 00000000 00:00 0 [heap]"));
        Assert.Null(StackSymbolizer.ParseMapsLine("7f0000001000-7f0000002000 r--p 00000000 fd:01 12 /usr/lib/x.so"));
        Assert.Equal("/tmp/a b", StackSymbolizer.ParseMapsLine("1000-2000 r-xp 0 fd:01 12 /tmp/a b (deleted)")!.Value.Path);
    }
}
