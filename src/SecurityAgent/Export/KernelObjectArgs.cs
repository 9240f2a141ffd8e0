using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using SecurityAgent.Policies;
using W = SecurityAgent.Events.PolicyWire;

namespace SecurityAgent.Export;

/// <summary>A KprobeArgument whose value is a message (sock_arg, process_credentials_arg, ...): its fields in Tetragon's
/// order with protojson names. Values are string, int, uint, long/ulong (written as strings), bool, string[] or a
/// nested ObjectArg; a field whose value is null is left out (protojson's unset).</summary>
public sealed record ObjectArg(IReadOnlyList<KeyValuePair<string, object?>> Fields);

/// <summary>The kernel objects a kprobe or LSM hook reads (bpf/include/kobjects.h: struct sa_sock_info, sa_cred_info,
/// sa_bpf_info in the slot's bytes), rendered as Tetragon's KprobeArgument variants.</summary>
public static class KernelObjectArgs
{
    /// <summary>The argument for a kernel-object type, or null when the type is not one.</summary>
    public static RenderedArg? Render(ArgPlan a, ulong v, byte[] raw) => a.KernelType switch
    {
        ArgType.Sock or ArgType.Socket => new("sock_arg", Sock(raw), a.Label),
        ArgType.Skb => new("skb_arg", Skb(raw), a.Label),
        ArgType.Cred => new("process_credentials_arg", Cred(raw), a.Label),
        ArgType.UserNs => new("user_ns_arg", UserNs(raw), a.Label),
        ArgType.Caps => new(a.Type is "kernel_cap_t" ? "kernel_cap_t_arg" : a.Type + "_arg", v.ToString("x16", CultureInfo.InvariantCulture), a.Label),
        ArgType.NetDev => new("net_dev_arg", Obj(("name", Str(raw))), a.Label),
        ArgType.Dentry => new("path_arg", new PathArg(Str(raw)), a.Label),
        ArgType.Module or ArgType.LoadInfo => new("module_arg", Obj(("name", Str(raw))), a.Label),
        ArgType.BpfAttr => new("bpf_attr_arg", Obj(("ProgType", Named(ProgTypes, "BPF_PROG_TYPE_", U32(raw, W.BpfInfo.Type))),
            ("InsnCnt", U32(raw, W.BpfInfo.Count)), ("ProgName", Name(raw))), a.Label),
        ArgType.BpfMap => new("bpf_map_arg", Obj(("MapType", Named(MapTypes, "BPF_MAP_TYPE_", U32(raw, W.BpfInfo.Type))),
            ("KeySize", U32(raw, W.BpfInfo.Count)), ("ValueSize", U32(raw, W.BpfInfo.ValueSize)), ("MaxEntries", U32(raw, W.BpfInfo.MaxEntries)), ("MapName", Name(raw))), a.Label),
        ArgType.PerfEvent => new("perf_event_arg", Obj(("KprobeFunc", Name(raw)), ("Type", Named(PerfTypes, "PERF_TYPE_", U32(raw, W.BpfInfo.Type))),
            ("Config", U64(raw, W.BpfInfo.Config)), ("ProbeOffset", U64(raw, W.BpfInfo.ProbeOffset))), a.Label),
        ArgType.BpfProg => new("bpf_prog_arg", Obj(("ProgType", Named(ProgTypes, "BPF_PROG_TYPE_", U32(raw, W.BpfInfo.Type))),
            ("InsnCnt", U32(raw, W.BpfInfo.Count)), ("ProgName", Name(raw))), a.Label),
        ArgType.Int when a.Type == "bpf_cmd" => new("bpf_cmd_arg", (uint)v < (uint)BpfCmds.Length ? BpfCmds[(int)v] : (int)v, a.Label),
        ArgType.Int when a.Type == "capability" => new("capability_arg", Obj(("value", (int)v), ("name", LinuxNames.Capability((int)v))), a.Label),
        _ => null,
    };

    private static ObjectArg Obj(params (string Name, object? Value)[] fields) =>
        new(fields.Select(f => new KeyValuePair<string, object?>(f.Name, f.Value)).ToList());

    private static uint U32(byte[] raw, int off) => raw.Length >= off + 4 ? BinaryPrimitives.ReadUInt32LittleEndian(raw.AsSpan(off)) : 0;
    private static ulong U64(byte[] raw, int off) => raw.Length >= off + 8 ? BinaryPrimitives.ReadUInt64LittleEndian(raw.AsSpan(off)) : 0;
    private static byte U8(byte[] raw, int off) => raw.Length > off ? raw[off] : (byte)0;

    private static string Str(byte[] raw)
    {
        int nul = Array.IndexOf(raw, (byte)0);
        return Encoding.UTF8.GetString(raw, 0, nul < 0 ? raw.Length : nul);
    }

