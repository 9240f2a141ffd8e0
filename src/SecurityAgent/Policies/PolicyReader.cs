namespace SecurityAgent.Policies;

/// <summary>Reads a document that passed <see cref="PolicySchema"/> into the typed model. Every field the schema
/// allows is read here; a field that is not (a schema addition the model lacks) is reported as not implemented
/// rather than ignored (a test keeps the two in step).</summary>
public static class PolicyReader
{
    public static TracingPolicy Read(YamlDocument doc, DiagnosticBag diags)
    {
        var (policy, unread) = ReadAll(doc);
        foreach (var (pos, path, what) in unread)
            diags.Error(pos, path, $"unsupported: {what ?? $"'{path}'"} is not implemented by SecurityAgent yet");
        return policy;
    }

    /// <summary>The policy, and the fields of the document that the reader did not take into the model: those the
    /// schema has for Tetragon's sake but SecurityAgent refuses (with what they are), and any other.</summary>
    internal static (TracingPolicy Policy, List<(SourcePos Pos, string Path, string? What)> Unread) ReadAll(YamlDocument doc)
    {
        var context = new Context();
        var root = new Fields((YMapping)doc.Root, "", context);
        var policy = new TracingPolicy(root.Pos, "", root.Str("apiVersion")!, root.Str("kind")!, Metadata(root.Object("metadata")!), Spec(root.Object("spec")!));
        return (policy, [.. context.Refused, .. context.All.SelectMany(f => f.Unread()).Select(u => (u.Item1, u.Item2, (string?)null))]);
    }

    /// <summary>Fields of Tetragon's policy language that SecurityAgent refuses, by the object that holds them.</summary>
    private static readonly (string Parent, string Name, string What)[] RefusedFields =
    [
        ("spec", "fentries", "fentries (kprobe-style hooks attached through fentry; kprobes on the same functions are)"),
        ("spec", "hostSelector", "hostSelector (host workloads only, or all)"),
        ("spec", "nodeSelector", "nodeSelector (loading only on nodes with these labels: the agent does not know its node's labels)"),
        ("kprobes", "data", "data (values read at the hook for matchData)"),
        ("uprobes", "data", "data (values read at the hook for matchData)"),
        ("uprobes", "binaryDigests", "binaryDigests (attaching only to binaries with these digests)"),
        ("uprobes", "ignore", "ignore (digestVerificationFailure)"),
        ("args", "source", "source (where the argument is read from)"),
        ("args", "btfType", "btfType (reading the argument as a BTF type)"),
        ("args", "btfTypeModule", "btfTypeModule (the module whose BTF has btfType)"),
        ("returnArg", "source", "source (where the argument is read from)"),
        ("returnArg", "btfType", "btfType (reading the argument as a BTF type)"),
        ("returnArg", "btfTypeModule", "btfTypeModule (the module whose BTF has btfType)"),
        ("selectors", "matchWorkloads", "matchWorkloads (a selector's own pod, container or host scope; spec.podSelector and containerSelector are)"),
        ("matchActions", "argRegs", "argRegs (setting a uprobe's registers)"),
        ("matchActions", "argNewSymbol", "argNewSymbol (redirecting a uprobe)"),
        ("matchActions", "argNewAddr", "argNewAddr (redirecting a uprobe)"),
        ("matchActions", "argNewOffset", "argNewOffset (redirecting a uprobe)"),
        ("matchReturnActions", "argRegs", "argRegs (setting a uprobe's registers)"),
        ("matchReturnActions", "argNewSymbol", "argNewSymbol (redirecting a uprobe)"),
        ("matchReturnActions", "argNewAddr", "argNewAddr (redirecting a uprobe)"),
        ("matchReturnActions", "argNewOffset", "argNewOffset (redirecting a uprobe)"),
    ];

    private sealed class Context
    {
        public List<Fields> All { get; } = [];
        public List<(SourcePos, string, string?)> Refused { get; } = [];
    }

    private static PolicyMetadata Metadata(Fields m) =>
        new(m.Pos, m.Path, m.Str("name")!, m.Str("namespace"), m.Map("labels"), m.Map("annotations"));

