using System.Net;
using SecurityAgent.Export;

namespace SecurityAgent.Hosting;

/// <summary>Options of `secagent run`, bound from the "Agent" section: appsettings.json beside the binary, then
/// SECAGENT_Agent__* environment variables, then command-line options. Every property marked [Option] is a
/// command-line option named after it in kebab case (ExportFileMaxSize: --export-file-max-size), with its
/// default shown in `secagent run --help`; <see cref="Validate"/> checks the values whatever their source.</summary>
public sealed class AgentOptions
{
    public const string DefaultPolicyDir = Policies.PolicyDirectory.DefaultPath;
    public const string DefaultApiSocket = "/var/run/securityagent/agent.sock";

    [Option("Tracing policies (*.yaml), loaded at start and hot-reloaded; must exist", HelpName = "DIR")]
    public string PolicyDir { get; set; } = DefaultPolicyDir;

    [Option("Where events go: a file, or - for stdout", HelpName = "PATH|-")]
    public string ExportFile { get; set; } = "-";

    [Option("Event format: compact (one readable line per event), json (Tetragon's JSON lines), auto (compact when the events go to a terminal, else json)",
        Values = ["auto", "compact", "json"])]
    public string Output { get; set; } = "auto";

    [Option("Rotate the export file when it would grow past this size (0: never)", HelpName = "BYTES")]
    public long ExportFileMaxSize { get; set; }

    [Option("Rotated export files kept (PATH.1 ... PATH.N)", HelpName = "N")]
    public int ExportFileMaxBackups { get; set; } = 5;

    [Option("Group (name or gid) given read access to the export, rotated and stats files (0640); none: 0600", HelpName = "GROUP")]
    public string? ExportFileGroup { get; set; }

    [Option("Node name in events (default: $NODE_NAME, else the host name)", HelpName = "NAME")]
    public string? NodeName { get; set; }

    [Option("Processes kept in the process cache", HelpName = "N")]
    public int ProcessCacheSize { get; set; } = 100_000;

    [Option("How long an exited process stays in the cache for late events", HelpName = "SECONDS")]
    public double ExitGraceSeconds { get; set; } = 15;

    [Option("Events held at most while they wait for their pod from the pod watch", HelpName = "N")]
    public int ChannelCapacity { get; set; } = 65_536;

    [Option("Size of the kernel ring buffer (a power of two; resident in the agent: the kernel maps it whole)", HelpName = "BYTES")]
    public uint RingBufferBytes { get; set; } = 4 * 1024 * 1024; // RSS counts it twice (the kernel maps the data pages twice)

    [Option("Nice value of the event thread (the one that drains the ring buffer and exports), -20 to 19; 0 leaves it as the agent's. "
        + "Below 0 the scheduler favours it over the traced workloads when they saturate the CPUs, so a burst from many writers overflows the ring less "
        + "(lost events are counted either way), at the cost of taking that CPU from them", HelpName = "N")]
    public int EventThreadNice { get; set; }

    [Option("Benchmarks only: selectors run in user space, the kernel posts every call and enforces nothing")]
    public bool DebugUserspaceFilter { get; set; }

    [Option("Tests and benchmarks: opens are matched at enter and exit even where every hook only posts (as on a kernel that refuses the exit-only program)")]
    public bool DebugNoExitOnly { get; set; }

    [Option("Write the agent's counters as JSON to this file every 500 ms and at stop", HelpName = "PATH")]
    public string? StatsFile { get; set; }

    [Option("Write the linear addresses in kernel_stack_trace / user_stack_trace entries (as Tetragon's --expose-stack-addresses; they defeat KASLR and ASLR)")]
    public bool ExposeStackAddresses { get; set; }

    [Option("Add process_credentials and capabilities to process objects (as Tetragon's --enable-process-cred)")]
    public bool EnableProcessCred { get; set; }

    [Option("Add ns (the process's namespaces, each with is_host) to process objects (as Tetragon's --enable-process-ns)")]
    public bool EnableProcessNs { get; set; }

