namespace SecurityAgent.Events;

/// <summary>A decoded ring-buffer record, before enrichment. Times are CLOCK_BOOTTIME nanoseconds.</summary>
public abstract record KernelEvent(ulong Ktime);

public sealed record Credentials(uint Uid, uint Euid, uint Gid, uint Egid);

public sealed record Capabilities(ulong Permitted, ulong Effective, ulong Inheritable);

public sealed record ExecEvent(
    ulong Ktime, int Pid, int Tid, int Ppid, ulong StartTime, ulong ParentStartTime, ulong CgroupId,
    Credentials Creds, uint Auid, Capabilities Caps, string Binary, IReadOnlyList<string> Args, string Cwd,
    Wire.ExecFlags Flags) : KernelEvent(Ktime);

public sealed record ForkEvent(ulong Ktime, int Pid, int Ppid, ulong StartTime, ulong ParentStartTime) : KernelEvent(Ktime);

/// <summary>ExitCode is the wait(2) status: (code &lt;&lt; 8) for exit(), or the signal number.</summary>
public sealed record ExitEvent(ulong Ktime, int Pid, int Tid, ulong StartTime, uint ExitCode) : KernelEvent(Ktime)
{
    public int Status => (int)((ExitCode >> 8) & 0xff);
    public int Signal => (int)(ExitCode & 0x7f);
}

/// <summary>A policy hook's match (policy_event). Strings holds the raw bytes read for string and sockaddr slots
/// (for file names: the resolved path); Passed, per argument, the string the process passed where that differs
/// (null: none differs).</summary>
public sealed record PolicyKernelEvent(
    ulong Ktime, int Pid, int Tid, uint HookId, uint PolicyId, int Selector, PolicyWire.EventFlags Flags, uint Actions,
    ulong[] Ints, byte[][] Strings, byte[]?[]? Passed = null) : KernelEvent(Ktime);