    private static PolicySpec Spec(Fields s)
    {
        var hooks = new List<HookSpec>();
        hooks.AddRange(s.List("tracepoints", f => new TracepointSpec(f.Pos, f.Path, f.Str("subsystem")!, f.Str("event")!, f.Bool("raw"),
            f.List("args", Arg), f.List("selectors", Selector), f.Str("message"), f.Strings("tags").Select(t => t.Value).ToList())));
        hooks.AddRange(s.List("kprobes", f => new KprobeSpec(f.Pos, f.Path, f.Str("call")!, f.Bool("syscall")?.Value == true, f.Bool("return"),
            f.Object("returnArg") is { } ra ? Arg(ra) : null, f.Str("returnArgAction"), f.Object("ignore")?.Bool("callNotFound"),
            f.List("args", Arg), f.List("selectors", Selector), f.Str("message"), f.Strings("tags").Select(t => t.Value).ToList())));
        hooks.AddRange(s.List("lsmhooks", f => new LsmHookSpec(f.Pos, f.Path, f.Str("hook")!,
            f.List("args", Arg), f.List("selectors", Selector), f.Str("message"), f.Strings("tags").Select(t => t.Value).ToList())));
        hooks.AddRange(s.List("uprobes", f => new UprobeSpec(f.Pos, f.Path, f.Str("path")!, f.Strings("symbols"), f.Ints("offsets"),
            f.Ints("addrs"), f.Ints("refCtrOffsets"), f.Str("btfPath"), f.Bool("return"),
            f.Object("returnArg") is { } ra ? Arg(ra) : null, f.List("args", Arg), f.List("selectors", Selector), f.Str("message"),
            f.Strings("tags").Select(t => t.Value).ToList())));
        hooks.AddRange(s.List("usdts", f => new UsdtSpec(f.Pos, f.Path, f.Str("path")!, f.Str("provider")!, f.Str("name")!, f.Str("btfPath"),
            f.List("args", Arg), f.List("selectors", Selector), f.Str("message"), f.Strings("tags").Select(t => t.Value).ToList())));
        var spec = new PolicySpec(s.Pos, s.Path, hooks,
            s.List("lists", f => new ListSpec(f.Pos, f.Path, f.Str("name")!, f.Str("type")!, f.Strings("values"), f.Str("pattern"), f.Bool("validated"))),
            s.List("options", f => new OptionSpec(f.Pos, f.Path, f.Str("name")!, f.Str("value"))),
            s.Object("podSelector") is { } pods ? LabelSelector(pods) : null,
            s.Object("containerSelector") is { } containers ? LabelSelector(containers) : null,
            s.List("enforcers", f => new EnforcerSpec(f.Pos, f.Path, f.Strings("calls"))), s.Bool("loader"),
            s.Entries("selectorsMacros", "selectors", (name, f) => new MacroSpec(name, Selector(f))));
        return spec;
    }

    private static ArgSpec Arg(Fields f) => new(f.Pos, f.Path, f.Int("index")!, f.Str("type")!, f.Str("label")?.Value,
        f.Int("sizeArgIndex"), f.Bool("returnCopy"), f.Bool("maxData"), f.Str("resolve"));

    private static SelectorSpec Selector(Fields f) => new(f.Pos, f.Path, f.Str("label"), f.Strings("macros"),
        f.List("matchArgs", ArgMatcher), f.List("matchData", ArgMatcher), f.List("matchReturnArgs", ArgMatcher),
        f.List("matchPIDs", p => new PidMatcherSpec(p.Pos, p.Path, p.Str("operator")!, p.Strings("values"),
            p.Bool("isNamespacePID")?.Value == true, p.Bool("followForks")?.Value == true)),
        f.List("matchBinaries", Binary), f.List("matchParentBinaries", Binary),
        f.List("matchNamespaces", n => new NamespaceMatcherSpec(n.Pos, n.Path, n.Str("namespace")!, n.Str("operator")!, n.Strings("values"))),
        f.List("matchNamespaceChanges", n => new NamespaceChangeSpec(n.Pos, n.Path, n.Str("operator")!, n.Strings("values"))),
        f.List("matchCapabilities", Capabilities),
        f.List("matchCapabilityChanges", Capabilities),
        f.List("matchActions", Action),
        f.List("matchReturnActions", Action));

    private static CapabilityMatcherSpec Capabilities(Fields c) =>
        new(c.Pos, c.Path, c.Str("type"), c.Str("operator")!, c.Bool("isNamespaceCapability"), c.Strings("values"));

    private static ActionSpec Action(Fields a) => new(a.Pos, a.Path, a.Str("action")!, a.Int("argSig"), a.Int("argError"), a.Int("argFd"), a.Int("argName"),
        a.Str("argUrl"), a.Str("argFqdn"), a.Int("argSock"), a.Int("argIndex"), a.Int("argValue"), a.Str("rateLimit"), a.Str("rateLimitScope"),
        a.Bool("kernelStackTrace"), a.Bool("userStackTrace"), a.Bool("imaHash"));

    private static ArgMatcherSpec ArgMatcher(Fields f) =>
        new(f.Pos, f.Path, f.Int("index"), f.Ints("args"), f.Str("operator")!, f.Strings("values"));

