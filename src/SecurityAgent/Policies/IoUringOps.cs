namespace SecurityAgent.Policies;

/// <summary>io_uring requests that stand for syscalls. A process can open a file with IORING_OP_OPENAT instead of
/// openat(2): the request never enters sys_enter_openat. For the syscalls below, the policy hooks of the syscall's entry
/// tracepoint also run on each such request (bpf/iouring.bpf.c, at io_uring/io_uring_submit_req: after the kernel
/// prepared the request, in the submitting thread or the ring's SQPOLL thread, both threads of the process), with the
/// request's names, dirfds, flags and mode laid out as the syscall's arguments; an open's hooks run again on the object
/// opened at its completion (io_uring/io_uring_complete). One syscall per operation: the one whose arguments the request
/// has (renameat2 for IORING_OP_RENAMEAT). Other syscalls with an io_uring counterpart are named by
/// <see cref="Explain"/>: their policies do not see those requests.</summary>
public static class IoUringOps
{
    /// <summary>The io_uring counterpart of a syscall whose hooks run on its requests.</summary>
    /// <param name="Opcode">enum io_uring_op (uapi: stable numbers).</param>
    /// <param name="Kind">The record layout (enum sa_uring_kind in bpf/include/iouring.h).</param>
    /// <param name="Nr">The syscall's number (x86_64), put in the record as the syscall tracepoint has it.</param>
    public sealed record Op(string Name, byte Opcode, byte Kind, ushort Nr)
    {
        /// <summary>An open: its hooks run again on the object opened, at the request's completion.</summary>
        public bool ReChecked => Kind is 1 or 2;
    }

    private static readonly Dictionary<string, Op> Covered = new()
    {
        ["openat"] = new("IORING_OP_OPENAT", 18, 1, 257),
        ["openat2"] = new("IORING_OP_OPENAT2", 28, 2, 437),
        ["unlinkat"] = new("IORING_OP_UNLINKAT", 36, 3, 263),
        ["renameat2"] = new("IORING_OP_RENAMEAT", 35, 4, 316),
        ["mkdirat"] = new("IORING_OP_MKDIRAT", 37, 5, 258),
        ["symlinkat"] = new("IORING_OP_SYMLINKAT", 38, 6, 266),
        ["linkat"] = new("IORING_OP_LINKAT", 39, 7, 265),
    };

    /// <summary>Syscalls whose io_uring counterpart runs the hooks of another syscall (the one with its arguments).</summary>
    private static readonly Dictionary<string, string> SeenBy = new()
    {
        ["open"] = "openat", ["creat"] = "openat",
        ["unlink"] = "unlinkat", ["rmdir"] = "unlinkat",
        ["renameat"] = "renameat2", ["rename"] = "renameat2",
        ["mkdir"] = "mkdirat", ["symlink"] = "symlinkat", ["link"] = "linkat",
    };

    /// <summary>Syscalls with an io_uring counterpart that their hooks do not see (the io_uring operation's name).</summary>
    private static readonly Dictionary<string, string> NotSeen = new()
    {
        ["statx"] = "IORING_OP_STATX", ["newfstatat"] = "IORING_OP_STATX",
        ["setxattr"] = "IORING_OP_SETXATTR", ["fsetxattr"] = "IORING_OP_FSETXATTR",
        ["getxattr"] = "IORING_OP_GETXATTR", ["fgetxattr"] = "IORING_OP_FGETXATTR",
        ["ftruncate"] = "IORING_OP_FTRUNCATE", ["close"] = "IORING_OP_CLOSE",
        ["read"] = "IORING_OP_READ", ["pread64"] = "IORING_OP_READ", ["readv"] = "IORING_OP_READV", ["preadv"] = "IORING_OP_READV",
        ["write"] = "IORING_OP_WRITE", ["pwrite64"] = "IORING_OP_WRITE", ["writev"] = "IORING_OP_WRITEV", ["pwritev"] = "IORING_OP_WRITEV",
        ["socket"] = "IORING_OP_SOCKET", ["connect"] = "IORING_OP_CONNECT", ["accept"] = "IORING_OP_ACCEPT", ["accept4"] = "IORING_OP_ACCEPT",
        ["bind"] = "IORING_OP_BIND", ["listen"] = "IORING_OP_LISTEN", ["shutdown"] = "IORING_OP_SHUTDOWN",
        ["sendto"] = "IORING_OP_SEND", ["sendmsg"] = "IORING_OP_SENDMSG", ["recvfrom"] = "IORING_OP_RECV", ["recvmsg"] = "IORING_OP_RECVMSG",
        ["splice"] = "IORING_OP_SPLICE", ["tee"] = "IORING_OP_TEE", ["fsync"] = "IORING_OP_FSYNC", ["fdatasync"] = "IORING_OP_FSYNC",
        ["fallocate"] = "IORING_OP_FALLOCATE", ["madvise"] = "IORING_OP_MADVISE", ["fadvise64"] = "IORING_OP_FADVISE",
        ["epoll_ctl"] = "IORING_OP_EPOLL_CTL", ["waitid"] = "IORING_OP_WAITID", ["futex"] = "IORING_OP_FUTEX_WAIT",
        ["sync_file_range"] = "IORING_OP_SYNC_FILE_RANGE",
    };

