using SecurityAgent.Kernel;
using SecurityAgent.Policies;

namespace SecurityAgent.Tests.Unit;

/// <summary>maxData: a buffer read as bytes (char_buf with sizeArgIndex, iov_iter: IovIterCompilerTests) is read whole in
/// data records; with returnCopy an error, on other types a warning.</summary>
public sealed class MaxDataCompilerTests
{
    private static ValidatedPolicy Check(string spec, KernelFeatures? kernel = null) =>
        Assert.Single(new PolicyValidator(kernel ?? KernelFeatures.Everything, tracefs: null)
            .ValidateText("p.yaml", "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: p\nspec:\n" + spec));

    [Fact]
    public void MaxData_on_a_sized_char_buf_reads_it_whole_and_the_hooks_post_sends_its_data_records()
    {
        var sized = Check("""
              kprobes:
              - call: vfs_write
                syscall: false
                args:
                - index: 1
                  type: char_buf
                  sizeArgIndex: 3
                  maxData: true
                - index: 2
                  type: size_t

            """);
        Assert.True(sized.Ok, string.Join("\n", sized.Diagnostics));
        Assert.Empty(sized.Warnings);
        Assert.Equal(ArgType.BufMax, Assert.Single(sized.Plan!.Hooks).Args[0].KernelType);
        Assert.Contains("maxData: up to 255 bytes in the event, a longer buffer also sent whole up to 327360 bytes", PlanExplainer.Explain(sized.Plan!));
    }

    [Fact]
    public void An_iov_iter_on_an_lsm_hook_is_an_engine_gap_named_at_its_type()
    {
        var v = Check("""
              lsmhooks:
              - hook: file_permission
                args:
                - index: 1
                  type: iov_iter

            """);
        Assert.False(v.Ok);
        Assert.Contains(v.Diagnostics, x => x.Field == "spec.lsmhooks[0].args[0].type" && x.Message.Contains("'iov_iter'"));
    }

    [Fact]
    public void MaxData_with_returnCopy_is_refused_and_on_an_integer_it_is_a_warning_that_it_does_nothing()
    {
        var v = Check("""
              kprobes:
              - call: sys_read
                syscall: true
                return: true
                returnArg:
                  index: 0
                  type: int
                args:
                - index: 0
                  type: int
                  maxData: true
                - index: 1
                  type: char_buf
                  returnCopy: true
                  maxData: true

            """);
        Assert.Contains(v.Diagnostics, x => x.Field == "spec.kprobes[0].args[1].maxData" && x.Message.Contains("does not work with returnCopy"));
        Assert.Contains(v.Warnings, x => x.Field == "spec.kprobes[0].args[0].maxData" && x.Message.Contains("no effect on type 'int'"));
    }
}
