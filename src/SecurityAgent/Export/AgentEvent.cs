using SecurityAgent.Policies;
using SecurityAgent.Processes;

namespace SecurityAgent.Export;

/// <summary>An enriched event, ready for the exporters. Time is CLOCK_BOOTTIME ns (see <see cref="BootClock"/>).</summary>
public abstract record AgentEvent(ulong Ktime, ProcessInfo Process, ProcessInfo? Parent)
{
    /// <summary>The top-level key of the exported JSON object (Tetragon's event type names).</summary>
    public abstract string Type { get; }
}

public sealed record ProcessExecEvent(ulong Ktime, ProcessInfo Process, ProcessInfo? Parent) : AgentEvent(Ktime, Process, Parent)
{
    public override string Type => "process_exec";
}

public sealed record ProcessExitEvent(ulong Ktime, ProcessInfo Process, ProcessInfo? Parent, int Status, int Signal) : AgentEvent(Ktime, Process, Parent)
{
    public override string Type => "process_exit";
}

/// <summary>One rendered argument of a policy event, e.g. ("string_arg", "/etc/shadow"). Passed: for a file name
/// the kernel resolved, the string the process passed when it differs ("../etc/./shadow").</summary>
public sealed record RenderedArg(string Kind, object Value, string? Label, string? Passed = null)
{
    /// <summary>For a file name under another root (a chroot, a container): the path the host sees.</summary>
    public string? HostPath { get; init; }

    /// <summary>Where a string <see cref="Value"/> came from the kept names: its JSON encoding is there (used only while
    /// Value is still that entry's string).</summary>
    public Utf8Strings.Entry? Kept { get; init; }
}

/// <summary>A tracing-policy match: process_tracepoint, process_kprobe, process_lsm, process_uprobe or process_usdt,
/// as Tetragon names them.</summary>
public sealed record PolicyMatchEvent(
    ulong Ktime, ProcessInfo Process, ProcessInfo? Parent, string PolicyName, HookPlan Hook, string Action,
    bool Enforce, bool Enforced, bool SafetyRefused, string DecidedBy, IReadOnlyList<RenderedArg> Args) : AgentEvent(Ktime, Process, Parent)
{
    /// <summary>A return probe's `return` (the returnArg's rendering of the return value) and `return_action`.</summary>
    public RenderedArg? Return { get; init; }

    public string? ReturnAction { get; init; }
    /// <summary>Matched at the syscall's exit, on the object the kernel looked up (through a symlink, a bind mount, a
    /// hard link, /proc/self/fd), not on the name passed.</summary>
    public bool MatchedAtExit { get; init; }

    /// <summary>The call was an io_uring request (IORING_OP_OPENAT for a hook on openat...), not the syscall itself.</summary>
    public bool IoUring { get; init; }

    /// <summary>kernelStackTrace / userStackTrace of the Post: Tetragon's kernel_stack_trace and user_stack_trace.</summary>
    public IReadOnlyList<Stacks.StackFrame>? KernelStackTrace { get; init; }

    public IReadOnlyList<Stacks.StackFrame>? UserStackTrace { get; init; }

    /// <summary>imaHash: Tetragon's ima_hash of process_lsm ("sha256:hex").</summary>
    public string? ImaHash { get; init; }

    /// <summary>The thread that made the call (process.tid, as Tetragon: the calling thread's id; the process's pid is
    /// its thread-group leader's); 0: not known.</summary>
    public int Tid { get; init; }

    public override string Type => Hook.Kind switch
    {
        HookKind.Kprobe => "process_kprobe",
        HookKind.LsmHook => "process_lsm",
        HookKind.Uprobe => "process_uprobe",
        HookKind.Usdt => "process_usdt",
        _ => "process_tracepoint",
    };
}

/// <summary>spec.loader: the process mapped <paramref name="Path"/> executable; Tetragon's process_loader.</summary>
public sealed record ProcessLoaderEvent(ulong Ktime, ProcessInfo Process, ProcessInfo? Parent, string Path, byte[] BuildId) : AgentEvent(Ktime, Process, Parent)
{
    public override string Type => "process_loader";
}
