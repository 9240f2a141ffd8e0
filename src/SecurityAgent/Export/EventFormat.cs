namespace SecurityAgent.Export;

/// <summary>Event types that carry "ancestors" (Tetragon's --enable-ancestors values; loader, uprobe and usdt are
/// accepted for compatibility: the agent emits no such events).</summary>
[Flags]
public enum AncestorEvents
{
    None = 0,
    Base = 1,
    Kprobe = 2,
    Tracepoint = 4,
    Lsm = 8,
    Uprobe = 16,
    Usdt = 32,
    Loader = 64,
}

/// <summary>What the exported events carry beyond Tetragon's default fields. Every option defaults to off, and then each
/// line parses strictly (unknown fields refused) as Tetragon's GetEventsResponse; docs/events.md lists the fields.</summary>
public sealed record EventFormat
{
    public static EventFormat Default { get; } = new();

    /// <summary>process_credentials and cap in process objects (Tetragon's --enable-process-cred).</summary>
    public bool ProcessCredentials { get; init; }

    /// <summary>ns in process objects (Tetragon's --enable-process-ns).</summary>
    public bool ProcessNamespaces { get; init; }

    /// <summary>The host's namespaces, that ns.*.is_host compares with; null: read from /proc/1/ns when needed (see ProcFsScanner.ReadHostNamespaces).</summary>
    public Events.NamespaceInums? HostNamespaces { get; init; }

    /// <summary>Which events list the ancestors beyond the parent (Tetragon's --enable-ancestors).</summary>
    public AncestorEvents Ancestors { get; init; }

    /// <summary>The agent's own fields (policy mode, enforcement outcome, who decided, why a process is unattributed) in
    /// one "securityagent" object of each event. A strict Tetragon parser refuses it; lenient ones skip it.</summary>
    public bool Extensions { get; init; }

    /// <summary>The passwd file that names users in process objects ("user", Tetragon's --username-metadata unix), for
    /// host processes (not in a container); null: no names.</summary>
    public string? PasswdFile { get; init; }

    /// <summary>Top-level cluster_name (Tetragon's --cluster-name).</summary>
    public string? ClusterName { get; init; }

    /// <summary>Top-level node_labels.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> NodeLabels { get; init; } = [];

    public static readonly string[] AncestorEventNames = ["base", "kprobe", "tracepoint", "lsm", "loader", "uprobe", "usdt"];

    /// <summary>"base,kprobe,..." as Tetragon's --enable-ancestors takes it.</summary>
    public static AncestorEvents ParseAncestors(string? text)
    {
        var result = AncestorEvents.None;
        foreach (var name in (text ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            result |= name switch
            {
                "base" => AncestorEvents.Base,
                "kprobe" => AncestorEvents.Kprobe,
                "tracepoint" => AncestorEvents.Tracepoint,
                "lsm" => AncestorEvents.Lsm,
                "uprobe" => AncestorEvents.Uprobe,
                "usdt" => AncestorEvents.Usdt,
                "loader" => AncestorEvents.Loader,
                _ => throw new FormatException($"unknown event type '{name}' (types: {string.Join(", ", AncestorEventNames)})"),
            };
        return result;
    }

    /// <summary>"key=value,key2=value2".</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> ParseLabels(string? text)
    {
        var labels = new List<KeyValuePair<string, string>>();
        foreach (var pair in (text ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int eq = pair.IndexOf('=');
            if (eq <= 0) throw new FormatException($"'{pair}' is not key=value");
            labels.Add(new(pair[..eq], pair[(eq + 1)..]));
        }
        return labels;
    }
}
