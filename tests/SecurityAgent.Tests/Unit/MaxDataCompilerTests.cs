using SecurityAgent.Kernel;
using SecurityAgent.Policies;

namespace SecurityAgent.Tests.Unit;

/// <summary>maxData: on a buffer read as bytes it keeps this engine's 255 bytes and says so (iov_iter:
/// IovIterCompilerTests); with returnCopy an error, on other types a warning.</summary>
public sealed class MaxDataCompilerTests
{
    private static ValidatedPolicy Check(string spec, KernelFeatures? kernel = null) =>
        Assert.Single(new PolicyValidator(kernel ?? KernelFeatures.Everything, tracefs: null)
            .ValidateText("p.yaml", "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: p\nspec:\n" + spec));

    [Fact]
    public void MaxData_on_a_sized_char_buf_states_the_255_byte_cap()
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
        var warning = Assert.Single(sized.Warnings);
        Assert.Equal(("spec.kprobes[0].args[0].maxData", 13, 16), (warning.Field, warning.Line, warning.Column));
        Assert.Contains("keeps the first 255 bytes", warning.Message);
        Assert.Contains("truncated_bytes_arg with its orig_size", warning.Message);
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
