using System.Text;

namespace SecurityAgent.ContractGen;

/// <summary>Emits the C# side of bpf/include/contract.h from BTF: enums, constants, the byte offsets of every
/// shared record and key, and the names of each object's maps and programs. Pure: BTF in, source text out.
/// The tables below say where each C type goes in C#; names are derived (see contract.h).</summary>
public static class ContractGenerator
{
    private sealed record EnumSpec(string C, string Namespace, string? Container, string Name, string Type, bool Flags);
    private sealed record StructSpec(string C, string Namespace, string Container, string Name);

    /// <summary>enum sa_limit: plain constants.</summary>
    private const string Constants = "sa_limit";

    private static readonly EnumSpec[] Enums =
    [
        new("sa_op", "SecurityAgent.Events", null, "Op", "byte", false),
        new("sa_exec_flags", "SecurityAgent.Events", "Wire", "ExecFlags", "uint", true),
        new("sa_lost_reason", "SecurityAgent.Events", "Wire", "LostReason", "uint", false),
        new("sa_ns", "SecurityAgent.Events", "Wire", "Namespace", "int", false),
        new("sa_proc_flags", "SecurityAgent.Events", "Wire", "ProcFlags", "uint", true),
        new("sa_socktrack_stat", "SecurityAgent.Events", "PolicyWire", "SocktrackStat", "uint", false),
        new("sa_policy_event_flags", "SecurityAgent.Events", "PolicyWire", "EventFlags", "byte", true),
        new("sa_fixed_point", "SecurityAgent.Events", "PolicyWire", "FixedPoint", "uint", false),
        new("sa_dim_kind", "SecurityAgent.Events", "PolicyWire", "DimKind", "byte", false),
        new("sa_selector_flags", "SecurityAgent.Events", "PolicyWire", "SelectorFlags", "byte", true),
        new("sa_point_flags", "SecurityAgent.Events", "PolicyWire", "PointFlags", "byte", true),
        new("sa_ev_file_info", "SecurityAgent.Events", "PolicyWire", "FileInfo", "uint", true),
        new("sa_arg_type", "SecurityAgent.Policies", null, "ArgType", "byte", false),
        new("sa_cmp", "SecurityAgent.Policies", null, "Cmp", "byte", false),
        new("sa_action", "SecurityAgent.Policies", null, "Actions", "uint", true),
    ];

