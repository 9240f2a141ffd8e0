using SecurityAgent.Events;

namespace SecurityAgent.Processes;

/// <summary>How the agent learned of a process.</summary>
public enum ProcessOrigin
{
    Exec,
    Clone,
    ProcFs,
}

/// <summary>One execution of a process: what the process cache holds and events render.</summary>
public sealed class ProcessInfo
{
    public required string ExecId { get; init; }
    public required int Pid { get; init; }
    public int Tid { get; init; }
    /// <summary>Task start, CLOCK_BOOTTIME ns (from /proc: clock-tick resolution).</summary>
    public required ulong StartTime { get; init; }
    /// <summary>When this execution began: the exec time, or the start for clones and /proc entries.</summary>
    public required ulong Ktime { get; init; }
    public required string Binary { get; init; }
    public required IReadOnlyList<string> Args { get; init; }
    public required string Cwd { get; init; }
    public required Credentials Creds { get; init; }
    public uint Auid { get; init; } = uint.MaxValue;
    /// <summary>The pid in the process's own pid namespace, read by the kernel at exec and fork (Tetragon's container
    /// pid), and from /proc's NSpid for processes found at start-up; 0: unknown.</summary>
    public uint Nspid { get; init; }
    /// <summary>The environment at exec, filtered (with --enable-process-environment-variables); a clone keeps its parent's.</summary>
    public IReadOnlyList<EnvVar> Environment { get; init; } = [];
    public Capabilities? Caps { get; init; }
    public uint Securebits { get; init; }
    public UserNamespace UserNs { get; init; }
    public NamespaceInums Namespaces { get; init; }
    /// <summary>Set by an exec only; rendered on the exec event only (as Tetragon).</summary>
    public BinaryProperties BinaryProperties { get; init; }
    public ulong CgroupId { get; init; }
    public int Ppid { get; init; }
    /// <summary>Set at creation; for /proc entries linked once the whole scan is in.</summary>
    public string? ParentExecId { get; internal set; }
    public required ProcessOrigin Origin { get; init; }
    /// <summary>Set at creation; for /proc entries, InInitTree is added once the whole scan is in (<see cref="ProcFsScanner.ScanTree"/>).</summary>
    public Wire.ExecFlags Flags { get; internal set; }
    /// <summary>Set when the agent could not tell which execution this is, and says why.</summary>
    public string? Unattributed { get; init; }

    /// <summary>The container the process runs in (from its cgroup), and its pod once the pod watch has it.</summary>
    public Containers.ContainerRef? Container { get; internal set; }
    public Containers.PodInfo? Pod { get; internal set; }

    public bool Exited { get; internal set; }
    /// <summary>The exporters' JSON of this process (see <see cref="Export.ProcessRenderer"/>).</summary>
    internal Export.RenderedProcess? Rendered { get; set; }
    internal long RemoveAfter { get; set; }
    internal LinkedListNode<ProcessInfo>? Node { get; set; }

    /// <summary>The arguments as one string, as Tetragon renders them: space separated, an argument
    /// with white space (or an empty one) in double quotes.</summary>
    public string Arguments => _arguments ??= string.Join(' ', Args.Skip(1).Select(Quote));
    private string? _arguments;

    private static string Quote(string a) =>
        a.Length > 0 && !a.Any(c => char.IsWhiteSpace(c) || c == '"') ? a : "\"" + a.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";

    /// <summary>Tetragon's in_init_tree: the process or an ancestor (at its fork) was its pid namespace's init.</summary>
    public bool InInitTree => Flags.HasFlag(Wire.ExecFlags.InInitTree);

    /// <summary>Tetragon's process flags string.</summary>
    public string FlagsText => _flagsText ??= RenderFlags();
    private string? _flagsText;

    private string RenderFlags()
    {
        var parts = new List<string>(4)
        {
            Origin switch { ProcessOrigin.Exec => "execve", ProcessOrigin.Clone => "clone", _ => "procFS" },
        };
        if (Cwd == "/") parts.Add("rootcwd");
        if (Flags.HasFlag(Wire.ExecFlags.ArgsTruncated)) parts.Add("truncArgs");
        if (Flags.HasFlag(Wire.ExecFlags.PathTruncated)) parts.Add("truncFilename");
        if (Flags.HasFlag(Wire.ExecFlags.ArgsFault)) parts.Add("errorArgs");
        if (Auid != uint.MaxValue) parts.Add("auid");
        if (Unattributed is not null) parts.Add("unknown"); // Tetragon's flag for a process its cache did not have
        if (InInitTree) parts.Add("inInitTree");
        return string.Join(' ', parts);
    }
}
