namespace SecurityAgent.Events;

/// <summary>A decoded ring-buffer record, before enrichment. Times are CLOCK_BOOTTIME nanoseconds.</summary>
public abstract record KernelEvent(ulong Ktime);

/// <summary>A process's user and group ids. The saved and filesystem ids default to the effective ones: what exec
/// leaves (the kernel sets suid = fsuid = euid and sgid = fsgid = egid when it commits an exec's credentials).</summary>
public sealed record Credentials(uint Uid, uint Euid, uint Gid, uint Egid)
{
    public uint Suid { get; init; } = Euid;
    public uint Sgid { get; init; } = Egid;
    public uint Fsuid { get; init; } = Euid;
    public uint Fsgid { get; init; } = Egid;
}

public sealed record Capabilities(ulong Permitted, ulong Effective, ulong Inheritable);

/// <summary>An exec record, read in place: the fixed fields are values, path, argv and cwd stay spans over the
/// ring buffer until the process cache keeps them. Valid only while the record is.</summary>
public readonly ref struct ExecEvent(ReadOnlySpan<byte> raw, ulong ktime, ReadOnlySpan<byte> binary, ReadOnlySpan<byte> args, ReadOnlySpan<byte> cwd)
{
    private readonly ReadOnlySpan<byte> _raw = raw;
    public ulong Ktime { get; } = ktime;
    public int Pid => EventDecoder.I32(_raw, Wire.Exec.Pid);
    public int Tid => EventDecoder.I32(_raw, Wire.Exec.Tid);
    public int Ppid => EventDecoder.I32(_raw, Wire.Exec.Ppid);
    public ulong StartTime => EventDecoder.U64(_raw, Wire.Exec.StartTime);
    public ulong ParentStartTime => EventDecoder.U64(_raw, Wire.Exec.ParentStartTime);
    public ulong CgroupId => EventDecoder.U64(_raw, Wire.Exec.CgroupId);
    public uint Uid => EventDecoder.U32(_raw, Wire.Exec.Uid);
    public uint Euid => EventDecoder.U32(_raw, Wire.Exec.Euid);
    public uint Gid => EventDecoder.U32(_raw, Wire.Exec.Gid);
    public uint Egid => EventDecoder.U32(_raw, Wire.Exec.Egid);
    public uint Auid => EventDecoder.U32(_raw, Wire.Exec.Auid);
    public ulong CapPermitted => EventDecoder.U64(_raw, Wire.Exec.CapPermitted);
    public ulong CapEffective => EventDecoder.U64(_raw, Wire.Exec.CapEffective);
    public ulong CapInheritable => EventDecoder.U64(_raw, Wire.Exec.CapInheritable);
    public Wire.ExecFlags Flags => (Wire.ExecFlags)EventDecoder.U32(_raw, Wire.Exec.Flags);
    /// <summary>The executable's path, UTF-8 as the kernel resolved it.</summary>
    public ReadOnlySpan<byte> Binary { get; } = binary;
    /// <summary>argv as the kernel lays it out: NUL-terminated strings back to back (see <see cref="EventDecoder.SplitArgs"/>).</summary>
    public ReadOnlySpan<byte> Args { get; } = args;
    public ReadOnlySpan<byte> Cwd { get; } = cwd;
}

public readonly record struct ForkEvent(ulong Ktime, int Pid, int Ppid, ulong StartTime, ulong ParentStartTime);

/// <summary>ExitCode is the wait(2) status: (code &lt;&lt; 8) for exit(), or the signal number.</summary>
public readonly record struct ExitEvent(ulong Ktime, int Pid, int Tid, ulong StartTime, uint ExitCode)
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