    [Option("Add environment_variables to process objects, read by the kernel at exec (as Tetragon's --enable-process-environment-variables; they may hold secrets: see --redaction-filters)")]
    public bool EnableProcessEnvironmentVariables { get; set; }

    [Option("Keep only these environment variables, NAME,... (as Tetragon's --filter-environment-variables)", HelpName = "NAMES")]
    public string? FilterEnvironmentVariables { get; set; }

    /// <summary>The names --filter-environment-variables keeps; null: all.</summary>
    public IReadOnlySet<string>? EnvironmentFilter() =>
        string.IsNullOrWhiteSpace(FilterEnvironmentVariables) ? null
        : FilterEnvironmentVariables.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet(StringComparer.Ordinal);

    [Option("Events that list the process's ancestors beyond its parent: base (exec, exit), kprobe, tracepoint, lsm (as Tetragon's --enable-ancestors)", HelpName = "TYPES")]
    public string? EnableAncestors { get; set; }

    [Option("Add the agent's own fields to events (policy mode, whether enforced, who decided, safety refusals, why a process is unattributed) in a \"securityagent\" object; off: every line parses strictly as Tetragon's")]
    public bool ExportExtensions { get; set; }

    [Option("Name users in process objects (user.name) from /etc/passwd for processes outside containers (as Tetragon's --username-metadata)", Values = ["disabled", "unix"])]
    public string UsernameMetadata { get; set; } = "disabled";

    [Option("Cluster name in events (cluster_name, as Tetragon's --cluster-name)", HelpName = "NAME")]
    public string? ClusterName { get; set; }

    [Option("Node labels in events (node_labels), key=value,...", HelpName = "LABELS")]
    public string? NodeLabels { get; set; }

    [Option("Export only events matching one of these filters (Tetragon's format: one JSON object per line)", HelpName = "JSON")]
    public string? ExportAllowlist { get; set; }

    [Option("Never export events matching one of these filters (same format)", HelpName = "JSON")]
    public string? ExportDenylist { get; set; }

    [Option("Fields kept or removed per event type, e.g. {\"fields\":\"parent\",\"action\":\"EXCLUDE\"}", HelpName = "JSON")]
    public string? FieldFilters { get; set; }

    [Option("Regexes whose capture groups are replaced by ***** in arguments", HelpName = "JSON")]
    public string? RedactionFilters { get; set; }

    [Option("Events exported per minute at most (0: no limit); drops are counted and announced", HelpName = "N")]
    public int ExportRateLimit { get; set; }

    [Option("Serve /metrics, /healthz and /readyz over TCP, e.g. 127.0.0.1:9567 or :2112 (all interfaces)", HelpName = "HOST:PORT")]
    public string? MetricsAddress { get; set; }

    [Option("Extra labels on event metrics, from namespace,workload,pod,binary (off by default: each adds a series per value)", HelpName = "LABELS")]
    public string? MetricsLabelFilter { get; set; }

    [Option("OTLP collector, e.g. http://collector:4317 (grpc) or http://collector:4318 (http/protobuf); a path is kept", HelpName = "URL")]
    public string? OtlpEndpoint { get; set; }

    [Option("OTLP transport", Values = ["grpc", "http/protobuf"])]
    public string OtlpProtocol { get; set; } = "grpc";

    [Option("Headers sent with every OTLP request, key=value,... (e.g. authorization=Bearer%20T)", HelpName = "HEADERS")]
    public string? OtlpHeaders { get; set; }

    [Option("Events kept for the collector during an outage; more are counted as dropped", HelpName = "N")]
    public int OtlpQueueSize { get; set; } = 10_000;

    [Option("How often the agent's metrics go to the collector", HelpName = "MS")]
    public int OtlpMetricsIntervalMs { get; set; } = 10_000;

