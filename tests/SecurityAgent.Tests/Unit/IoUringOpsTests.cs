using SecurityAgent.Policies;

namespace SecurityAgent.Tests.Unit;

/// <summary>Which syscall hooks also see io_uring requests, and --explain naming the ones that do not.</summary>
public sealed class IoUringOpsTests
{
    private static TracepointFormat? Formats(string subsys, string ev) => (subsys, ev) switch
    {
        ("syscalls", _) when ev.StartsWith("sys_enter_", StringComparison.Ordinal) => PolicyCompilerTests.Formats(subsys, ev)
            ?? PolicyCompilerTests.Syscall(ev, ("long", "a0"), ("const char *", "a1"), ("long", "a2"), ("const char *", "a3"), ("long", "a4")),
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
        Assert.Contains("run again on the object opened at the request's completion (io_uring/io_uring_complete", explain);
        Assert.Contains("IOSQE_CQE_SKIP_SUCCESS", explain);
    }

    [Theory]
    [InlineData("unlinkat", "IORING_OP_UNLINKAT")]
    [InlineData("renameat2", "IORING_OP_RENAMEAT")]
    [InlineData("mkdirat", "IORING_OP_MKDIRAT")]
    [InlineData("symlinkat", "IORING_OP_SYMLINKAT")]
    [InlineData("linkat", "IORING_OP_LINKAT")]
    public void A_hook_on_a_path_syscall_with_an_io_uring_operation_says_its_requests_run_it(string call, string op)
    {
        var explain = Explain(call);
        Assert.Contains($"io_uring: {op} requests run this hook too (io_uring/io_uring_submit_req", explain);
        Assert.DoesNotContain("io_uring_complete", explain);
    }

    [Theory]
    [InlineData("unlink", "IORING_OP_UNLINKAT", "unlinkat")]
    [InlineData("rmdir", "IORING_OP_UNLINKAT", "unlinkat")]
    [InlineData("renameat", "IORING_OP_RENAMEAT", "renameat2")]
    [InlineData("rename", "IORING_OP_RENAMEAT", "renameat2")]
    [InlineData("mkdir", "IORING_OP_MKDIRAT", "mkdirat")]
    [InlineData("open", "IORING_OP_OPENAT", "openat")]
    public void A_hook_on_a_syscall_whose_io_uring_operation_runs_another_hook_names_that_hook(string call, string op, string by)
    {
        Assert.Contains($"io_uring: an io_uring {op} is not seen by this hook (the request does not enter the syscall): the hooks on {by} see it",
            Explain(call));
    }

    [Fact]
    public void A_statx_hook_names_the_io_uring_operation_it_does_not_see()
    {
        Assert.Contains("io_uring: an io_uring IORING_OP_STATX is not seen by this hook (the request does not enter the syscall)", Explain("statx"));
    }

    [Theory]
    [InlineData("syscalls/sys_enter_openat", (byte)18, (byte)1, (ushort)257)]
    [InlineData("syscalls/sys_enter_openat2", (byte)28, (byte)2, (ushort)437)]
    [InlineData("syscalls/sys_enter_unlinkat", (byte)36, (byte)3, (ushort)263)]
    [InlineData("syscalls/sys_enter_renameat2", (byte)35, (byte)4, (ushort)316)]
    [InlineData("syscalls/sys_enter_mkdirat", (byte)37, (byte)5, (ushort)258)]
    [InlineData("syscalls/sys_enter_symlinkat", (byte)38, (byte)6, (ushort)266)]
    [InlineData("syscalls/sys_enter_linkat", (byte)39, (byte)7, (ushort)265)]
    public void The_path_syscalls_map_to_their_io_uring_operations_with_the_point_in_the_low_word(string target, byte opcode, byte kind, ushort nr)
    {
        var op = Assert.IsType<IoUringOps.Op>(IoUringOps.Of(target));
        Assert.Equal((opcode, kind, nr), (op.Opcode, op.Kind, op.Nr));
        Assert.Equal(7UL | (ulong)opcode << 32 | (ulong)kind << 40 | (ulong)nr << 48, IoUringOps.Entry(op, 7));
        Assert.Equal(kind <= 2, op.ReChecked);
        Assert.Null(IoUringOps.Of("syscalls/sys_enter_renameat"));
        Assert.Null(IoUringOps.Of("syscalls/sys_enter_open"));
    }
}
