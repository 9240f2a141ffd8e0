using System.Buffers.Binary;
using System.Net;
using System.Text;
using SecurityAgent.Bpf;
using SecurityAgent.Events;
using W = SecurityAgent.Events.PolicyWire;

namespace SecurityAgent.Policies;

/// <summary>A policy hook placed at an attach point: what the encoder needs to give its selectors bits.</summary>
/// <param name="FollowBits">Per selector: its sa_follow bit (matchPIDs followForks), or -1.</param>
/// <param name="KernelSelectors">False under --debug-userspace-filter: the kernel posts every call.</param>
public sealed record PlacedHook(uint HookId, uint PolicyId, PolicyPlan Plan, HookPlan Hook, bool Enforce, uint ScopeId,
    IReadOnlyList<int> FollowBits, bool KernelSelectors = true)
{
    public IReadOnlyList<SelectorPlan> Selectors => KernelSelectors ? Hook.Selectors : [];

    /// <summary>A hook without selectors matches every call: one bit that constrains nothing.</summary>
    public int Bits => Math.Max(1, Selectors.Count);
}

/// <summary>A policy that does not fit a limit of the kernel side; nothing was written for it.</summary>
public sealed class PolicyLimitException(string message) : InvalidOperationException(message);

/// <summary>One argument read at an attach point.</summary>
/// <param name="Resolve">A resolve: path's <see cref="ResolvePlan.Key"/>: the slot reads argument Offset followed through
/// it (Type is then <see cref="ArgType.Resolved"/>, the size byte the path's entry in sa_resolve).</param>
public sealed record ArgRead(int Offset, int Size, ArgType Type, string? Resolve = null);

/// <summary>A stored value of a dimension: data bytes after the key header, how many bits of it an LPM lookup
/// compares (all of them for exact sets), and the selectors it stands for: those whose set holds it and, for
/// prefixes and CIDRs, those whose set holds a shorter prefix of it.</summary>
public sealed record DimValue(byte[] Data, int Bits, ulong[] Selectors);

public sealed record DimLayout(W.DimKind Kind, int Slot, ulong[] Care, ulong[] Neg, IReadOnlyList<DimValue> Values)
{
    public string Map => MapOf(Kind);

    public static string MapOf(W.DimKind kind) => kind switch
    {
        W.DimKind.BinExact or W.DimKind.StrExact => BpfNames.Maps.StrSet,
        W.DimKind.BinPrefix or W.DimKind.BinPostfix or W.DimKind.StrPrefix or W.DimKind.StrPostfix => BpfNames.Maps.StrPrefix,
        W.DimKind.Addr or W.DimKind.SAddr => BpfNames.Maps.AddrLpm,
        _ => BpfNames.Maps.IntSet,
    };

    public bool IsProcessLevel => Kind is W.DimKind.BinExact or W.DimKind.BinPrefix or W.DimKind.BinPostfix;
}

/// <summary>The selector bits of an attach point: which arguments are read into which slots, which bits each hook
/// has (in selector order), and the indexed dimensions with their care and negation masks and stored values.</summary>
/// <param name="Flags">What the syscall's exit looks up again (the point has a resolved file-name argument).</param>
/// <param name="Quick">At a point matched at exit alone (<see cref="W.PointFlags.Only"/>): the dimension written after the others
/// (dims[ndims], not counted in ndims) that rejects a call from the first component of the opened file's path before the
/// path is built: "/" + the first component of the Prefix and Equal values of each selector that has one on the path.</param>
/// <param name="Syscalls">At raw_syscalls/sys_enter or sys_exit: the syscall numbers its selectors can match (bit n: number n),
/// other syscalls leaving before the selectors run; null: every call runs them (<see cref="PolicyEncoding.SyscallFilter"/>).</param>
/// <param name="QuickName">With <see cref="W.PointFlags.Quick"/>: the dimension written after the quick one (dims[ndims + 1]) that
/// rejects a call from the opened file's own name: "/" + the last component + "/" of the Postfix values of each selector that
/// has one on the path (all holding a "/", so that the name must be that component exactly).</param>
public sealed record PointLayout(IReadOnlyList<ArgRead> Args, IReadOnlyList<int[]> HookSlots, IReadOnlyList<(int First, int End)> HookBits,
    IReadOnlyList<DimLayout> Dims, int Bits, W.PointFlags Flags = 0, bool Stacks = false, DimLayout? Quick = null, ulong[]? Syscalls = null,
    DimLayout? QuickName = null)
{
    public int ProcessDims => Dims.Count(d => d.IsProcessLevel);
}

public sealed record MapEntry(string Map, byte[] Key, byte[] Value);

/// <summary>Everything one generation of an attach point writes: its configuration, a record per selector bit
/// and the value-set entries.</summary>
public sealed record PointGeneration(uint Ap, uint Gen, PointLayout Layout, MapEntry Config, IReadOnlyList<MapEntry> Selectors, IReadOnlyList<MapEntry> Values)
{
    public IEnumerable<MapEntry> All => Values.Concat(Selectors).Append(Config);
}

/// <summary>Turns the hooks of an attach point into the bytes of one generation of its configuration. Pure.</summary>
public static class PolicyEncoding
{
    public const int Words = Contract.SelWords;

