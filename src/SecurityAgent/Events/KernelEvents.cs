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

/// <summary>A process's namespace inode numbers, indexed by <see cref="Wire.Namespace"/>; 0 where unknown (or the
/// kernel has no such namespace).</summary>
[System.Runtime.CompilerServices.InlineArray((int)Wire.Namespace.Count)]
public struct NamespaceInums
{
    private uint _first;

    public readonly bool IsEmpty => ((ReadOnlySpan<uint>)this).IndexOfAnyExcept(0u) < 0;

    /// <summary>Tetragon's names of the namespaces, which are also their files in /proc/PID/ns.</summary>
    public static readonly string[] Names = ["uts", "ipc", "mnt", "pid", "pid_for_children", "net", "time", "time_for_children", "cgroup", "user"];
}

/// <summary>One environment variable (Tetragon's EnvVar); a string without '=' is kept with the key "invalid", as Tetragon.</summary>
public readonly record struct EnvVar(string Key, string Value);

/// <summary>The user namespace a process's credentials are relative to; Inum 0: unknown.</summary>
public readonly record struct UserNamespace(int Level, uint Uid, uint Gid, uint Inum);

/// <summary>Why an exec raised privileges (Tetragon's ProcessPrivilegesChanged).</summary>
[Flags]
public enum PrivilegesChanged
{
    None = 0,
    FileCap = 1,
    Setuid = 2,
    Setgid = 4,
}

/// <summary>Tetragon's binary_properties of an exec: the ids a set-user/group-ID file gave, why privileges rose, and
/// the inode of a binary with no link left (deleted, memfd).</summary>
public readonly record struct BinaryProperties(uint? Setuid, uint? Setgid, PrivilegesChanged Changed, ulong Inode, uint Links)
{
    public bool Unlinked => Inode != 0 && Links == 0;
    public bool IsEmpty => Setuid is null && Setgid is null && Changed == PrivilegesChanged.None && !Unlinked;
}

/// <summary>An exec record, read in place: the fixed fields are values, path, argv and cwd stay spans over the
/// ring buffer until the process cache keeps them. Valid only while the record is.</summary>
public readonly ref struct ExecEvent(ReadOnlySpan<byte> raw, ulong ktime, ReadOnlySpan<byte> binary, ReadOnlySpan<byte> args, ReadOnlySpan<byte> cwd,
    ReadOnlySpan<byte> env = default)
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
    /// <summary>The pid in the process's own pid namespace (Tetragon's container pid); 0 in records without it.</summary>
    public uint Nspid => EventDecoder.U32(_raw, Wire.Exec.Nspid);
    public ulong CapPermitted => EventDecoder.U64(_raw, Wire.Exec.CapPermitted);
    public ulong CapEffective => EventDecoder.U64(_raw, Wire.Exec.CapEffective);
    public ulong CapInheritable => EventDecoder.U64(_raw, Wire.Exec.CapInheritable);
    public Wire.ExecFlags Flags => (Wire.ExecFlags)EventDecoder.U32(_raw, Wire.Exec.Flags);
    public ulong CapAmbient => EventDecoder.U64(_raw, Wire.Exec.CapAmbient);
    public uint Securebits => EventDecoder.U32(_raw, Wire.Exec.Securebits);
    public UserNamespace UserNs => new(EventDecoder.I32(_raw, Wire.Exec.UsernsLevel), EventDecoder.U32(_raw, Wire.Exec.UsernsUid),
        EventDecoder.U32(_raw, Wire.Exec.UsernsGid), Namespace(Wire.Namespace.User));
    public uint Namespace(Wire.Namespace ns) => EventDecoder.U32(_raw, Wire.Exec.Ns + 4 * (int)ns);

    public NamespaceInums Namespaces
    {
        get
        {
            var ns = new NamespaceInums();
            for (int i = 0; i < (int)Wire.Namespace.Count; i++)
                ns[i] = Namespace((Wire.Namespace)i);
            return ns;
        }
    }

    /// <summary>What the exec did to privileges, as Tetragon tells it. The record is written after the exec committed
    /// its credentials, where the real ids are still the caller's: a set-user-ID file applied (bprm's per_clear set,
    /// the file has S_ISUID and its owner is the new euid) changed the euid when euid differs from uid. Capabilities
    /// raised with no id change and no ambient set come from the file's capabilities.</summary>
    public BinaryProperties BinaryProperties
    {
        get
        {
            const uint SIsuid = 0x800, SIsgid = 0x400, SIxgrp = 0x8;
            uint mode = EventDecoder.U16(_raw, Wire.Exec.FileMode);
            bool privileged = EventDecoder.U32(_raw, Wire.Exec.PerClear) != 0;
            bool suidFile = (mode & SIsuid) != 0, sgidFile = (mode & (SIsgid | SIxgrp)) == (SIsgid | SIxgrp);
            bool setuid = privileged && suidFile && EventDecoder.U32(_raw, Wire.Exec.FileUid) == Euid && Euid != Uid;
            bool setgid = privileged && sgidFile && EventDecoder.U32(_raw, Wire.Exec.FileGid) == Egid && Egid != Gid;
            var changed = PrivilegesChanged.None;
            if (setuid && Uid != 0 && Euid == 0) changed |= PrivilegesChanged.Setuid;
            if (setgid && Gid != 0 && Egid == 0) changed |= PrivilegesChanged.Setgid;
            if (privileged && !suidFile && !sgidFile && CapAmbient == 0 && CapPermitted != 0) changed |= PrivilegesChanged.FileCap;
            return new BinaryProperties(setuid ? Euid : null, setgid ? Egid : null, changed,
                EventDecoder.U64(_raw, Wire.Exec.FileIno), EventDecoder.U32(_raw, Wire.Exec.FileNlink));
        }
    }
    /// <summary>The executable's path, UTF-8 as the kernel resolved it.</summary>
    public ReadOnlySpan<byte> Binary { get; } = binary;
    /// <summary>argv as the kernel lays it out: NUL-terminated strings back to back (see <see cref="EventDecoder.SplitArgs"/>).</summary>
    public ReadOnlySpan<byte> Args { get; } = args;
    public ReadOnlySpan<byte> Cwd { get; } = cwd;
    /// <summary>envp as the kernel lays it out (NUL-terminated "KEY=value" strings; the last may be cut, see
    /// <see cref="Wire.ExecFlags.EnvTruncated"/>); empty unless the agent asked for the environment.</summary>
    public ReadOnlySpan<byte> Env { get; } = env;
}

