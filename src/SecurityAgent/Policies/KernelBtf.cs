using System.Buffers.Binary;
using System.Text;

namespace SecurityAgent.Policies;

/// <summary>One step of a resolve: field path: add <paramref name="Offset"/> to the value, then read the pointer
/// there when <paramref name="Deref"/> (struct sa_resolve).</summary>
public readonly record struct ResolveStep(uint Offset, bool Deref);

/// <summary>A resolve: field path as the compiler followed it in the kernel's BTF: the steps from the argument's
/// value, and what the leaf is (for --explain). <paramref name="Steps"/> is null when the policy was judged for
/// another kernel: the path is then checked against that node's BTF when the policy loads there.</summary>
public sealed record ResolvePlan(string Path, string From, IReadOnlyList<ResolveStep>? Steps, string Leaf)
{
    /// <summary>The steps as one comparable string (an attach point reads a path once, whatever hooks share it).</summary>
    public string Key => Steps is null ? Path : string.Join(",", Steps.Select(s => s.Offset + (s.Deref ? "*" : "")));
}

/// <summary>The kernel's BTF (/sys/kernel/btf/vmlinux), read once and kept: the types of functions' arguments and the
/// members of structs, enough to follow a resolve: field path the way Tetragon does (pkg/btf: members by name, anonymous
/// structs and unions searched through, pointers read, arrays indexed).</summary>
public sealed class KernelBtf
{
    public const string VmlinuxPath = "/sys/kernel/btf/vmlinux";

    private enum Kind { Int = 1, Ptr, Array, Struct, Union, Enum, Fwd, Typedef, Volatile, Const, Restrict, Func, FuncProto, Var, DataSec, Float, DeclTag, TypeTag, Enum64 }

    private readonly byte[] _b;
    private readonly int _strings;
    private readonly List<int> _types = [0]; // byte offset of each type id's record (id 0: void)
    private readonly Dictionary<string, int> _named = new(StringComparer.Ordinal); // FUNC and TYPEDEF names

    private static readonly Lazy<KernelBtf?> Local = new(() => File.Exists(VmlinuxPath) ? new KernelBtf(File.ReadAllBytes(VmlinuxPath)) : null);

    /// <summary>This machine's kernel BTF; null when the kernel exposes none.</summary>
    public static KernelBtf? Vmlinux => Local.Value;

    public KernelBtf(byte[] raw)
    {
        _b = raw;
        if (raw.Length < 24 || BinaryPrimitives.ReadUInt16LittleEndian(raw) != 0xeB9F)
            throw new InvalidDataException("not little-endian BTF");
        int hdr = (int)U32(4);
        int typeOff = hdr + (int)U32(8), typeLen = (int)U32(12);
        _strings = hdr + (int)U32(16);
        for (int o = typeOff; o < typeOff + typeLen;)
        {
            _types.Add(o);
            var (kind, vlen) = (KindAt(o), (int)(U32(o + 4) & 0xffff));
            if (kind is Kind.Func or Kind.Typedef && NameAt(o) is { Length: > 0 } n)
                _named.TryAdd(n, _types.Count - 1);
            o += 12 + kind switch
            {
                Kind.Int or Kind.Var or Kind.DeclTag => 4,
                Kind.Array => 12,
                Kind.Struct or Kind.Union or Kind.DataSec or Kind.Enum64 => 12 * vlen,
                Kind.Enum or Kind.FuncProto => 8 * vlen,
                _ => 0,
            };
        }
    }

    private uint U32(int o) => BinaryPrimitives.ReadUInt32LittleEndian(_b.AsSpan(o));
    private Kind KindAt(int o) => (Kind)((U32(o + 4) >> 24) & 0x1f);
    private string NameAt(int o) => Str(U32(o));
    private string Str(uint off)
    {
        int s = _strings + (int)off, e = Array.IndexOf(_b, (byte)0, s);
        return Encoding.ASCII.GetString(_b, s, e - s);
    }
    private int Vlen(int o) => (int)(U32(o + 4) & 0xffff);
    private uint SizeOrType(int o) => U32(o + 8);

    /// <summary>Skips typedefs and qualifiers.</summary>
    private int Strip(int id)
    {
        for (int guard = 0; id != 0 && guard < 32; guard++)
        {
            int o = _types[id];
            if (KindAt(o) is not (Kind.Typedef or Kind.Volatile or Kind.Const or Kind.Restrict or Kind.TypeTag)) break;
            id = (int)SizeOrType(o);
        }
        return id;
    }

    private long SizeOf(int id)
    {
        id = Strip(id);
        if (id == 0) return 0;
        int o = _types[id];
        return KindAt(o) switch
        {
            Kind.Ptr => 8,
            Kind.Array => U32(o + 20) * SizeOf((int)U32(o + 12)),
            Kind.Int or Kind.Struct or Kind.Union or Kind.Enum or Kind.Enum64 or Kind.Float => SizeOrType(o),
            _ => 0,
        };
    }