    /// <summary>Assigns argument slots, selector bits and dimensions. Hooks keep their order; bits are given in
    /// selector order within each hook. Throws <see cref="PolicyLimitException"/> naming the policy whose hook
    /// crossed a limit of the point.</summary>
    /// <param name="exitOnly">Whether this kernel runs the exit-only program (asked only for an open whose hooks all only
    /// post); null: it does (a plan checked without a kernel).</param>
    public static PointLayout Layout(IReadOnlyList<PlacedHook> hooks, string point, Func<bool>? exitOnly = null)
    {
        var args = new List<ArgRead>();
        var hookSlots = new List<int[]>();
        var hookBits = new List<(int, int)>();
        var dims = new List<DimBuilder>();
        var pathFilters = new List<(int Bit, int Slot, ValueSet Values)>();
        var postfixFilters = new List<(int Bit, int Slot, ValueSet Values)>();
        int bit = 0;
        foreach (var h in hooks)
        {
            var slots = new int[h.Hook.Args.Count == 0 ? 0 : h.Hook.Args.Max(a => a.Slot) + 1];
            foreach (var a in h.Hook.Args)
            {
                var read = a.Resolve is not null ? new ArgRead(a.Offset, 0, ArgType.Resolved, ResolveKey(a)) : new ArgRead(a.Offset, a.Size, a.KernelType);
                int slot = args.IndexOf(read);
                if (slot < 0)
                {
                    args.Add(read);
                    slot = args.Count - 1;
                }
                slots[a.Slot] = slot;
            }
            Limit(h, args.Count, Contract.PointArgs, "distinct argument reads", point);
            hookSlots.Add(slots);
            Limit(h, bit + h.Bits, Contract.SelBits, "selectors", point);
            hookBits.Add((bit, bit + h.Bits));
            for (int s = 0; s < h.Selectors.Count; s++, bit++)
            {
                var sel = h.Selectors[s];
                var used = new List<DimBuilder>();
                if (sel.BinaryCmp != Cmp.None)
                    Dim(dims, used, BinaryKind(sel.BinaryCmp), 0).Add(bit, IsNegated(sel.BinaryCmp), h.Plan.ValueSets[sel.BinaryValueSet!.Value]);
                foreach (var f in sel.Args)
                    if (ArgKind(f.Cmp, h.Hook.Args.First(a => a.Slot == f.Slot).KernelType) is { } kind)
                    {
                        Dim(dims, used, kind, slots[f.Slot]).Add(bit, IsNegated(f.Cmp), h.Plan.ValueSets[f.ValueSet!.Value]);
                        if (f.Cmp == Cmp.Prefix || kind is W.DimKind.StrExact && f.Cmp == Cmp.In)
                            pathFilters.Add((bit, slots[f.Slot], h.Plan.ValueSets[f.ValueSet!.Value]));
                        else if (f.Cmp == Cmp.Postfix)
                            postfixFilters.Add((bit, slots[f.Slot], h.Plan.ValueSets[f.ValueSet!.Value]));
                    }
                Limit(h, dims.Count, Contract.MaxDims, "indexed dimensions (operator, argument) of the selectors", point);
            }
            if (h.Selectors.Count == 0)
                bit++;
        }
        var ordered = dims.Where(d => d.ProcessLevel).Concat(dims.Where(d => !d.ProcessLevel)).Select(d => d.Build()).ToList();
        // A file name that an Equal/Prefix/Postfix selector matches is resolved in the kernel (PathArguments);
        // one only read for the event stays as passed (no cost).
        var target = hooks.Count > 0 && hooks[0].Hook.Mechanism == Kernel.Mechanism.Tracepoint ? hooks[0].Hook.Target : "";
        W.PointFlags flags = hooks.Any(h => h.Hook.Return is not null) ? W.PointFlags.Return : 0;
        // imaHash: the events wait, as a return probe's do, for the sleepable program attached after the hook's.
        if (hooks.Any(h => h.Hook.Selectors.Any(s => s.Actions.HasFlag(Actions.ImaHash))))
            flags |= W.PointFlags.Return | W.PointFlags.Ima;
        foreach (int slot in ordered.Where(d => d.Kind is W.DimKind.StrExact or W.DimKind.StrPrefix or W.DimKind.StrPostfix).Select(d => d.Slot).Distinct())
            if (PathArguments.Resolved(target, args[slot].Offset, args[slot].Type) is { } resolved)
            {
                args[slot] = args[slot] with { Type = resolved };
                flags |= PathArguments.Exit(target);
            }
        if (hooks.Any(h => Fanotify.PathChanges.Covered(h.Hook, out _)))
            flags |= W.PointFlags.AfterNote; // its calls are noted for the after-call match (Fanotify.AfterCallNotes)
        bool stacks = hooks.Any(h => h.Hook.Selectors.Any(s => (s.Actions & (Actions.KernelStack | Actions.UserStack)) != 0));
        DimLayout? quick = null, quickName = null;
        if (flags.HasFlag(W.PointFlags.Fd) && hooks.All(h => PathArguments.EnterNeeded(h.Hook) is null) && (exitOnly?.Invoke() ?? true))
        {
            flags |= W.PointFlags.Only;
            // Only a positive Prefix or Equal on the path says what its first component must be.
            var positive = pathFilters.Where(p => args[p.Slot].Type is ArgType.UserPath or ArgType.UserPathAt).ToList();
            if (positive.Count > 0 && ordered.Count < Contract.MaxDims)
            {
                var q = new DimBuilder(W.DimKind.StrPrefix, positive[0].Slot);
                foreach (var (b, _, set) in positive)
                    q.AddFirstComponents(b, set.Values);
                quick = q.Build();
                flags |= W.PointFlags.Quick;
            }
            // A positive Postfix whose values all hold a "/" says what the file's own name must be.
            var named = postfixFilters.Where(p => args[p.Slot].Type is ArgType.UserPath or ArgType.UserPathAt
                && p.Values.Values.All(v => LastComponent(v) is not null)).ToList();
            if (named.Count > 0 && ordered.Count + 1 < Contract.MaxDims)
            {
                var q = new DimBuilder(W.DimKind.StrPrefix, named[0].Slot);
                foreach (var (b, _, set) in named)
                    q.AddComponents(b, set.Values.Select(v => LastComponent(v)!));
                quickName = q.Build();
                flags |= W.PointFlags.Quick;
            }
        }
        return new PointLayout(args, hookSlots, hookBits, ordered, bit, flags, stacks, quick, SyscallFilter(target, args, ordered, bit), quickName);
    }