    private static BinaryMatcherSpec Binary(Fields f) => new(f.Pos, f.Path, f.Str("operator")!, f.Strings("values"), f.Bool("followChildren"));

    private static LabelSelectorSpec LabelSelector(Fields f) => new(f.Pos, f.Path, f.Map("matchLabels"),
        f.List("matchExpressions", e => new LabelExpressionSpec(e.Pos, e.Path, e.Str("key")!.Value, e.Str("operator")!, e.Strings("values").Select(v => v.Value).ToList())));

    /// <summary>The fields of one mapping; records which were read, so <see cref="Unread"/> can name the rest.</summary>
    private sealed class Fields
    {
        private readonly HashSet<string> _read = [];
        private readonly YMapping map;
        private readonly string path;
        private readonly Context context;

        /// <param name="kind">Which object this is, for <see cref="RefusedFields"/>: the field that holds it, by default.</param>
        public Fields(YMapping map, string path, Context context, string? kind = null)
        {
            (this.map, this.path, this.context) = (map, path, context);
            context.All.Add(this);
            kind ??= path.Split('.')[^1].Split('[')[0];
            foreach (var (holder, name, what) in RefusedFields)
                if (holder == kind) Refuse(name, what);
        }

        /// <summary>A field Tetragon defines that SecurityAgent refuses: reported with what it is.</summary>
        private void Refuse(string name, string what)
        {
            if (Present(name) is { } pos)
                context.Refused.Add((pos, At(name), what));
        }

        /// <summary>The entries of a mapping whose keys are names (selectorsMacros), each an object of <paramref name="kind"/>.</summary>
        public IReadOnlyList<T> Entries<T>(string name, string kind, Func<Located<string>, Fields, T> read) =>
            Node(name) is YMapping m
                ? m.Entries.Where(e => e.Value is YMapping).Select(e => read(new Located<string>(e.Key.Value, e.Key.Pos, At(name) + "." + e.Key.Value),
                    new Fields((YMapping)e.Value, At(name) + "." + e.Key.Value, context, kind))).ToList()
                : [];

        public SourcePos Pos => map.Pos;
        public string Path => path;

        private YNode? Node(string name)
        {
            _read.Add(name);
            return map.Entry(name)?.Value is { } v and not YScalar { IsNull: true } ? v : null;
        }

        private string At(string name) => PolicySchema.Child(path, name);

        public Located<string>? Str(string name) => Node(name) is YScalar s ? new(s.Value, s.Pos, At(name)) : null;

        public Located<bool>? Bool(string name) => Node(name) is YScalar s ? new(s.Value[0] is 't' or 'T', s.Pos, At(name)) : null;

        public Located<int>? Int(string name) => Node(name) is YScalar s ? new(ToInt(s), s.Pos, At(name)) : null;

        /// <summary>The schema bounds every integer field to 32 bits (a test checks it); beyond that is a bug here.</summary>
        private static int ToInt(YScalar s) =>
            PolicyValues.TryParseYamlInteger(s.Value, out var v) && v is >= int.MinValue and <= int.MaxValue ? (int)v
            : throw new InvalidOperationException($"integer field out of the schema's bounds: {s.Describe}");

        public SourcePos? Present(string name) => Node(name)?.Pos;

        public Fields? Object(string name) => Node(name) is YMapping m ? new Fields(m, At(name), context) : null;

        public IReadOnlyList<T> List<T>(string name, Func<Fields, T> read)
        {
            if (Node(name) is not YSequence seq) return [];
            var list = new List<T>(seq.Items.Count);
            for (int i = 0; i < seq.Items.Count; i++)
            {
                list.Add(read(new Fields((YMapping)seq.Items[i], $"{At(name)}[{i}]", context)));
            }
            return list;
        }

        public IReadOnlyList<Located<string>> Strings(string name) =>
            Node(name) is YSequence seq ? seq.Items.Select((n, i) => new Located<string>(((YScalar)n).Value, n.Pos, $"{At(name)}[{i}]")).ToList() : [];

        public IReadOnlyList<Located<int>> Ints(string name) =>
            Node(name) is YSequence seq ? seq.Items.Select((n, i) => new Located<int>(ToInt((YScalar)n), n.Pos, $"{At(name)}[{i}]")).ToList() : [];

        public IReadOnlyDictionary<string, string> Map(string name) =>
            Node(name) is YMapping m ? m.Entries.ToDictionary(e => e.Key.Value, e => ((YScalar)e.Value).Value) : new Dictionary<string, string>();

        public IEnumerable<(SourcePos, string)> Unread() =>
            map.Entries.Where(e => !_read.Contains(e.Key.Value)).Select(e => (e.Key.Pos, At(e.Key.Value)));
    }
}