    [Option("A kubeconfig file; without it, in-cluster config when KUBERNETES_SERVICE_HOST is set, else no Kubernetes", HelpName = "FILE")]
    public string? Kubeconfig { get; set; }

    [Option("The local API's Unix socket (root only; `secagent status|events|policy` use it)", HelpName = "PATH")]
    public string ApiSocket { get; set; } = DefaultApiSocket;

    /// <summary>What events carry beyond Tetragon's default fields.</summary>
    public EventFormat ToEventFormat() => new()
    {
        ProcessCredentials = EnableProcessCred,
        ProcessNamespaces = EnableProcessNs,
        Ancestors = EventFormat.ParseAncestors(EnableAncestors),
        Extensions = ExportExtensions,
        PasswdFile = UsernameMetadata == "unix" ? "/etc/passwd" : null,
        ClusterName = ClusterName,
        NodeLabels = EventFormat.ParseLabels(NodeLabels),
    };

    public string ResolveNodeName() =>
        !string.IsNullOrEmpty(NodeName) ? NodeName
        : Environment.GetEnvironmentVariable("NODE_NAME") is { Length: > 0 } n ? n
        : Environment.MachineName;

    /// <summary>Whether events are written as compact lines: asked for, or "auto" with events going to a terminal.</summary>
    public bool CompactOutput(bool stdoutIsTerminal) => Output switch
    {
        "compact" => true,
        "json" => false,
        _ => ExportFile == "-" && stdoutIsTerminal,
    };

    public static readonly string[] MetricsLabels = ["namespace", "workload", "pod", "binary"];