    /// <summary>Whether the kernel has a function of this name (a kfunc a program may call, say).</summary>
    public bool HasFunction(string name) => _named.TryGetValue(name, out int id) && KindAt(_types[id]) == Kind.Func;

    /// <summary>A type as C spells it, for messages ("struct linux_binprm *", "char[16]").</summary>
    public string Describe(int id)
    {
        if (id == 0) return "void";
        int o = _types[id];
        var name = NameAt(o);
        return KindAt(o) switch
        {
            Kind.Ptr => Describe((int)SizeOrType(o)) + " *",
            Kind.Array => $"{Describe((int)U32(o + 12))}[{U32(o + 20)}]",
            Kind.Struct => "struct " + (name.Length > 0 ? name : "(anonymous)"),
            Kind.Union => "union " + (name.Length > 0 ? name : "(anonymous)"),
            Kind.Enum or Kind.Enum64 => "enum " + name,
            Kind.Const => "const " + Describe((int)SizeOrType(o)),
            Kind.Volatile => "volatile " + Describe((int)SizeOrType(o)),
            Kind.Restrict or Kind.TypeTag => Describe((int)SizeOrType(o)),
            Kind.FuncProto => "function",
            _ => name,
        };
    }

    /// <summary>The type of argument <paramref name="index"/> of kernel function <paramref name="function"/> (a FUNC in the
    /// BTF), or of raw tracepoint <paramref name="function"/> when <paramref name="rawTracepoint"/> (its btf_trace_
    /// typedef, whose first parameter is the context). Null with <paramref name="why"/> when there is none.</summary>
    public int? ArgumentType(string function, int index, bool rawTracepoint, out string why)
    {
        why = "";
        string name = rawTracepoint ? "btf_trace_" + function : function;
        if (!_named.TryGetValue(name, out var id))
        {
            why = rawTracepoint ? $"raw tracepoint {function} has no BTF prototype (btf_trace_{function}) in this kernel's BTF"
                : $"function {function} has no BTF prototype in this kernel's BTF (not a kernel function, inlined, or in a module)";
            return null;
        }
        int proto = rawTracepoint ? Strip((int)SizeOrType(_types[Strip((int)SizeOrType(_types[id]))])) : (int)SizeOrType(_types[id]);
        if (proto == 0 || KindAt(_types[proto]) != Kind.FuncProto)
        {
            why = $"{name} in this kernel's BTF is not a function prototype";
            return null;
        }
        int skip = rawTracepoint ? 1 : 0, n = Vlen(_types[proto]) - skip;
        if (index >= n)
        {
            why = $"{(rawTracepoint ? "raw tracepoint" : "function")} {function} has {n} argument{(n == 1 ? "" : "s")} in this kernel's BTF (index 0..{n - 1})";
            return null;
        }
        return (int)U32(_types[proto] + 12 + 8 * (index + skip) + 4);
    }

    /// <summary>Follows <paramref name="path"/> ("mm.owner.real_parent.comm", "some.field[12].sub") from a value of type
    /// <paramref name="argType"/> (a pointer to a struct or union). Null with <paramref name="why"/> naming the
    /// field that is not there or cannot be followed.</summary>
    public ResolvePlan? Resolve(int argType, string path, out string why)
    {
        why = "";
        var steps = new List<ResolveStep>();
        int cur = Strip(argType);
        if (cur == 0 || KindAt(_types[cur]) != Kind.Ptr)
        {
            why = $"the argument is a {Describe(argType)}, not a pointer to a struct: there are no fields to follow";
            return null;
        }
        cur = Strip((int)SizeOrType(_types[cur]));
        // A pointer to a pointer (struct cred **): the pointer it points to is read first.
        while (cur != 0 && KindAt(_types[cur]) == Kind.Ptr)
        {
            steps.Add(new ResolveStep(0, true));
            cur = Strip((int)SizeOrType(_types[cur]));
        }
        var from = Describe(argType);
        var segments = path.Split('.');
        uint offset = 0;
        for (int i = 0; i < segments.Length; i++)
        {
            var (name, indexes, bad) = Segment(segments[i]);
            if (bad is not null || name.Length == 0)
            {
                why = $"'{segments[i]}' is not a field name (name, or name[index])" + (bad is null ? "" : $": {bad}");
                return null;
            }
            if (cur == 0 || KindAt(_types[cur]) is not (Kind.Struct or Kind.Union))
            {
                why = $"'{segments[i - 1]}' is a {Describe(cur)}, not a struct: it has no field '{name}'";
                return null;
            }
            if (Member(cur, name) is not { } m)
            {
                why = $"{Describe(cur)} has no field '{name}'";
                return null;
            }
            if (m.BitField)
            {
                why = $"'{name}' of {Describe(cur)} is a bit field, which cannot be read on its own";
                return null;
            }
            offset += m.Offset;
            int t = Strip(m.Type);
            foreach (var ix in indexes)
            {
                var k = t == 0 ? Kind.Int : KindAt(_types[t]);
                if (k == Kind.Array)
                {
                    uint n = U32(_types[t] + 20);
                    if (n != 0 && ix >= n)
                    {
                        why = $"index {ix} is out of bounds: '{name}' is a {Describe(t)}";
                        return null;
                    }
                    int elem = (int)U32(_types[t] + 12);
                    offset += (uint)(ix * SizeOf(elem));
                    t = Strip(elem);
                }
                else if (k == Kind.Ptr)
                {
                    steps.Add(new ResolveStep(offset, true));
                    int target = (int)SizeOrType(_types[t]);
                    offset = (uint)(ix * SizeOf(target));
                    t = Strip(target);
                }
                else
                {
                    why = $"'{name}' is a {Describe(t)}, not an array or pointer: it cannot be indexed";
                    return null;
                }
            }
            var kind = t == 0 ? Kind.Int : KindAt(_types[t]);
            bool last = i == segments.Length - 1;
            if (!last)
            {
                if (kind == Kind.Ptr)
                {
                    steps.Add(new ResolveStep(offset, true));
                    offset = 0;
                    t = Strip((int)SizeOrType(_types[t]));
                }
                cur = t;
                continue;
            }
            // The leaf: a pointer or an integer is read (its value is the argument); a struct, union or array is its address.
            steps.Add(new ResolveStep(offset, kind is Kind.Ptr or Kind.Int or Kind.Enum or Kind.Enum64));
            if (steps.Count > Events.Contract.ResolveDepth)
            {
                why = $"the path takes {steps.Count} steps (reads and offsets), at most {Events.Contract.ResolveDepth}";
                return null;
            }
            return new ResolvePlan(path, from, steps, Describe(indexes.Count == 0 ? m.Type : t));
        }
        why = "empty path";
        return null;
    }