    private const string Prefix = "syscalls/sys_enter_";

    private static string? Syscall(string target) =>
        target.StartsWith(Prefix, StringComparison.Ordinal) ? target[Prefix.Length..] : null;

    /// <summary>The io_uring operation whose requests the hooks at syscall entry tracepoint <paramref name="target"/> also
    /// see, or null.</summary>
    public static Op? Of(string target) => Syscall(target) is { } s && Covered.TryGetValue(s, out var op) ? op : null;

    /// <summary>The operation's entry in sa_uring_ops for attach point <paramref name="ap"/> (SA_URING_* in iouring.h).</summary>
    public static ulong Entry(Op op, uint ap) => ap | (ulong)op.Opcode << 32 | (ulong)op.Kind << 40 | (ulong)op.Nr << 48;

    /// <summary>Whether requests of operation <paramref name="opcode"/> are looked up again at completion.</summary>
    public static bool IsReChecked(byte opcode) => Covered.Values.Any(o => o.Opcode == opcode && o.ReChecked);

    /// <summary>The tracepoint of io_uring completions, where an open's hooks run again on the object opened (the same
    /// record from Linux 5.19 on).</summary>
    public const string CompleteTracepoint = "io_uring/io_uring_complete";

    /// <summary>The tracepoint of new tasks, where io_uring's worker threads are seen made (with CLONE_IO) by a thread of
    /// their process (the same record from Linux 5.x on).</summary>
    public const string WorkerTracepoint = "task/task_newtask";

    /// <summary>The tracepoint of io_uring submissions, named in --explain.</summary>
    public const string SubmitTracepoint = "io_uring/io_uring_submit_req";

    /// <summary>This kernel's tracepoint of io_uring submissions (io_uring_submit_sqe before Linux 6.0, the same record up
    /// to the opcode), or null on a kernel without io_uring (then no request can evade the syscall's hooks).</summary>
    public static string? SubmitTracepointHere { get; } =
        new[] { SubmitTracepoint, "io_uring/io_uring_submit_sqe" }.FirstOrDefault(t => Directory.Exists(Path.Combine(Kernel.KernelMounts.TraceFs, "events", t)));

    /// <summary>For --explain: what the hook at <paramref name="target"/> sees of io_uring; null when io_uring has no
    /// counterpart of the call.</summary>
    public static string? Explain(string target)
    {
        if (Of(target) is { } op && !op.ReChecked)
            return $"io_uring: {op.Name} requests run this hook too ({SubmitTracepoint}, at submission, in the submitting thread or the ring's "
                + "SQPOLL thread: the process's), on the request's names, dirfds and flags as the kernel prepared them, the names resolved as "
                + "the syscall's; the event has securityagent.io_uring; return probes not run";
        if (Of(target) is { } open)
            return $"io_uring: {open.Name} requests run this hook too ({SubmitTracepoint}, at submission, in the submitting thread or the ring's "
                + "SQPOLL thread: the process's), on the request's file name, dirfd, flags and mode, the name resolved as the syscall's; the event "
                + "has securityagent.io_uring; hooks that did not match there run again on the object opened at the request's completion "
                + $"({CompleteTracepoint}, in a thread of the process: symlinks, bind mounts, hard links, /proc fds: matched_at_exit; "
                + "an OPENAT2 name under RESOLVE_IN_ROOT is joined to the dirfd), not when the open asks for no completion on success "
                + "(IOSQE_CQE_SKIP_SUCCESS); return probes not run";
        if (Syscall(target) is not { } s)
            return null;
        if (SeenBy.TryGetValue(s, out var by))
            return $"io_uring: an io_uring {Covered[by].Name} is not seen by this hook (the request does not enter the syscall): the hooks "
                + $"on {by} see it";
        return NotSeen.TryGetValue(s, out var name)
            ? $"io_uring: an io_uring {name} is not seen by this hook (the request does not enter the syscall)"
            : null;
    }
}