/// <summary>Nspid: the child's pid in its own pid namespace. Flags: Wire.ExecFlags.InInitTree, computed in the kernel at fork.</summary>
public readonly record struct ForkEvent(ulong Ktime, int Pid, int Ppid, ulong StartTime, ulong ParentStartTime, uint Nspid = 0, Wire.ExecFlags Flags = 0);

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
    ulong[] Ints, byte[][] Strings, byte[]?[]? Passed = null) : KernelEvent(Ktime)
{
    /// <summary>A return probe's event (Flags has Return): the syscall's return value and the actions done at return.</summary>
    public long Return { get; init; }

    /// <summary>A return probe's returned object where its returnArg is one (a sock: struct sa_sock_info), after the data.</summary>
    public byte[]? ReturnData { get; init; }

    public uint ReturnActions { get; init; }

    /// <summary>The argument whose file the host sees under another path (the process's root is a chroot's or a
    /// container's), and that path; -1 and null when none.</summary>
    public int HostArg { get; init; } = -1;

    public byte[]? Host { get; init; }

    /// <summary>kernelStackTrace / userStackTrace: the return addresses, innermost first; null when not asked or the walk failed.</summary>
    public ulong[]? KernelStack { get; init; }

    public ulong[]? UserStack { get; init; }

    /// <summary>imaHash: Tetragon's ima_hash ("sha256:hex"); null when not asked or when the kernel gave no hash.</summary>
    public string? ImaHash { get; init; }

    /// <summary>Posted after the call by the fanotify change watcher (a name-only syscall such as unlink or chmod), with
    /// the real path of what the call changed: the pipeline runs the hook's selectors on it and enforces after the fact.</summary>
    public bool AfterCall { get; init; }

    /// <summary>An io_uring request (IORING_OP_OPENAT...) seen by the hooks of the syscall it stands for.</summary>
    public bool IoUring { get; init; }

    /// <summary>A name-only call at a point that notes its calls: the seq of its note (sa_after_notes), the same in the
    /// kernel's record of the call and in each after-call record the change watcher joined to it; 0 when none.</summary>
    public ulong NoteSeq { get; init; }
}

/// <summary>maxData: one chunk of a buffer argument of the thread's next policy event (Pipeline.MaxDataJoiner).</summary>
public readonly ref struct DataChunk(int tid, byte arg, uint total, uint off, ReadOnlySpan<byte> bytes)
{
    public int Tid { get; } = tid;
    public byte Arg { get; } = arg;
    public uint Total { get; } = total;
    public uint Off { get; } = off;
    public ReadOnlySpan<byte> Bytes { get; } = bytes;
}
