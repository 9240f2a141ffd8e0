using SecurityAgent.Policies;

namespace SecurityAgent.Tests.Unit;

/// <summary>Which syscall hooks also see io_uring requests, and --explain naming the ones that do not.</summary>
public sealed class IoUringOpsTests
{
    private static TracepointFormat? Formats(string subsys, string ev) => (subsys, ev) switch
    {
        ("syscalls", "sys_enter_unlinkat") => PolicyCompilerTests.Syscall(ev, ("int", "dfd"), ("const char *", "pathname"), ("int", "flag")),
        _ => PolicyCompilerTests.Formats(subsys, ev),
    };

    private static string Explain(string call) => PlanExplainer.Explain(new PolicyCompiler(PolicyValidatorTests.OurKernel, Formats).Compile(
        Assert.Single(new PolicyValidator(PolicyValidatorTests.OurKernel, tracefs: null).ValidateText("p.yaml", $"""
        apiVersion: cilium.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: p
        spec:
          tracepoints:
          - subsystem: syscalls
            event: sys_enter_{call}
            args:
            - index: 6
              type: string
            selectors:
            - matchArgs:
              - index: 6
                operator: Prefix
                values: ["/etc/"]
        """))));

    [Fact]
    public void An_openat_hook_says_io_uring_openat_requests_run_it_and_what_they_miss()
    {
        var explain = Explain("openat");
        Assert.Contains("io_uring: IORING_OP_OPENAT requests run this hook too (io_uring/io_uring_submit_req", explain);
        Assert.Contains("not re-checked on the object opened", explain);
    }

    [Fact]
    public void An_unlinkat_hook_names_the_io_uring_operation_it_does_not_see()
    {
        Assert.Contains("io_uring: an io_uring IORING_OP_UNLINKAT is not seen by this hook", Explain("unlinkat"));
    }

    [Theory]
    [InlineData("syscalls/sys_enter_openat", (byte)18, (byte)1, (ushort)257)]
    [InlineData("syscalls/sys_enter_openat2", (byte)28, (byte)2, (ushort)437)]
    public void The_open_syscalls_map_to_their_io_uring_operations_with_the_point_in_the_low_word(string target, byte opcode, byte kind, ushort nr)
    {
        var op = Assert.IsType<IoUringOps.Op>(IoUringOps.Of(target));
        Assert.Equal((opcode, kind, nr), (op.Opcode, op.Kind, op.Nr));
        Assert.Equal(7UL | (ulong)opcode << 32 | (ulong)kind << 40 | (ulong)nr << 48, IoUringOps.Entry(op, 7));
        Assert.Null(IoUringOps.Of("syscalls/sys_enter_unlinkat"));
        Assert.Null(IoUringOps.Of("syscalls/sys_enter_open"));
    }
}