    /// <summary>What a Postfix value says about the name of the file whose path ends with it: "/X/" for its last component X
    /// when a "/" comes before X (the name is X exactly); null when the value holds no "/" (the name only ends with it) or ends
    /// with one.</summary>
    public static string? LastComponent(string value)
    {
        int slash = value.LastIndexOf('/');
        return slash < 0 || slash == value.Length - 1 ? null : "/" + value[(slash + 1)..] + "/";
    }

    /// <summary>raw_syscalls/sys_enter and sys_exit fire on every syscall of every process (a generic run there cost ~300 ns per
    /// syscall here): when every selector at the point wants the syscall number in a set of numbers below
    /// <see cref="Contract.SysidBits"/> (Equal, In, InMap on the record's id, read whole), the union of those sets lets the
    /// kernel turn the other syscalls away first. Null when some selector (or a hook without selectors) takes any number.</summary>
    public static ulong[]? SyscallFilter(string target, IReadOnlyList<ArgRead> args, IReadOnlyList<DimLayout> dims, int bits)
    {
        if (target is not ("raw_syscalls/sys_enter" or "raw_syscalls/sys_exit") || bits == 0)
            return null;
        var covered = new ulong[Words];
        var ids = new ulong[Contract.SysidWords];
        foreach (var d in dims)
        {
            var read = args[d.Slot];
            if (d.Kind != W.DimKind.Int || read.Offset != 8 || read.Resolve is not null
                || !(read.Type == ArgType.Syscall64 || read.Type is ArgType.Int or ArgType.UInt && read.Size == 8))
                continue;
            var positive = new ulong[Words];
            for (int w = 0; w < Words; w++)
                positive[w] = d.Care[w] & ~d.Neg[w];
            var wanted = d.Values.Where(v => v.Selectors.Zip(positive, (a, b) => a & b).Any(x => x != 0))
                .Select(v => BinaryPrimitives.ReadUInt64LittleEndian(v.Data)).ToList();
            // A number past the filter's bits (an ia32 one has bit 31 set): this dimension cannot vouch for its selectors.
            if (wanted.Any(n => n >= Contract.SysidBits))
                continue;
            foreach (var n in wanted)
                ids[n / 64] |= 1UL << (int)(n % 64);
            for (int w = 0; w < Words; w++)
                covered[w] |= positive[w];
        }
        for (int b = 0; b < bits; b++)
            if ((covered[b / 64] & (1UL << (b % 64))) == 0)
                return null;
        return ids;
    }

    /// <summary>What a Prefix or Equal value says about a path's first component: "/X/" when the value goes on after its
    /// first component X, else the value itself ("/et" or "/etc": the first component starts with it). A path whose "/" +
    /// first component + "/" has none of these as a prefix cannot match the value.</summary>
    public static string FirstComponent(string value)
    {
        if (!value.StartsWith('/'))
            return value; // never the start of an absolute path: nothing passes but a call it would not match either
        int next = value.IndexOf('/', 1);
        return next < 0 ? value : value[..(next + 1)];
    }

    /// <summary>What identifies a resolve: read (sa_resolve entries are shared by equal ones): the path's steps and the leaf's type.</summary>
    public static string ResolveKey(ArgPlan a) => $"{(int)a.KernelType}:{a.Size}:{a.Resolve!.Key}";