    private static readonly StructSpec[] Structs =
    [
        new("event_header", "SecurityAgent.Events", "Wire", "Header"),
        new("exec_event", "SecurityAgent.Events", "Wire", "Exec"),
        new("fork_event", "SecurityAgent.Events", "Wire", "Fork"),
        new("exit_event", "SecurityAgent.Events", "Wire", "Exit"),
        new("loader_event", "SecurityAgent.Events", "Wire", "Loader"),
        new("sa_data_event", "SecurityAgent.Events", "Wire", "DataChunk"),
        new("sa_loader_config", "SecurityAgent.Events", "Wire", "LoaderConfig"),
        new("sa_settings", "SecurityAgent.Events", "Wire", "Settings"),
        new("sa_reader", "SecurityAgent.Events", "Wire", "Reader"),
        new("sa_proc", "SecurityAgent.Events", "Wire", "Proc"),
        new("sa_enf_note", "SecurityAgent.Events", "PolicyWire", "EnfNote"),
        new("sa_enf_call_key", "SecurityAgent.Events", "PolicyWire", "EnfCallKey"),
        new("sa_binary", "SecurityAgent.Events", "PolicyWire", "Binary"),
        new("policy_event", "SecurityAgent.Events", "PolicyWire", "Event"),
        new("sa_point", "SecurityAgent.Events", "PolicyWire", "Point"),
        new("sa_point_arg", "SecurityAgent.Events", "PolicyWire", "PointArg"),
        new("sa_dim", "SecurityAgent.Events", "PolicyWire", "Dim"),
        new("sa_selector_key", "SecurityAgent.Events", "PolicyWire", "SelectorKey"),
        new("sa_selector", "SecurityAgent.Events", "PolicyWire", "Selector"),
        new("sa_int_cmp", "SecurityAgent.Events", "PolicyWire", "IntCmp"),
        new("sa_resolve", "SecurityAgent.Events", "PolicyWire", "Resolve"),
        new("sa_ret_cmp", "SecurityAgent.Events", "PolicyWire", "RetCmp"),
        new("sa_ns_match", "SecurityAgent.Events", "PolicyWire", "NsMatch"),
        new("sa_value_hdr", "SecurityAgent.Events", "PolicyWire", "ValueHeader"),
        new("sa_bitmap", "SecurityAgent.Events", "PolicyWire", "Bitmap"),
        new("sa_str_key", "SecurityAgent.Events", "PolicyWire", "StrKey"),
        new("sa_lpm_key", "SecurityAgent.Events", "PolicyWire", "LpmKey"),
        new("sa_int_key", "SecurityAgent.Events", "PolicyWire", "IntKey"),
        new("sa_inode_key", "SecurityAgent.Events", "PolicyWire", "InodeKey"),
        new("sa_addr_key", "SecurityAgent.Events", "PolicyWire", "AddrKey"),
        new("sa_scope_key", "SecurityAgent.Events", "PolicyWire", "ScopeKey"),
        new("sa_deny_key", "SecurityAgent.Events", "PolicyWire", "DenyKey"),
        new("sa_rate_key", "SecurityAgent.Events", "PolicyWire", "RateKey"),
        new("sa_hook_stats", "SecurityAgent.Events", "PolicyWire", "HookStats"),
        new("sa_point_stats", "SecurityAgent.Events", "PolicyWire", "PointStats"),
        new("sa_sock_info", "SecurityAgent.Events", "PolicyWire", "SockInfo"),
        new("sa_cred_info", "SecurityAgent.Events", "PolicyWire", "CredInfo"),
        new("sa_bpf_info", "SecurityAgent.Events", "PolicyWire", "BpfInfo"),
        new("sa_after_note", "SecurityAgent.Events", "PolicyWire", "AfterNote"),
    ];

