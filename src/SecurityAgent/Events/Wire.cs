namespace SecurityAgent.Events;

/// <summary>Op codes of bpf/include/common.h (enum sa_op).</summary>
public enum Op : byte
{
    Exec = 1,
    Exit = 2,
    Fork = 3,
    Tracepoint = 10,
    Sock = 11,
}

/// <summary>Byte offsets of the records in bpf/include/common.h. LayoutTests check every one of them
/// against the BTF that clang wrote into the BPF objects.</summary>
public static class Wire
{
    public static class Header
    {
        public const int Op = 0, Size = 2, Cpu = 4, Ktime = 8;
        public const int Length = 16;
    }

    public static class Exec
    {
        public const int Pid = 16, Tid = 20, Ppid = 24, Flags = 28, StartTime = 32, ParentStartTime = 40,
            CgroupId = 48, Uid = 56, Euid = 60, Gid = 64, Egid = 68, Auid = 72, CapPermitted = 80,
            CapEffective = 88, CapInheritable = 96, PathLen = 104, ArgsLen = 106, CwdLen = 108, Data = 112;
    }

    public static class Fork
    {
        public const int Pid = 16, Ppid = 20, StartTime = 24, ParentStartTime = 32;
        public const int Length = 40;
    }

    public static class Exit
    {
        public const int Pid = 16, Tid = 20, StartTime = 24, ExitCode = 32;
        public const int Length = 40;
    }

    [Flags]
    public enum ExecFlags : uint
    {
        ArgsTruncated = 1 << 0,
        PathTruncated = 1 << 1,
        CwdTruncated = 1 << 2,
        ArgsFault = 1 << 3,
        NoAuid = 1 << 4,
    }
}
