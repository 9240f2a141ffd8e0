using System.Buffers.Binary;
using System.Net;
using System.Text;
using SecurityAgent.Events;
using W = SecurityAgent.Events.PolicyWire;

namespace SecurityAgent.Policies;

/// <summary>Turns a plan into the bytes of the kernel's hook configuration and value-set keys. Pure.</summary>
public static class PolicyEncoding
{
    /// <param name="filterIds">Kernel filter id of each of the plan's value sets.</param>
    /// <param name="followBits">Per selector: the sa_follow bit of its followForks pid set, or -1.</param>
    public static byte[] Hook(HookPlan hook, uint policyId, bool enforce, IReadOnlyList<uint> filterIds, IReadOnlyList<int>? followBits = null, uint scopeId = 0)
    {
        var b = new byte[W.Hook.Length];
        var s = b.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(s[W.Hook.PolicyId..], policyId);
        b[W.Hook.Nargs] = (byte)hook.Args.Count;
        b[W.Hook.Nselectors] = (byte)hook.Selectors.Count;
        b[W.Hook.Enforce] = enforce ? (byte)1 : (byte)0;
        b[W.Hook.ReverseMask] = hook.ReverseMask;
        BinaryPrimitives.WriteUInt32LittleEndian(s[W.Hook.ScopeId..], scopeId);
        foreach (var a in hook.Args)
        {
            var o = W.Hook.Args + a.Slot * W.HookArg.Length;
            BinaryPrimitives.WriteUInt16LittleEndian(s[(o + W.HookArg.Offset)..], (ushort)a.Offset);
            b[o + W.HookArg.Size] = (byte)a.Size;
            b[o + W.HookArg.Type] = (byte)a.KernelType;
        }
        for (int i = 0; i < hook.Selectors.Count; i++)
        {
            var sel = hook.Selectors[i];
            var o = W.Hook.Sel + i * W.Selector.Length;
            // Selectors that need ancestry only post from the kernel; user space decides and enforces.
            var actions = sel.KernelOnly ? sel.Actions : Actions.Post;
            BinaryPrimitives.WriteUInt32LittleEndian(s[(o + W.Selector.Actions)..], (uint)actions);
            BinaryPrimitives.WriteUInt32LittleEndian(s[(o + W.Selector.Signal)..], (uint)sel.Signal);
            BinaryPrimitives.WriteUInt64LittleEndian(s[(o + W.Selector.RateLimitNs)..], sel.RateLimitNs);
            if (sel.BinaryValueSet is { } bs)
                BinaryPrimitives.WriteUInt32LittleEndian(s[(o + W.Selector.BinFilter)..], filterIds[bs]);
            b[o + W.Selector.BinCmp] = (byte)sel.BinaryCmp;
            b[o + W.Selector.Nargs] = (byte)sel.Args.Count;
            b[o + W.Selector.PidCmp] = (byte)sel.PidCmp;
            b[o + W.Selector.Npids] = (byte)sel.Pids.Count;
            for (int p = 0; p < sel.Pids.Count; p++)
                BinaryPrimitives.WriteUInt32LittleEndian(s[(o + W.Selector.Pids + 4 * p)..], sel.Pids[p]);
            BinaryPrimitives.WriteUInt64LittleEndian(s[(o + W.Selector.CapMask)..], sel.CapMask);
            b[o + W.Selector.CapCmp] = (byte)sel.CapCmp;
            b[o + W.Selector.CapSet] = sel.CapSet;
            b[o + W.Selector.PidNs] = sel.NamespacePids ? (byte)1 : (byte)0;
            if (followBits is not null && followBits[i] >= 0)
                b[o + W.Selector.Follow] = (byte)(followBits[i] + 1);
            BinaryPrimitives.WriteInt32LittleEndian(s[(o + W.Selector.Error)..], sel.Error);
            for (int j = 0; j < sel.Args.Count; j++)
            {
                var f = sel.Args[j];
                var fo = o + W.Selector.Args + j * W.ArgFilter.Length;
                if (f.ValueSet is { } vs)
                    BinaryPrimitives.WriteUInt32LittleEndian(s[(fo + W.ArgFilter.FilterId)..], filterIds[vs]);
                b[fo + W.ArgFilter.Arg] = (byte)f.Slot;
                b[fo + W.ArgFilter.Cmp] = (byte)f.Cmp;
                BinaryPrimitives.WriteUInt64LittleEndian(s[(fo + W.ArgFilter.Value)..], f.Value);
            }
        }
        return b;
    }

