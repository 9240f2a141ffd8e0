namespace SecurityAgent.Events;

/// <summary>Op codes of bpf/include/common.h (enum sa_op).</summary>
public enum Op : byte
{
    Exec = 1,
    Exit = 2,
    Fork = 3,
    Tracepoint = 10,
    Sock = 11,
    Lsm = 12,
    Kprobe = 13,
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

/// <summary>Layouts of the policy structs (bpf/include/common.h, policy.h), checked against BTF by LayoutTests.</summary>
public static class PolicyWire
{
    public const int MaxArgs = 5, MaxSelectors = 5, MaxMatchArgs = 4, MaxPids = 4, StrMax = 256, LpmStrMax = 248, MaxHooks = 1024;

    public static class Hook
    {
        public const int PolicyId = 0, Nargs = 4, Nselectors = 5, Enforce = 6, ReverseMask = 7, Args = 8, Sel = 32, ScopeId = 632;
        public const int Length = 640;
    }

    public static class HookArg
    {
        public const int Offset = 0, Size = 2, Type = 3;
        public const int Length = 4;
    }

    public static class Selector
    {
        public const int Actions = 0, Signal = 4, RateLimitNs = 8, BinFilter = 16, BinCmp = 20, Nargs = 21, PidCmp = 22,
            Npids = 23, Pids = 24, CapMask = 40, CapCmp = 48, CapSet = 49, Follow = 50, PidNs = 51, Error = 52, Args = 56;
        public const int Length = 120;
    }

    public static class ArgFilter
    {
        public const int FilterId = 0, Arg = 4, Cmp = 5, Value = 8;
        public const int Length = 16;
    }

    public static class HookStats
    {
        public const int Seen = 0, Matched = 8, Posted = 16, Enforced = 24, RateLimited = 32;
        public const int Length = 40;
    }

    public static class StrKey
    {
        public const int FilterId = 0, Data = 4;
        public const int Length = 260;
    }

    public static class LpmKey
    {
        public const int Prefixlen = 0, FilterId = 4, Data = 8;
        public const int Length = 256;
    }

    public static class IntKey
    {
        public const int FilterId = 0, Value = 8;
        public const int Length = 16;
    }

    public static class AddrKey
    {
        public const int Prefixlen = 0, FilterId = 4, Family = 8, Addr = 9;
        public const int Length = 28;
    }

    public static class ScopeKey
    {
        public const int ScopeId = 0, CgroupId = 8;
        public const int Length = 16;
    }

    public static class DenyKey
    {
        public const int HookId = 0, Selector = 4, Tgid = 8;
        public const int Length = 12;
    }

    public static class Binary
    {
        public const int Len = 0, Path = 4;
        public const int Length = 260;
    }

    public static class Event
    {
        public const int Pid = 16, Tid = 20, HookId = 24, PolicyId = 28, Selector = 32, Flags = 33, Nargs = 34, Actions = 36,
            Ints = 40, StrLen = 80, Str = 96;
        public const int Length = 1376;
    }

    [Flags]
    public enum EventFlags : byte { Enforced = 1, Monitor = 2, SafetyRefused = 4, StrTruncated = 8, DenySet = 16 }
}