    private static string Name(byte[] raw) =>
        raw.Length <= W.BpfInfo.Name ? "" : Str(raw[W.BpfInfo.Name..Math.Min(raw.Length, W.BpfInfo.Length)]);

    private static ObjectArg Sock(byte[] raw)
    {
        var peer = End(raw, W.SockInfo.Peer);
        var local = End(raw, W.SockInfo.Local);
        return Obj(("family", Family(raw)), ("type", SockType(BinaryPrimitives.ReadUInt16LittleEndian(raw.AsSpan(W.SockInfo.Type)))),
            ("protocol", Protocol(U8(raw, W.SockInfo.Protocol))), ("mark", U32(raw, W.SockInfo.Mark)), ("priority", U32(raw, W.SockInfo.Priority)),
            ("saddr", local.Addr), ("daddr", peer.Addr), ("sport", (uint)local.Port), ("dport", (uint)peer.Port),
            ("cookie", U64(raw, W.SockInfo.Cookie)), ("state", TcpState(U8(raw, W.SockInfo.State))));
    }

    private static ObjectArg Skb(byte[] raw)
    {
        var peer = End(raw, W.SockInfo.Peer);
        var local = End(raw, W.SockInfo.Local);
        byte proto = U8(raw, W.SockInfo.Protocol);
        return Obj(("hash", U32(raw, W.SockInfo.Hash)), ("len", U32(raw, W.SockInfo.Len)), ("priority", U32(raw, W.SockInfo.Priority)),
            ("mark", U32(raw, W.SockInfo.Mark)), ("saddr", local.Addr), ("daddr", peer.Addr), ("sport", (uint)local.Port), ("dport", (uint)peer.Port),
            ("proto", (uint)proto), ("protocol", Protocol(proto)), ("family", Family(raw)));
    }

    private static SockAddr End(byte[] raw, int off) =>
        raw.Length >= off + Events.Contract.SockaddrSize ? PolicyArgs.SockAddrOf(raw[off..(off + Events.Contract.SockaddrSize)]) : new SockAddr("AF_UNSPEC", "", 0);

    private static string Family(byte[] raw) => (raw.Length >= 2 ? BinaryPrimitives.ReadUInt16LittleEndian(raw) : 0) switch
    {
        Events.Contract.AfInet => "AF_INET",
        Events.Contract.AfInet6 => "AF_INET6",
        Events.Contract.AfUnix => "AF_UNIX",
        var f => f.ToString(CultureInfo.InvariantCulture),
    };

    private static string SockType(ushort t) => t switch
    {
        1 => "SOCK_STREAM", 2 => "SOCK_DGRAM", 3 => "SOCK_RAW", 4 => "SOCK_RDM", 5 => "SOCK_SEQPACKET", 6 => "SOCK_DCCP", 10 => "SOCK_PACKET",
        _ => t.ToString(CultureInfo.InvariantCulture),
    };

    private static string Protocol(byte p) => p switch
    {
        0 => "IPPROTO_IP", 1 => "IPPROTO_ICMP", 6 => "IPPROTO_TCP", 17 => "IPPROTO_UDP", 58 => "IPPROTO_ICMPV6", 132 => "IPPROTO_SCTP", 255 => "IPPROTO_RAW",
        _ => p.ToString(CultureInfo.InvariantCulture),
    };

    private static string TcpState(byte s) =>
        s >= 1 && s <= PolicyValues.TcpStates.Count ? PolicyValues.TcpStates[s - 1] : s.ToString(CultureInfo.InvariantCulture);

    private static ObjectArg Cred(byte[] raw)
    {
        uint securebits = U32(raw, W.CredInfo.Securebits);
        var bits = Enumerable.Range(0, LinuxNames.SecureBits.Length).Where(i => (securebits & (1u << i)) != 0).Select(i => LinuxNames.SecureBits[i]).ToArray();
        return Obj(("uid", U32(raw, W.CredInfo.Uid)), ("gid", U32(raw, W.CredInfo.Gid)), ("euid", U32(raw, W.CredInfo.Euid)), ("egid", U32(raw, W.CredInfo.Egid)),
            ("suid", U32(raw, W.CredInfo.Suid)), ("sgid", U32(raw, W.CredInfo.Sgid)), ("fsuid", U32(raw, W.CredInfo.Fsuid)), ("fsgid", U32(raw, W.CredInfo.Fsgid)),
            ("securebits", bits.Length > 0 ? bits : null),
            ("caps", Obj(("permitted", Caps(U64(raw, W.CredInfo.CapPermitted))), ("effective", Caps(U64(raw, W.CredInfo.CapEffective))),
                ("inheritable", Caps(U64(raw, W.CredInfo.CapInheritable))))),
            ("user_ns", UserNs(raw)));
    }