    /// <summary>The map keys of one value set: (map name, key bytes) for each value.</summary>
    public static IEnumerable<(string Map, byte[] Key)> Keys(ValueSet set, uint filterId) => set.Kind switch
    {
        ValueSetKind.StringExact => set.Values.Select(v => ("sa_str_set", StrKey(filterId, v))),
        ValueSetKind.StringPrefix => set.Values.Select(v => ("sa_str_prefix", LpmKey(filterId, v))),
        ValueSetKind.StringPostfix => set.Values.Select(v => ("sa_str_prefix", LpmKey(filterId, new string(v.Reverse().ToArray())))),
        ValueSetKind.Int => set.Values.Select(v => ("sa_int_set", IntKey(filterId, PolicyCompiler.Integer(v)))),
        _ => set.Values.Select(v => ("sa_addr_lpm", AddrKey(filterId, v))),
    };

    public static byte[] StrKey(uint filterId, string value)
    {
        var k = new byte[W.StrKey.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(k, filterId);
        Encoding.UTF8.GetBytes(value).AsSpan(0, Math.Min(Encoding.UTF8.GetByteCount(value), W.StrMax - 1)).CopyTo(k.AsSpan(W.StrKey.Data));
        return k;
    }

    public static byte[] LpmKey(uint filterId, string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        int n = Math.Min(bytes.Length, W.LpmStrMax);
        var k = new byte[W.LpmKey.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(k.AsSpan(W.LpmKey.Prefixlen), (uint)(32 + 8 * n));
        // The trie compares the data in network order: the filter id is part of the prefix.
        BinaryPrimitives.WriteUInt32LittleEndian(k.AsSpan(W.LpmKey.FilterId), filterId);
        bytes.AsSpan(0, n).CopyTo(k.AsSpan(W.LpmKey.Data));
        return k;
    }

    public static byte[] IntKey(uint filterId, ulong value)
    {
        var k = new byte[W.IntKey.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(k, filterId);
        BinaryPrimitives.WriteUInt64LittleEndian(k.AsSpan(W.IntKey.Value), value);
        return k;
    }

    /// <summary>"10.0.0.0/8", "127.0.0.1" or an IPv6 address/CIDR.</summary>
    public static byte[] AddrKey(uint filterId, string cidr)
    {
        var net = cidr.Contains('/') ? IPNetwork.Parse(cidr) : new IPNetwork(IPAddress.Parse(cidr), IPAddress.Parse(cidr).GetAddressBytes().Length * 8);
        var addr = net.BaseAddress.GetAddressBytes();
        var k = new byte[W.AddrKey.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(k.AsSpan(W.AddrKey.Prefixlen), (uint)(32 + 8 + net.PrefixLength));
        BinaryPrimitives.WriteUInt32LittleEndian(k.AsSpan(W.AddrKey.FilterId), filterId);
        k[W.AddrKey.Family] = addr.Length == 4 ? (byte)2 : (byte)10;
        addr.CopyTo(k, W.AddrKey.Addr);
        return k;
    }

    public static byte[] Binary(string path)
    {
        var v = new byte[W.Binary.Length];
        var bytes = Encoding.UTF8.GetBytes(path);
        int n = Math.Min(bytes.Length, W.StrMax - 1);
        BinaryPrimitives.WriteUInt32LittleEndian(v, (uint)n);
        bytes.AsSpan(0, n).CopyTo(v.AsSpan(W.Binary.Path));
        return v;
    }
}