    /// <summary>What a leaf of type <paramref name="leaf"/> can be read as, for the policy type: null when it fits.</summary>
    public static string? Mismatch(string policyType, string leaf)
    {
        leaf = leaf.Replace("const ", "").Replace("volatile ", "");
        bool pointer = leaf.EndsWith('*'), array = leaf.EndsWith(']'), aggregate = leaf.StartsWith("struct ") || leaf.StartsWith("union ");
        bool charData = (pointer || array) && leaf.Contains("char");
        return policyType switch
        {
            "string" or "char_buf" or "filename" when !charData => $"a string is read from a char array or char pointer, and the field is a {leaf}",
            "file" when leaf != "struct file *" && leaf != "struct file" => $"type file reads a struct file, and the field is a {leaf}",
            "path" when leaf != "struct path" && leaf != "struct path *" => $"type path reads a struct path, and the field is a {leaf}",
            _ when ArgumentLayout.Class(policyType) == ArgClass.Int && (aggregate || array) && !policyType.StartsWith("cap") && policyType != "kernel_cap_t"
                => $"an integer type reads a number, and the field is a {leaf} (name a field inside it)",
            _ => null,
        };
    }

    private static (string Name, List<uint> Indexes, string? Bad) Segment(string s)
    {
        int b = s.IndexOf('[');
        var name = b < 0 ? s : s[..b];
        var indexes = new List<uint>();
        while (b >= 0 && b < s.Length)
        {
            int e = s.IndexOf(']', b);
            if (e < 0 || !uint.TryParse(s.AsSpan(b + 1, e - b - 1), out var ix))
                return (name, indexes, "an index is a number in brackets");
            indexes.Add(ix);
            b = e + 1 < s.Length ? (s[e + 1] == '[' ? e + 1 : -2) : -1;
        }
        return b == -2 ? (name, indexes, "text after an index") : (name, indexes, null);
    }

    private readonly record struct Found(uint Offset, int Type, bool BitField);

    /// <summary>Member <paramref name="name"/> of a struct or union, looked for through its anonymous members as C does.</summary>
    private Found? Member(int id, string name)
    {
        int o = _types[id];
        bool kflag = (U32(o + 4) & 0x80000000) != 0;
        int n = Vlen(o);
        for (int i = 0; i < n; i++)
        {
            int m = o + 12 + 12 * i;
            uint bits = U32(m + 8), bitOffset = kflag ? bits & 0xffffff : bits;
            bool bitField = kflag && bits >> 24 != 0 || bitOffset % 8 != 0;
            var mname = Str(U32(m));
            int mtype = (int)U32(m + 4);
            if (mname.Length == 0)
            {
                int inner = Strip(mtype);
                if (inner != 0 && KindAt(_types[inner]) is Kind.Struct or Kind.Union && Member(inner, name) is { } f)
                    return f with { Offset = f.Offset + bitOffset / 8 };
                continue;
            }
            if (mname == name)
                return new Found(bitOffset / 8, mtype, bitField);
        }
        return null;
    }
}