    /// <param name="contract">BTF of the contract object (every type of contract.h).</param>
    /// <param name="objects">File name and BTF of each loadable object, for its maps and programs.</param>
    public static string Generate(Btf contract, IEnumerable<(string File, Btf Btf)> objects)
    {
        // namespace -> container ("" for none) -> declarations
        var tree = new SortedDictionary<string, SortedDictionary<string, List<string>>>(StringComparer.Ordinal);
        void Add(string ns, string? container, string text)
        {
            if (!tree.TryGetValue(ns, out var c)) tree[ns] = c = new(StringComparer.Ordinal);
            (c.TryGetValue(container ?? "", out var l) ? l : c[container ?? ""] = []).Add(text);
        }

        var limits = Need(contract.Enums, Constants, "enum");
        Add("SecurityAgent.Events", "Contract", string.Join("\n", Names(limits).Select(x => $"public const int {x.Name} = {x.Value};")));
        foreach (var e in Enums)
        {
            var values = Names(Need(contract.Enums, e.C, "enum"));
            Add(e.Namespace, e.Container, $"/// <summary>enum {e.C}</summary>\n" + (e.Flags ? "[Flags]\n" : "")
                + $"public enum {e.Name} : {e.Type}\n{{\n" + string.Join("\n", values.Select(v => $"    {v.Name} = {v.Value},")) + "\n}");
        }
        foreach (var s in Structs)
        {
            var st = Need(contract.Structs, s.C, "struct");
            var members = st.Members.Where(m => !m.Name.StartsWith("pad")).Select(m => $"    public const int {Pascal(m.Name)} = {m.Offset};");
            Add(s.Namespace, s.Container, $"/// <summary>struct {s.C}</summary>\npublic static class {s.Name}\n{{\n"
                + string.Join("\n", members) + $"\n    public const int Length = {st.Size};\n}}");
        }

        var objs = objects.OrderBy(o => o.File, StringComparer.Ordinal).ToList();
        var maps = objs.SelectMany(o => o.Btf.Maps).Distinct().Order(StringComparer.Ordinal);
        var programs = objs.SelectMany(o => o.Btf.Programs).Distinct().Order(StringComparer.Ordinal);
        Add("SecurityAgent.Bpf", "BpfNames", "/// <summary>Every map of every object.</summary>\npublic static class Maps\n{\n"
            + string.Join("\n", maps.Select(m => $"    public const string {Pascal(Unprefixed(m))} = \"{m}\";")) + "\n}");
        Add("SecurityAgent.Bpf", "BpfNames", "/// <summary>Every program of every object.</summary>\npublic static class Programs\n{\n"
            + string.Join("\n", programs.Select(p => $"    public const string {Pascal(Unprefixed(p))} = \"{p}\";")) + "\n}");
        foreach (var (file, btf) in objs)
            Add("SecurityAgent.Bpf", "BpfNames", $"/// <summary>{file}</summary>\npublic static class {Pascal(file[..file.IndexOf('.')])}\n{{\n"
                + $"    public const string File = \"{file}\";\n"
                + $"    public static readonly IReadOnlyList<string> Maps = [{string.Join(", ", btf.Maps.Select(m => $"\"{m}\""))}];\n"
                + $"    public static readonly IReadOnlyList<string> Programs = [{string.Join(", ", btf.Programs.Select(p => $"\"{p}\""))}];\n}}");

        var b = new StringBuilder();
        b.Append("// <auto-generated>\n// Generated by tools/ContractGen from bpf/include/contract.h (the BTF of build/bpf-contract/contract.bpf.o)\n"
            + "// and the maps and programs of build/bpf/*.bpf.o. Do not edit: change the header and run `make bpf`.\n// </auto-generated>\n");
        foreach (var (ns, containers) in tree)
        {
            b.Append($"\nnamespace {ns}\n{{\n");
            bool first = true;
            foreach (var (container, decls) in containers)
            {
                if (!first) b.Append('\n');
                first = false;
                if (container == "")
                {
                    b.Append(string.Join("\n\n", decls.Select(d => Indent(d, 1)))).Append('\n');
                    continue;
                }
                var partial = container is "Wire" or "PolicyWire" or "BpfNames" or "Contract" ? "static partial" : "static";
                b.Append($"    public {partial} class {container}\n    {{\n");
                b.Append(string.Join("\n\n", decls.Select(d => Indent(d, 2)))).Append("\n    }\n");
            }
            b.Append("}\n");
        }
        return b.ToString();
    }

    private static T Need<T>(Dictionary<string, T> d, string name, string kind) =>
        d.TryGetValue(name, out var v) ? v : throw new InvalidOperationException($"{kind} {name} is not in the contract object's BTF (is it named in bpf/contract.bpf.c?)");

    /// <summary>The C# names of an enum's enumerators: the common prefix dropped, each word capitalised.</summary>
    public static IEnumerable<(string Name, long Value)> Names(Btf.Enum e)
    {
        var names = e.Values.Select(v => v.Name).ToList();
        int prefix = CommonPrefix(names);
        return e.Values.Select(v => (Pascal(v.Name[prefix..]), v.Value));
    }

    /// <summary>Length of the longest common prefix ending in '_' that leaves every name non-empty.</summary>
    private static int CommonPrefix(IReadOnlyList<string> names)
    {
        int len = 0;
        for (int i = 0; i < names[0].Length; i++)
        {
            if (names.Any(n => n.Length <= i + 1 || n[i] != names[0][i])) break;
            if (names[0][i] == '_') len = i + 1;
        }
        return len;
    }

    private static string Unprefixed(string name) => name.StartsWith("sa_") ? name[3..] : name;

    public static string Pascal(string snake) =>
        string.Concat(snake.Split('_', StringSplitOptions.RemoveEmptyEntries).Select(w => char.ToUpperInvariant(w[0]) + w[1..].ToLowerInvariant()));

    private static string Indent(string text, int levels) =>
        string.Join("\n", text.Split('\n').Select(l => l.Length == 0 ? l : new string(' ', 4 * levels) + l));
}