    private static ObjectArg UserNs(byte[] raw)
    {
        int level = (int)U32(raw, W.CredInfo.UsernsLevel);
        return Obj(("level", level), ("uid", U32(raw, W.CredInfo.UsernsUid)), ("gid", U32(raw, W.CredInfo.UsernsGid)),
            ("ns", Obj(("inum", U32(raw, W.CredInfo.UsernsInum)), ("is_host", level == 0 ? true : null))));
    }

    /// <summary>Capability names of a mask (protojson leaves an empty list out).</summary>
    private static string[]? Caps(ulong mask)
    {
        var names = Enumerable.Range(0, Math.Min(64, LinuxNames.CapabilityCount)).Where(i => (mask & (1UL << i)) != 0).Select(LinuxNames.Capability).ToArray();
        return names.Length > 0 ? names : null;
    }

    private static string Named(string[] names, string prefix, uint v) =>
        v < names.Length ? prefix + names[v] : v.ToString(CultureInfo.InvariantCulture);

    private static readonly string[] ProgTypes =
    [
        "UNSPEC", "SOCKET_FILTER", "KPROBE", "SCHED_CLS", "SCHED_ACT", "TRACEPOINT", "XDP", "PERF_EVENT", "CGROUP_SKB", "CGROUP_SOCK", "LWT_IN", "LWT_OUT",
        "LWT_XMIT", "SOCK_OPS", "SK_SKB", "CGROUP_DEVICE", "SK_MSG", "RAW_TRACEPOINT", "CGROUP_SOCK_ADDR", "LWT_SEG6LOCAL", "LIRC_MODE2", "SK_REUSEPORT",
        "FLOW_DISSECTOR", "CGROUP_SYSCTL", "RAW_TRACEPOINT_WRITABLE", "CGROUP_SOCKOPT", "TRACING", "STRUCT_OPS", "EXT", "LSM", "SK_LOOKUP", "SYSCALL", "NETFILTER",
    ];

    /// <summary>Tetragon's BpfCmd enum (bpf.proto): the kernel's enum bpf_cmd. A number past it is written as the number (protojson's
    /// rendering of an enum value it does not know).</summary>
    private static readonly string[] BpfCmds =
    [
        "BPF_MAP_CREATE", "BPF_MAP_LOOKUP_ELEM", "BPF_MAP_UPDATE_ELEM", "BPF_MAP_DELETE_ELEM", "BPF_MAP_GET_NEXT_KEY", "BPF_PROG_LOAD", "BPF_OBJ_PIN",
        "BPF_OBJ_GET", "BPF_PROG_ATTACH", "BPF_PROG_DETACH", "BPF_PROG_TEST_RUN", "BPF_PROG_GET_NEXT_ID", "BPF_MAP_GET_NEXT_ID", "BPF_PROG_GET_FD_BY_ID",
        "BPF_MAP_GET_FD_BY_ID", "BPF_OBJ_GET_INFO_BY_FD", "BPF_PROG_QUERY", "BPF_RAW_TRACEPOINT_OPEN", "BPF_BTF_LOAD", "BPF_BTF_GET_FD_BY_ID",
        "BPF_TASK_FD_QUERY", "BPF_MAP_LOOKUP_AND_DELETE_ELEM", "BPF_MAP_FREEZE", "BPF_BTF_GET_NEXT_ID", "BPF_MAP_LOOKUP_BATCH",
        "BPF_MAP_LOOKUP_AND_DELETE_BATCH", "BPF_MAP_UPDATE_BATCH", "BPF_MAP_DELETE_BATCH", "BPF_LINK_CREATE", "BPF_LINK_UPDATE", "BPF_LINK_GET_FD_BY_ID",
        "BPF_LINK_GET_NEXT_ID", "BPF_ENABLE_STATS", "BPF_ITER_CREATE", "BPF_LINK_DETACH", "BPF_PROG_BIND_MAP", "BPF_TOKEN_CREATE",
    ];

    private static readonly string[] MapTypes =
    [
        "UNSPEC", "HASH", "ARRAY", "PROG_ARRAY", "PERF_EVENT_ARRAY", "PERCPU_HASH", "PERCPU_ARRAY", "STACK_TRACE", "CGROUP_ARRAY", "LRU_HASH", "LRU_PERCPU_HASH",
        "LPM_TRIE", "ARRAY_OF_MAPS", "HASH_OF_MAPS", "DEVMAP", "SOCKMAP", "CPUMAP", "XSKMAP", "SOCKHASH", "CGROUP_STORAGE", "REUSEPORT_SOCKARRAY",
        "PERCPU_CGROUP_STORAGE", "QUEUE", "STACK", "SK_STORAGE", "DEVMAP_HASH", "STRUCT_OPS", "RINGBUF", "INODE_STORAGE", "TASK_STORAGE", "BLOOM_FILTER",
        "USER_RINGBUF", "CGRP_STORAGE",
    ];

    private static readonly string[] PerfTypes = ["HARDWARE", "SOFTWARE", "TRACEPOINT", "HW_CACHE", "RAW", "BREAKPOINT"];
}
