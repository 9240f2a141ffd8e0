namespace SecurityAgent.Hosting;

/// <summary>Options of `secagent run`, bound from the "Agent" section: appsettings.json beside the
/// binary, then SECAGENT_Agent__* environment variables, then command-line flags (see <see cref="Switches"/>).</summary>
public sealed class AgentOptions
{
    public string PolicyDir { get; set; } = Policies.PolicyDirectory.DefaultPath;
    /// <summary>"-" for stdout.</summary>
    public string ExportFile { get; set; } = "-";
    /// <summary>Rotate the export file when it would grow past this many bytes (0: never).</summary>
    public long ExportFileMaxSize { get; set; }
    /// <summary>Rotated files kept (PATH.1 ... PATH.N).</summary>
    public int ExportFileMaxBackups { get; set; } = 5;
    public string? NodeName { get; set; }
    public int ProcessCacheSize { get; set; } = 100_000;
    public double ExitGraceSeconds { get; set; } = 15;
    public int ChannelCapacity { get; set; } = 65_536;
    public uint RingBufferBytes { get; set; } = 32 * 1024 * 1024;
    /// <summary>For benchmarks only: selectors run in user space, the kernel posts every call (never enforces).</summary>
    public bool DebugUserspaceFilter { get; set; }
    /// <summary>Where to write the agent's counters as JSON every 500 ms (and at stop); none when empty.</summary>
    public string? StatsFile { get; set; }
    /// <summary>Include process_credentials and capabilities in process objects (as Tetragon's --enable-process-cred).</summary>
    public bool EnableProcessCred { get; set; }
    /// <summary>Export filters, Tetragon's format: one JSON object per line (see docs/events.md).</summary>
    public string? ExportAllowlist { get; set; }
    public string? ExportDenylist { get; set; }
    public string? FieldFilters { get; set; }
    public string? RedactionFilters { get; set; }
    /// <summary>Events per minute written at most (0: no limit); drops are counted and announced.</summary>
    public int ExportRateLimit { get; set; }

    /// <summary>Where to serve Prometheus metrics over TCP, e.g. 127.0.0.1:9567 (none when empty).</summary>
    public string? MetricsAddress { get; set; }

    /// <summary>OTLP collector, e.g. http://collector:4317 (grpc) or http://collector:4318 (http/protobuf); none when empty.</summary>
    public string? OtlpEndpoint { get; set; }
    public string? OtlpProtocol { get; set; }
    /// <summary>"key=value,..." sent with every OTLP request (e.g. authorization).</summary>
    public string? OtlpHeaders { get; set; }
    public int OtlpQueueSize { get; set; } = 10_000;
    public int OtlpMetricsIntervalMs { get; set; } = 10_000;

    /// <summary>A kubeconfig file; without it, in-cluster config when KUBERNETES_SERVICE_HOST is set, else no Kubernetes.</summary>
    public string? Kubeconfig { get; set; }

    /// <summary>The local API's Unix socket (root only); empty: no API.</summary>
    public string ApiSocket { get; set; } = DefaultApiSocket;
    public const string DefaultApiSocket = "/var/run/securityagent/agent.sock";

    public string ResolveNodeName() =>
        !string.IsNullOrEmpty(NodeName) ? NodeName
        : Environment.GetEnvironmentVariable("NODE_NAME") is { Length: > 0 } n ? n
        : Environment.MachineName;

    public static readonly Dictionary<string, string> Switches = new()
    {
        ["--policy-dir"] = "Agent:PolicyDir",
        ["--export-file"] = "Agent:ExportFile",
        ["--export-file-max-size"] = "Agent:ExportFileMaxSize",
        ["--export-file-max-backups"] = "Agent:ExportFileMaxBackups",
        ["--node-name"] = "Agent:NodeName",
        ["--kubeconfig"] = "Agent:Kubeconfig",
        ["--process-cache-size"] = "Agent:ProcessCacheSize",
        ["--exit-grace-seconds"] = "Agent:ExitGraceSeconds",
        ["--channel-capacity"] = "Agent:ChannelCapacity",
        ["--ring-buffer-bytes"] = "Agent:RingBufferBytes",
        ["--debug-userspace-filter"] = "Agent:DebugUserspaceFilter",
        ["--stats-file"] = "Agent:StatsFile",
        ["--enable-process-cred"] = "Agent:EnableProcessCred",
        ["--api-socket"] = "Agent:ApiSocket",
        ["--metrics-address"] = "Agent:MetricsAddress",
        ["--otlp-endpoint"] = "Agent:OtlpEndpoint",
        ["--otlp-protocol"] = "Agent:OtlpProtocol",
        ["--otlp-headers"] = "Agent:OtlpHeaders",
        ["--otlp-queue-size"] = "Agent:OtlpQueueSize",
        ["--otlp-metrics-interval-ms"] = "Agent:OtlpMetricsIntervalMs",
        ["--export-allowlist"] = "Agent:ExportAllowlist",
        ["--export-denylist"] = "Agent:ExportDenylist",
        ["--field-filters"] = "Agent:FieldFilters",
        ["--redaction-filters"] = "Agent:RedactionFilters",
        ["--export-rate-limit"] = "Agent:ExportRateLimit",
    };
}
