using SecurityAgent.Kernel;
using SecurityAgent.Policies;

namespace SecurityAgent.Tests.Unit;

/// <summary>iov_iter arguments and maxData (Tetragon's tty.yaml): the iterator's user bytes on kprobes; maxData keeps
/// this engine's 255 bytes and says so (the other maxData cases: MaxDataCompilerTests).</summary>
public sealed class IovIterCompilerTests
{
    private static ValidatedPolicy Check(string spec, KernelFeatures? kernel = null) =>
        Assert.Single(new PolicyValidator(kernel ?? KernelFeatures.Everything, tracefs: null)
            .ValidateText("p.yaml", "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: p\nspec:\n" + spec));

    private const string Tty = """
          kprobes:
          - call: tty_write
            syscall: false
            args:
            - index: 0
              type: kiocb
            - index: 1
              type: iov_iter
              maxData: true

        """;

    [Fact]
    public void An_iov_iter_argument_of_a_kprobe_is_read_as_the_iterators_user_bytes_and_maxData_states_the_255_byte_cap()
    {
        var v = Check(Tty);
        Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
        var arg = Assert.Single(v.Plan!.Hooks).Args[1];
        Assert.Equal((ArgType.IovIter, 1), (arg.KernelType, arg.Offset));
        var warning = Assert.Single(v.Warnings);
        Assert.Equal(("spec.kprobes[0].args[1].maxData", 14, 16), (warning.Field, warning.Line, warning.Column));
        Assert.Contains("keeps the first 255 bytes", warning.Message);
        Assert.Contains("truncated_bytes_arg with its orig_size", warning.Message);
        Assert.Contains("the user data of the iov_iter in argument 1 (the buffer of ITER_UBUF, or the first segment of ITER_IOVEC", PlanExplainer.Explain(v.Plan!));
    }
}
