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
    public void An_iov_iter_argument_of_a_kprobe_with_maxData_is_read_whole_in_data_records_and_explained_so()
    {
        var v = Check(Tty);
        Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
        Assert.Empty(v.Warnings);
        var arg = Assert.Single(v.Plan!.Hooks).Args[1];
        Assert.Equal((ArgType.IovIterMax, 1), (arg.KernelType, arg.Offset));
        Assert.Contains("also sent whole up to 327360 bytes in data records", PlanExplainer.Explain(v.Plan!));
        Assert.Contains("the user data of the iov_iter in argument 1 (the buffer of ITER_UBUF, or the first segment of ITER_IOVEC", PlanExplainer.Explain(v.Plan!));
    }
}