    /// <summary>Every problem with the options, as "--option value: what is wrong"; empty when the agent can start.</summary>
    public List<string> Validate()
    {
        var errors = new List<string>();
        void Check(bool ok, string option, object? value, string problem)
        {
            if (!ok) errors.Add($"--{option} '{value}': {problem}");
        }
        Check(Directory.Exists(PolicyDir), "policy-dir", PolicyDir, File.Exists(PolicyDir) ? "is a file, not a directory" : "no such directory (create it, or point --policy-dir at your policies)");
        Check(ExportFile == "-" || ParentExists(ExportFile), "export-file", ExportFile, "its directory does not exist");
        Check(ExportFileMaxSize >= 0, "export-file-max-size", ExportFileMaxSize, "must be 0 (no rotation) or more");
        Check(ExportFileMaxBackups is >= 1 and <= 1000, "export-file-max-backups", ExportFileMaxBackups, "must be between 1 and 1000");
        Check(ProcessCacheSize >= 100, "process-cache-size", ProcessCacheSize, "must be at least 100");
        Check(ExitGraceSeconds is >= 0 and <= 3600, "exit-grace-seconds", ExitGraceSeconds, "must be between 0 and 3600");
        Check(ChannelCapacity >= 1024, "channel-capacity", ChannelCapacity, "must be at least 1024");
        Check(EventThreadNice is >= -20 and <= 19, "event-thread-nice", EventThreadNice, "must be between -20 and 19");
        Check(RingBufferBytes >= 4096 && uint.IsPow2(RingBufferBytes), "ring-buffer-bytes", RingBufferBytes, "must be a power of two, at least 4096");
        Check(StatsFile is null || ParentExists(StatsFile), "stats-file", StatsFile, "its directory does not exist");
        Check(ExportRateLimit >= 0, "export-rate-limit", ExportRateLimit, "must be 0 (no limit) or more");
        Check(MetricsAddress is null || TryParseAddress(MetricsAddress, out _), "metrics-address", MetricsAddress, "expected HOST:PORT with a port from 1 to 65535, e.g. 127.0.0.1:9567 or :2112");
        var unknownLabels = (MetricsLabelFilter ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Except(MetricsLabels).ToList();
        Check(unknownLabels.Count == 0, "metrics-label-filter", MetricsLabelFilter, $"unknown label {string.Join(", ", unknownLabels)} (labels: {string.Join(",", MetricsLabels)})");
        Check(OtlpEndpoint is null || Uri.TryCreate(OtlpEndpoint, UriKind.Absolute, out var u) && u.Scheme is "http" or "https", "otlp-endpoint", OtlpEndpoint, "expected an http:// or https:// URL");
        Check(OtlpProtocol is "grpc" or "http/protobuf", "otlp-protocol", OtlpProtocol, "must be grpc or http/protobuf");
        Check((OtlpHeaders ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries).All(h => h.IndexOf('=') > 0), "otlp-headers", OtlpHeaders, "expected key=value,key2=value2");
        Check(OtlpQueueSize >= 1, "otlp-queue-size", OtlpQueueSize, "must be at least 1");
        Check(OtlpMetricsIntervalMs >= 100, "otlp-metrics-interval-ms", OtlpMetricsIntervalMs, "must be at least 100");
        Check(Kubeconfig is null || File.Exists(Kubeconfig), "kubeconfig", Kubeconfig, "no such file");
        Check(ApiSocket.Length > 0 && Path.IsPathRooted(ApiSocket), "api-socket", ApiSocket, "must be an absolute path (the API listens on a Unix socket only, never on TCP)");
        Check(System.Text.Encoding.UTF8.GetByteCount(ApiSocket) < 108, "api-socket", ApiSocket, "longer than a Unix socket path may be (107 bytes)");
        Check(Output is "auto" or "compact" or "json", "output", Output, "must be auto, compact or json");
        Check(UsernameMetadata is "disabled" or "unix", "username-metadata", UsernameMetadata, "must be disabled or unix");
        ParseCheck("export-allowlist", ExportAllowlist, t => ExportFilter.ParseList(t));
        ParseCheck("export-denylist", ExportDenylist, t => ExportFilter.ParseList(t));
        ParseCheck("field-filters", FieldFilters, t => FieldFilter.ParseList(t));
        ParseCheck("redaction-filters", RedactionFilters, t => Redactor.Parse(t));
        ParseCheck("enable-ancestors", EnableAncestors, t => EventFormat.ParseAncestors(t));
        ParseCheck("node-labels", NodeLabels, t => EventFormat.ParseLabels(t));
        return errors;

        void ParseCheck(string option, string? text, Action<string> parse)
        {
            if (string.IsNullOrEmpty(text)) return;
            try { parse(text); }
            catch (Exception e) when (e is FormatException or ArgumentException) { errors.Add($"--{option}: {e.Message}"); }
        }
    }

    private static bool ParentExists(string path) => Directory.Exists(Path.GetDirectoryName(Path.GetFullPath(path)));

    /// <summary>HOST:PORT where HOST is an IP address, "localhost" or empty (every interface); [v6]:port for IPv6.</summary>
    public static bool TryParseAddress(string text, out IPEndPoint endpoint)
    {
        endpoint = new IPEndPoint(IPAddress.Any, 0);
        int colon = text.LastIndexOf(':');
        if (colon < 0 || !int.TryParse(text.AsSpan(colon + 1), System.Globalization.NumberStyles.None, null, out int port) || port is < 1 or > 65535)
            return false;
        var host = text[..colon].Trim('[', ']');
        IPAddress? ip = host switch
        {
            "" => IPAddress.Any,
            "localhost" => IPAddress.Loopback,
            _ => host.Contains('.') || host.Contains(':') ? IPAddress.TryParse(host, out var a) ? a : null : null,
        };
        if (ip is null) return false;
        endpoint = new IPEndPoint(ip, port);
        return true;
    }
}

/// <summary>Makes an <see cref="AgentOptions"/> property a `secagent run` option.</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class OptionAttribute(string description) : Attribute
{
    public string Description { get; } = description;
    /// <summary>The value's name in help, e.g. DIR.</summary>
    public string? HelpName { get; init; }
    /// <summary>The only values accepted (and offered by shell completion).</summary>
    public string[]? Values { get; init; }
}