    /// <summary>The struct sa_resolve of a resolve: path: its steps, and how the leaf is read (the argument's type).</summary>
    public static byte[] ResolveEntry(ArgPlan a)
    {
        var steps = a.Resolve?.Steps ?? throw new ArgumentException($"resolve '{a.Resolve?.Path}' was not followed in this kernel's BTF");
        var b = new byte[W.Resolve.Length];
        b[W.Resolve.Leaf + W.PointArg.Type] = (byte)a.KernelType;
        b[W.Resolve.Leaf + W.PointArg.Size] = (byte)a.Size;
        b[W.Resolve.Nsteps] = (byte)steps.Count;
        uint deref = 0;
        for (int i = 0; i < steps.Count; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(W.Resolve.Off + 4 * i), steps[i].Offset);
            if (steps[i].Deref) deref |= 1u << i;
        }
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(W.Resolve.Deref), deref);
        return b;
    }

    private static void Limit(PlacedHook h, int n, int max, string what, string point)
    {
        if (n > max)
            throw new PolicyLimitException($"policy {h.Plan.Name}: attach point {point} would have {n} {what}, at most {max}");
    }

    /// <summary>A selector may use one dimension kind on one slot more than once (Prefix /a and NotPrefix /a/b):
    /// each use within a selector takes the next instance of that (kind, slot).</summary>
    private static DimBuilder Dim(List<DimBuilder> dims, List<DimBuilder> usedBySelector, W.DimKind kind, int slot)
    {
        var d = dims.FirstOrDefault(x => x.Kind == kind && x.Slot == slot && !usedBySelector.Contains(x));
        if (d is null)
            dims.Add(d = new DimBuilder(kind, slot));
        usedBySelector.Add(d);
        return d;
    }

    private static bool IsNegated(Cmp c) => c is Cmp.NotIn or Cmp.NotPrefix or Cmp.NotPostfix or Cmp.NotDAddr or Cmp.NotDPort or Cmp.NotFamily
        or Cmp.NotSAddr or Cmp.NotSPort or Cmp.NotProtocol or Cmp.NotState;

    private static W.DimKind BinaryKind(Cmp c) => c switch
    {
        Cmp.In or Cmp.NotIn => W.DimKind.BinExact,
        Cmp.Prefix or Cmp.NotPrefix => W.DimKind.BinPrefix,
        _ => W.DimKind.BinPostfix,
    };

    /// <summary>The dimension an argument filter indexes; null for the comparisons that are not indexed.</summary>
    private static W.DimKind? ArgKind(Cmp c, ArgType type) => c switch
    {
        Cmp.In or Cmp.NotIn => IsString(type) ? W.DimKind.StrExact : W.DimKind.Int,
        Cmp.Prefix or Cmp.NotPrefix => W.DimKind.StrPrefix,
        Cmp.Postfix or Cmp.NotPostfix => W.DimKind.StrPostfix,
        Cmp.DAddr or Cmp.NotDAddr => W.DimKind.Addr,
        Cmp.DPort or Cmp.NotDPort => W.DimKind.Port,
        Cmp.Family or Cmp.NotFamily => W.DimKind.Family,
        Cmp.SAddr or Cmp.NotSAddr => W.DimKind.SAddr,
        Cmp.SPort or Cmp.NotSPort => W.DimKind.SPort,
        Cmp.Protocol or Cmp.NotProtocol => W.DimKind.Protocol,
        Cmp.State or Cmp.NotState => W.DimKind.State,
        _ => null,
    };

    public static bool IsString(ArgType t) => t is ArgType.String or ArgType.File or ArgType.Path or ArgType.Bprm or ArgType.KString
        or ArgType.NetDev or ArgType.Dentry or ArgType.Kiocb or ArgType.Module or ArgType.LoadInfo or ArgType.Buf or ArgType.BufMax;

    private sealed class DimBuilder(W.DimKind kind, int slot)
    {
        public W.DimKind Kind => kind;
        public int Slot => slot;
        public bool ProcessLevel => kind is W.DimKind.BinExact or W.DimKind.BinPrefix or W.DimKind.BinPostfix;
        private readonly ulong[] _care = new ulong[Words], _neg = new ulong[Words];
        private readonly Dictionary<string, (byte[] Data, int Bits, ulong[] Sel)> _values = new();

        public void Add(int bit, bool negated, ValueSet set)
        {
            Set(_care, bit);
            if (negated) Set(_neg, bit);
            foreach (var (data, bits) in StoredValues(kind, set))
            {
                var id = Id(data, bits);
                if (!_values.TryGetValue(id, out var e))
                    _values[id] = e = (data, bits, new ulong[Words]);
                Set(e.Sel, bit);
            }
        }

        /// <summary>The quick dimension's values of a selector: the first components its values allow (PolicyEncoding.FirstComponent).</summary>
        public void AddFirstComponents(int bit, IEnumerable<string> values) => AddComponents(bit, values.Select(FirstComponent));

        /// <summary>A quick dimension's values of a selector, as stored.</summary>
        public void AddComponents(int bit, IEnumerable<string> components)
        {
            Set(_care, bit);
            foreach (var v in components)
            {
                var (data, bits) = Stored(kind, v);
                var id = Id(data, bits);
                if (!_values.TryGetValue(id, out var e))
                    _values[id] = e = (data, bits, new ulong[Words]);
                Set(e.Sel, bit);
            }
        }

        public DimLayout Build()
        {
            var values = _values.Values.ToList();
            if (Lpm(kind))
            {
                // The trie answers with the longest stored prefix only: it stands for every stored prefix of itself.
                var lengths = values.Select(v => v.Bits).Distinct().ToList();
                var byId = _values;
                values = values.Select(v =>
                {
                    var sel = (ulong[])v.Sel.Clone();
                    foreach (var len in lengths.Where(l => l < v.Bits))
                        if (byId.TryGetValue(Id(Masked(v.Data, len), len), out var anc))
                            for (int w = 0; w < Words; w++) sel[w] |= anc.Sel[w];
                    return (v.Data, v.Bits, sel);
                }).ToList();
            }
            return new DimLayout(kind, slot, _care, _neg, values.Select(v => new DimValue(v.Data, v.Bits, v.Sel)).ToList());
        }
    }

    private static bool Lpm(W.DimKind k) => DimLayout.MapOf(k) is BpfNames.Maps.StrPrefix or BpfNames.Maps.AddrLpm;

    private static void Set(ulong[] bitmap, int bit) => bitmap[bit >> 6] |= 1UL << (bit & 63);

    /// <summary>Identity of a stored value: its significant bits only.</summary>
    private static string Id(byte[] data, int bits) => bits + ":" + Convert.ToHexString(Masked(data, bits), 0, (bits + 7) / 8);

    private static byte[] Masked(byte[] data, int bits)
    {
        var m = new byte[Math.Max(data.Length, (bits + 7) / 8)];
        for (int i = 0; i < bits / 8; i++) m[i] = data[i];
        if (bits % 8 != 0) m[bits / 8] = (byte)(data[bits / 8] & (0xff << (8 - bits % 8)));
        return m;
    }

    private static bool IsInteger(W.DimKind kind) => kind is W.DimKind.Int or W.DimKind.Port or W.DimKind.Family or W.DimKind.SPort or W.DimKind.Protocol or W.DimKind.State;

    /// <summary>The stored form of every value of a set: integer dimensions take the compiler's parsed
    /// <see cref="ValueSet.Integers"/>, the others the (canonical) text.</summary>
    private static IEnumerable<(byte[] Data, int Bits)> StoredValues(W.DimKind kind, ValueSet set) =>
        IsInteger(kind) ? set.Integers.Select(Stored) : set.Values.Select(v => Stored(kind, v));

    /// <summary>An integer as the kernel looks it up in sa_int_set.</summary>
    public static (byte[] Data, int Bits) Stored(ulong value)
    {
        var data = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(data, value);
        return (data, 64);
    }

    /// <summary>A string or network (canonical "a.b.c.d/n", see <see cref="ValueSet"/>) as the kernel looks it up:
    /// data bytes after the key header and the bits that count.</summary>
    public static (byte[] Data, int Bits) Stored(W.DimKind kind, string value)
    {
        switch (kind)
        {
            case W.DimKind.BinExact or W.DimKind.StrExact:
            {
                var b = Utf8(value, Contract.StrMax - 1);
                return (b, 8 * b.Length);
            }
            case W.DimKind.BinPrefix or W.DimKind.StrPrefix:
            {
                var b = Utf8(value, Contract.LpmStrMax);
                return (b, 8 * b.Length);
            }
            case W.DimKind.BinPostfix or W.DimKind.StrPostfix:
            {
                // The kernel reverses the bytes of the string it matches: so are the stored postfixes.
                var b = Encoding.UTF8.GetBytes(value);
                Array.Reverse(b);
                b = b[..Math.Min(b.Length, Contract.LpmStrMax)];
                return (b, 8 * b.Length);
            }
            case W.DimKind.Addr or W.DimKind.SAddr:
            {
                var net = IPNetwork.Parse(value);
                var addr = net.BaseAddress.GetAddressBytes();
                var data = new byte[1 + 16];
                data[0] = addr.Length == 4 ? (byte)Contract.AfInet : (byte)Contract.AfInet6;
                addr.CopyTo(data, 1);
                return (data, 8 + net.PrefixLength);
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, "integer dimensions store ValueSet.Integers");
        }
    }

    private static byte[] Utf8(string s, int max)
    {
        var b = Encoding.UTF8.GetBytes(s);
        return b.Length > max ? b[..max] : b;
    }

    /// <summary>What a plan loaded alone would write: one generation per attach point (hook and point ids from 1),
    /// for checking a plan without a kernel. Throws <see cref="PolicyLimitException"/> as a load would.</summary>
    public static IReadOnlyList<PointGeneration> Alone(PolicyPlan plan)
    {
        uint hookId = 0;
        return plan.Hooks.Select(h => new PlacedHook(++hookId, 1, plan, h, plan.Enforce, 0, h.Selectors.Select(_ => -1).ToList()))
            .GroupBy(p => $"{p.Hook.Mechanism}:{p.Hook.Target}")
            .Select((g, i) => Generation((uint)i + 1, 1, Layout([.. g], g.Key), [.. g]))
            .ToList();
    }

    /// <summary>The bytes of generation <paramref name="gen"/> of attach point <paramref name="ap"/>.</summary>
    /// <param name="files">The existing files a file-name value names (<see cref="PathArguments.Files"/>); null: none
    /// (then other names of a file, hard links, are not recognised).</param>
    /// <param name="resolveIds">The sa_resolve entry of each resolve: path (<see cref="ResolveKey"/>); null: 0.</param>
    public static PointGeneration Generation(uint ap, uint gen, PointLayout layout, IReadOnlyList<PlacedHook> hooks,
        Func<string, bool, IEnumerable<PathArguments.FileId>>? files = null, IReadOnlyDictionary<string, byte>? resolveIds = null)
    {
        var config = new byte[W.Point.Length];
        var c = config.AsSpan();
        BinaryPrimitives.WriteUInt16LittleEndian(c[W.Point.Nbits..], (ushort)layout.Bits);
        config[W.Point.Nargs] = (byte)layout.Args.Count;
        config[W.Point.Ndims] = (byte)layout.Dims.Count;
        config[W.Point.NprocDims] = (byte)layout.ProcessDims;
        config[W.Point.Flags] = (byte)layout.Flags;
        config[W.Point.Stacks] = layout.Stacks ? (byte)1 : (byte)0;
        if (layout.Syscalls is { } sysids)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(c[W.Point.SysidFilter..], 1);
            for (int w = 0; w < sysids.Length; w++)
                BinaryPrimitives.WriteUInt64LittleEndian(c[(W.Point.Sysids + 8 * w)..], sysids[w]);
        }
        for (int p = 0; p < layout.Args.Count; p++)
        {
            var o = W.Point.Args + p * W.PointArg.Length;
            BinaryPrimitives.WriteUInt16LittleEndian(c[(o + W.PointArg.Offset)..], (ushort)layout.Args[p].Offset);
            config[o + W.PointArg.Size] = layout.Args[p].Resolve is { } key ? resolveIds?.GetValueOrDefault(key) ?? 0 : (byte)layout.Args[p].Size;
            config[o + W.PointArg.Type] = (byte)layout.Args[p].Type;
        }
        var valid = new ulong[Words];
        for (int b = 0; b < layout.Bits; b++) Set(valid, b);
        WriteBitmap(c[W.Point.Valid..], valid);
        var values = new List<MapEntry>();
        for (int d = 0; d < layout.Dims.Count; d++)
        {
            var dim = layout.Dims[d];
            if (dim.Kind == W.DimKind.StrPostfix)
                config[W.Point.ReverseMask] |= (byte)(1 << dim.Slot);
            var o = W.Point.Dims + d * W.Dim.Length;
            config[o + W.Dim.Kind] = (byte)dim.Kind;
            config[o + W.Dim.Slot] = (byte)dim.Slot;
            WriteBitmap(c[(o + W.Dim.Care)..], dim.Care);
            WriteBitmap(c[(o + W.Dim.Neg)..], dim.Neg);
            foreach (var v in dim.Values)
                values.Add(new MapEntry(dim.Map, ValueKey(dim.Kind, new ValueHeader(gen, ap, d), v.Data, v.Bits), Bitmap(v.Selectors)));
            if (files is not null && layout.Flags != 0 && dim.Kind is W.DimKind.StrExact or W.DimKind.StrPrefix
                && layout.Args[dim.Slot].Type is ArgType.UserPath or ArgType.UserPathAt)
                values.AddRange(InodeEntries(dim, new ValueHeader(gen, ap, d), files));
        }
        // The quick dimensions, after the others: the top directory's at ndims, the file name's at ndims + 1.
        foreach (var (quick, d) in new[] { (layout.Quick, layout.Dims.Count), (layout.QuickName, layout.Dims.Count + 1) })
        {
            if (quick is null || d >= Contract.MaxDims)
                continue;
            var o = W.Point.Dims + d * W.Dim.Length;
            config[o + W.Dim.Kind] = (byte)quick.Kind;
            config[o + W.Dim.Slot] = (byte)quick.Slot;
            WriteBitmap(c[(o + W.Dim.Care)..], quick.Care);
            WriteBitmap(c[(o + W.Dim.Neg)..], quick.Neg);
            foreach (var v in quick.Values)
                values.Add(new MapEntry(quick.Map, ValueKey(quick.Kind, new ValueHeader(gen, ap, d), v.Data, v.Bits), Bitmap(v.Selectors)));
        }
        // No file known by its inode here: no hard link can match by another name, and the exit-only program's quick answer
        // need not read the opened file's link count.
        if (layout.Flags.HasFlag(W.PointFlags.Quick) && !values.Any(v => v.Map == BpfNames.Maps.InodeSet))
            config[W.Point.Flags] |= (byte)W.PointFlags.NoLinks;
        var selectors = new List<MapEntry>();
        for (int h = 0; h < hooks.Count; h++)
        {
            var (first, end) = layout.HookBits[h];
            for (int b = first; b < end; b++)
                selectors.Add(new MapEntry(BpfNames.Maps.Selectors, SelectorKey(ap, gen, b),
                    Selector(hooks[h], b - first, end, layout.HookSlots[h])));
        }
        return new PointGeneration(ap, gen, layout, new MapEntry(BpfNames.Maps.Points, PointKey(ap, gen), config), selectors, values);
    }

    public readonly record struct ValueHeader(uint Gen, uint Ap, int Dim);

    /// <summary>The files a file-name dimension's values name, by inode, each with the selectors its path would
    /// get from the dimension's own lookup (exact: its value's; prefix: its longest stored prefix's).</summary>
    private static IEnumerable<MapEntry> InodeEntries(DimLayout dim, ValueHeader h, Func<string, bool, IEnumerable<PathArguments.FileId>> files)
    {
        bool prefix = dim.Kind == W.DimKind.StrPrefix;
        var values = dim.Values.Select(v => (Text: Encoding.UTF8.GetString(v.Data), v.Selectors)).ToList();
        var byInode = new Dictionary<(uint, ulong), ulong[]>();
        foreach (var v in values)
            foreach (var f in files(v.Text, prefix))
            {
                var best = prefix ? values.Where(u => f.Path.StartsWith(u.Text, StringComparison.Ordinal)).MaxBy(u => u.Text.Length) : v;
                if (best.Selectors is null) continue;
                var sel = byInode.TryGetValue((f.Dev, f.Ino), out var s) ? s : byInode[(f.Dev, f.Ino)] = new ulong[Words];
                for (int w = 0; w < Words; w++) sel[w] |= best.Selectors[w];
            }
        foreach (var ((dev, ino), sel) in byInode)
        {
            var k = new byte[W.InodeKey.Length];
            WriteHeader(k.AsSpan(W.InodeKey.Hdr), h);
            BinaryPrimitives.WriteUInt32LittleEndian(k.AsSpan(W.InodeKey.Dev), dev);
            BinaryPrimitives.WriteUInt64LittleEndian(k.AsSpan(W.InodeKey.Ino), ino);
            yield return new MapEntry(BpfNames.Maps.InodeSet, k, Bitmap(sel));
        }
    }

    private static void WriteHeader(Span<byte> k, ValueHeader h)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(k[W.ValueHeader.Gen..], h.Gen);
        BinaryPrimitives.WriteUInt16LittleEndian(k[W.ValueHeader.Ap..], (ushort)h.Ap);
        BinaryPrimitives.WriteUInt16LittleEndian(k[W.ValueHeader.Dim..], (ushort)h.Dim);
    }

    /// <summary>The key of a stored value in its dimension's map.</summary>
    public static byte[] ValueKey(W.DimKind kind, ValueHeader h, byte[] data, int bits)
    {
        switch (DimLayout.MapOf(kind))
        {
            case BpfNames.Maps.StrSet:
            {
                var k = new byte[W.StrKey.Length];
                WriteHeader(k.AsSpan(W.StrKey.Hdr), h);
                data.CopyTo(k, W.StrKey.Data);
                return k;
            }
            case BpfNames.Maps.StrPrefix:
            {
                var k = new byte[W.LpmKey.Length];
                BinaryPrimitives.WriteUInt32LittleEndian(k.AsSpan(W.LpmKey.Prefixlen), (uint)(8 * W.ValueHeader.Length + bits));
                WriteHeader(k.AsSpan(W.LpmKey.Hdr), h);
                data.CopyTo(k, W.LpmKey.Data);
                return k;
            }
            case BpfNames.Maps.AddrLpm:
            {
                var k = new byte[W.AddrKey.Length];
                BinaryPrimitives.WriteUInt32LittleEndian(k.AsSpan(W.AddrKey.Prefixlen), (uint)(8 * W.ValueHeader.Length + bits));
                WriteHeader(k.AsSpan(W.AddrKey.Hdr), h);
                data.CopyTo(k, W.AddrKey.Family); // family, then the address
                return k;
            }
            default:
            {
                var k = new byte[W.IntKey.Length];
                WriteHeader(k.AsSpan(W.IntKey.Hdr), h);
                data.CopyTo(k, W.IntKey.Value);
                return k;
            }
        }
    }

    /// <summary>sa_points is an array with two slots per attach point, one per generation parity (policy_maps.h's
    /// sa_point_index).</summary>
    public static byte[] PointKey(uint ap, uint gen) => BitConverter.GetBytes(ap * 2 + (gen & 1));

    public static byte[] SelectorKey(uint ap, uint gen, int bit)
    {
        var k = new byte[W.SelectorKey.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(k.AsSpan(W.SelectorKey.Ap), ap);
        BinaryPrimitives.WriteUInt32LittleEndian(k.AsSpan(W.SelectorKey.Gen), gen);
        BinaryPrimitives.WriteUInt32LittleEndian(k.AsSpan(W.SelectorKey.Bit), (uint)bit);
        return k;
    }

    public static byte[] Bitmap(ulong[] words)
    {
        var b = new byte[W.Bitmap.Length];
        WriteBitmap(b, words);
        return b;
    }

    /// <summary>matchNamespaces, the *Changes selectors, isNamespaceCapability and the pid tree: all zero (nothing
    /// checked, ns_any clear) for selectors without them.</summary>
    private static void Namespaces(Span<byte> s, SelectorPlan sel)
    {
        s[W.Selector.PidTree] = sel.PidTree ? (byte)1 : (byte)0;
        if (!sel.HasNamespaceChecks) return;
        s[W.Selector.NsAny] = 1;
        s[W.Selector.NsNmatch] = (byte)sel.Namespaces.Count;
        for (int i = 0; i < sel.Namespaces.Count; i++)
        {
            var n = sel.Namespaces[i];
            var e = s[(W.Selector.NsMatch + i * W.NsMatch.Length)..];
            e[W.NsMatch.Ns] = (byte)n.Namespace;
            e[W.NsMatch.Cmp] = (byte)n.Cmp;
            e[W.NsMatch.Nvals] = (byte)n.Values.Count;
            for (int v = 0; v < n.Values.Count; v++)
                BinaryPrimitives.WriteUInt32LittleEndian(e[(W.NsMatch.Vals + 4 * v)..], n.Values[v] == "host_ns" ? HostNamespaces.Inode(n.Namespace) : PolicyValues.TryParseInRange(n.Values[v], 0, uint.MaxValue, out var inode) ? (uint)inode : 0);
        }
        s[W.Selector.NsChgCmp] = (byte)sel.NamespaceChangeCmp;
        BinaryPrimitives.WriteUInt16LittleEndian(s[W.Selector.NsChgMask..], sel.NamespaceChangeMask);
        s[W.Selector.CapChgCmp] = (byte)sel.CapChangeCmp;
        s[W.Selector.CapChgSet] = sel.CapChangeSet;
        BinaryPrimitives.WriteUInt64LittleEndian(s[W.Selector.CapChgMask..], sel.CapChangeMask);
        if (sel.CapNamespaceOnly)
            BinaryPrimitives.WriteUInt32LittleEndian(s[W.Selector.CapUserns..], HostNamespaces.Inode(Wire.Namespace.User));
        if (sel.CapChangeNamespaceOnly)
            BinaryPrimitives.WriteUInt32LittleEndian(s[W.Selector.CapChgUserns..], HostNamespaces.Inode(Wire.Namespace.User));
    }

    private static void WriteBitmap(Span<byte> dst, ulong[] words)
    {
        for (int w = 0; w < Words; w++)
            BinaryPrimitives.WriteUInt64LittleEndian(dst[(8 * w)..], words[w]);
    }

    /// <summary>The record of selector <paramref name="index"/> of a hook (a hook without selectors: its one
    /// bit, which checks nothing and posts).</summary>
    public static byte[] Selector(PlacedHook h, int index, int hookEnd, int[] slots)
    {
        var b = new byte[W.Selector.Length];
        var s = b.AsSpan();
        var sel = index < h.Selectors.Count ? h.Selectors[index] : null;
        BinaryPrimitives.WriteUInt32LittleEndian(s[W.Selector.HookId..], h.HookId);
        BinaryPrimitives.WriteUInt32LittleEndian(s[W.Selector.PolicyId..], h.PolicyId);
        BinaryPrimitives.WriteUInt16LittleEndian(s[W.Selector.HookEnd..], (ushort)hookEnd);
        b[W.Selector.Index] = (byte)index;
        b[W.Selector.Nargs] = (byte)h.Hook.Args.Count;
        foreach (var a in h.Hook.Args)
            b[W.Selector.Args + a.Slot] = (byte)slots[a.Slot];
        BinaryPrimitives.WriteUInt32LittleEndian(s[W.Selector.ScopeId..], h.ScopeId);
        if (sel?.Set is { } set)
        {
            b[W.Selector.SetArg] = (byte)(set.NoteArg + 1);
            b[W.Selector.SetSize] = (byte)set.Size;
            BinaryPrimitives.WriteInt64LittleEndian(s[W.Selector.SetValue..], set.Value);
        }
        if (sel?.SockArg is { } sockArg && h.Hook.Args.FirstOrDefault(a => a.Index == sockArg) is { } sock)
            b[W.Selector.SockSlot] = (byte)slots[sock.Slot];
        var flags = h.Enforce ? W.SelectorFlags.Enforce : 0;
        if (sel is not null && sel.Actions.HasFlag(Actions.ImaHash))
            b[W.Selector.RetHook] = 1;
        if (h.Hook.Return is { } ret)
        {
            b[W.Selector.RetHook] = 1;
            b[W.Selector.RetSock] = ret.KernelType == ArgType.Sock ? (byte)1 : (byte)0;
            BinaryPrimitives.WriteUInt32LittleEndian(s[W.Selector.RetActions..], (uint)((sel?.ReturnActions ?? Actions.Post) | ret.ArgAction));
            BinaryPrimitives.WriteUInt32LittleEndian(s[W.Selector.RetSignal..], (uint)(sel?.ReturnSignal ?? 0));
            var filters = sel?.ReturnArgs ?? [];
            if (filters.Count > Contract.RetCmps)
                throw new PolicyLimitException($"policy {h.Plan.Name}: {filters.Count} matchReturnArgs entries in one selector, at most {Contract.RetCmps}");
            b[W.Selector.RetNcmps] = (byte)filters.Count;
            if (h.Hook.Args.FirstOrDefault(a => a.KernelType == ArgType.BufRet) is { } copy)
                b[W.Selector.RetCopy] = (byte)(copy.Slot + 1);
            for (int i = 0; i < filters.Count; i++)
            {
                var o = W.Selector.RetCmps + i * W.RetCmp.Length;
                b[o + W.RetCmp.Cmp] = (byte)filters[i].Cmp;
                b[o + W.RetCmp.Nvalues] = (byte)Math.Min(filters[i].Values.Count, Contract.RetValues);
                b[o + W.RetCmp.IsSigned] = ret.Signed ? (byte)1 : (byte)0;
                for (int v = 0; v < Math.Min(filters[i].Values.Count, Contract.RetValues); v++)
                    BinaryPrimitives.WriteUInt64LittleEndian(s[(o + W.RetCmp.Values + 8 * v)..], SignExtended(filters[i].Values[v], ret));
            }
        }
        if (sel is null)
        {
            b[W.Selector.Flags] = (byte)flags;
            BinaryPrimitives.WriteUInt32LittleEndian(s[W.Selector.Actions..], (uint)WithMaxData(Actions.Post, h.Hook));
            return b;
        }
        // Selectors that need ancestry only post from the kernel; user space decides and enforces.
        if (!sel.KernelOnly) flags |= W.SelectorFlags.UserSpace;
        if (sel.NamespacePids) flags |= W.SelectorFlags.PidNs;
        b[W.Selector.Flags] = (byte)flags;
        BinaryPrimitives.WriteUInt32LittleEndian(s[W.Selector.Actions..], (uint)WithMaxData(sel.KernelOnly ? sel.Actions : Actions.Post, h.Hook));
        BinaryPrimitives.WriteUInt32LittleEndian(s[W.Selector.Signal..], (uint)sel.Signal);
        BinaryPrimitives.WriteInt32LittleEndian(s[W.Selector.Error..], sel.Error);
        BinaryPrimitives.WriteUInt64LittleEndian(s[W.Selector.RateLimitNs..], sel.RateLimitNs);
        b[W.Selector.PidCmp] = (byte)sel.PidCmp;
        b[W.Selector.Npids] = (byte)Math.Min(sel.Pids.Count, Contract.MaxPids);
        for (int p = 0; p < Math.Min(sel.Pids.Count, Contract.MaxPids); p++)
            BinaryPrimitives.WriteUInt32LittleEndian(s[(W.Selector.Pids + 4 * p)..], sel.Pids[p]);
        if (index < h.FollowBits.Count && h.FollowBits[index] >= 0)
            b[W.Selector.Follow] = (byte)(h.FollowBits[index] + 1);
        b[W.Selector.CapCmp] = (byte)sel.CapCmp;
        b[W.Selector.CapSet] = sel.CapSet;
        BinaryPrimitives.WriteUInt64LittleEndian(s[W.Selector.CapMask..], sel.CapMask);
        Namespaces(s, sel);
        var cmps = sel.Args.Where(f => f.Cmp is Cmp.GreaterThan or Cmp.LessThan or Cmp.Mask or Cmp.CapsGained).ToList();
        if (cmps.Count > Contract.MaxIntCmps)
            throw new PolicyLimitException($"policy {h.Plan.Name}: {cmps.Count} GreaterThan/LessThan/Mask/CapabilitiesGained filters in one selector, at most {Contract.MaxIntCmps}");
        b[W.Selector.Ncmps] = (byte)cmps.Count;
        for (int i = 0; i < cmps.Count; i++)
        {
            var o = W.Selector.Cmps + i * W.IntCmp.Length;
            b[o + W.IntCmp.Slot] = (byte)slots[cmps[i].Slot];
            b[o + W.IntCmp.Cmp] = (byte)cmps[i].Cmp;
            b[o + W.IntCmp.IsSigned] = h.Hook.Args.First(a => a.Slot == cmps[i].Slot).KernelType == ArgType.Int ? (byte)1 : (byte)0;
            BinaryPrimitives.WriteUInt64LittleEndian(s[(o + W.IntCmp.Value)..], cmps[i].Cmp == Cmp.CapsGained ? (ulong)slots[(int)cmps[i].Value] : cmps[i].Value);
        }
        return b;
    }

    /// <summary>A Post of a hook with maxData buffer arguments sends them in data records first (bpf/include/maxdata.h).</summary>
    private static Actions WithMaxData(Actions actions, HookPlan hook) =>
        actions.HasFlag(Actions.Post) && hook.Args.Any(a => a.KernelType is ArgType.BufMax or ArgType.IovIterMax) ? actions | Actions.MaxData : actions;

    /// <summary>A filter value as the exit compares it with the 64-bit return value: an int returnArg's value is
    /// the 32-bit pattern the policy wrote ("4294967295" is -1), widened with its sign.</summary>
    private static ulong SignExtended(ulong v, ReturnPlan ret) => ret.Signed && ret.Size == 4 ? (ulong)(long)(int)(uint)v : v;

    /// <summary>A process's binary as the process sensor keeps it (sa_exec_binary).</summary>
    public static byte[] Binary(string path)
    {
        var v = new byte[W.Binary.Length];
        var bytes = Utf8(path, Contract.StrMax - 1);
        BinaryPrimitives.WriteUInt32LittleEndian(v, (uint)bytes.Length);
        bytes.CopyTo(v, W.Binary.Path);
        return v;
    }

    /// <summary>How many values a plan puts into each value-set map (before sharing with other policies).</summary>
    public static Dictionary<string, int> ValueCounts(PolicyPlan plan)
    {
        var counts = new Dictionary<string, int>();
        foreach (var hook in plan.Hooks)
            foreach (var sel in hook.Selectors)
            {
                if (sel.BinaryValueSet is { } bs)
                    Count(counts, DimLayout.MapOf(BinaryKind(sel.BinaryCmp)), plan.ValueSets[bs].Values.Count);
                foreach (var f in sel.Args)
                    if (f.ValueSet is { } vs && ArgKind(f.Cmp, hook.Args.First(a => a.Slot == f.Slot).KernelType) is { } kind)
                        Count(counts, DimLayout.MapOf(kind), plan.ValueSets[vs].Values.Count);
            }
        return counts;
    }

    private static void Count(Dictionary<string, int> counts, string map, int n) => counts[map] = counts.GetValueOrDefault(map) + n;
}
