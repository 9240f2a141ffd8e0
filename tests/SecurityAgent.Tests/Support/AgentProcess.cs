using System.Diagnostics;
using System.Text;

namespace SecurityAgent.Tests.Support;

/// <summary>The real agent binary, run as a child of the test: `secagent run` with an export file
/// in a temp dir. Dispose stops it with SIGTERM, as an operator would.</summary>
public sealed class AgentProcess : IDisposable
{
    private readonly Process _proc;
    private readonly StringBuilder _stderr = new();
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    public TempDir Dir { get; } = new();
    public ExportedEvents Events { get; }
    public string Stderr { get { lock (_stderr) return _stderr.ToString(); } }
    public int Pid => _proc.Id;
    /// <summary>This agent's local API socket (each test agent has its own).</summary>
    public string Socket { get; private set; } = "";

    /// <summary>Under the VM lane's emulated CPU (qemu TCG, often on a loaded host) a .NET start-up takes tens of seconds.</summary>
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(Environment.GetEnvironmentVariable("SECAGENT_IN_VM") == "1" ? 180 : 30);

    public AgentProcess(params string[] extraArgs) : this(new Dictionary<string, string>(), extraArgs) { }

    /// <param name="policies">Policy files (name → YAML) put in the agent's --policy-dir.</param>
    public AgentProcess(IReadOnlyDictionary<string, string> policies, params string[] extraArgs) : this(null, policies, extraArgs) { }

    /// <param name="exportFile">The --export-file (default: events.json in the agent's temp dir).</param>
    public AgentProcess(string? exportFile, IReadOnlyDictionary<string, string> policies, params string[] extraArgs)
    {
        var export = exportFile ?? Dir.File("events.json");
        var policyDir = Directory.CreateDirectory(Dir.File("policies")).FullName;
        foreach (var (name, yaml) in policies)
            File.WriteAllText(Path.Combine(policyDir, name), yaml);
        Events = new ExportedEvents(export);
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        Socket = Dir.File("agent.sock");
        // The caller's --export-file, --policy-dir or --api-socket replaces the default (an option given twice is an error).
        var defaults = new[] { ("--export-file", export), ("--policy-dir", policyDir), ("--api-socket", Socket) };
        foreach (var (option, value) in defaults.Where(d => !extraArgs.Contains(d.Item1)))
            extraArgs = [option, value, .. extraArgs];
        if (Array.IndexOf(extraArgs, "--api-socket") is >= 0 and var i) Socket = extraArgs[i + 1];
        if (Array.IndexOf(extraArgs, "--export-file") is >= 0 and var j) Events = new ExportedEvents(extraArgs[j + 1]);
        foreach (var a in new[] { Repo.AgentDll, "run" }.Concat(extraArgs))
            psi.ArgumentList.Add(a);
        _proc = Process.Start(psi)!;
        _proc.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (_stderr) _stderr.AppendLine(e.Data);
            if (e.Data.Contains("Agent ready")) _ready.TrySetResult();
        };
        _proc.OutputDataReceived += (_, _) => { };
        _proc.BeginErrorReadLine();
        _proc.BeginOutputReadLine();
        _proc.EnableRaisingEvents = true;
        // Exited can fire before the last stderr lines are delivered: wait for the stream's end before quoting it.
        _proc.Exited += (_, _) => Task.Run(() =>
        {
            _proc.WaitForExit();
            _ready.TrySetException(new InvalidOperationException("agent exited before it was ready:\n" + Stderr));
        });
        try
        {
            if (!_ready.Task.Wait(ReadyTimeout))
                throw new TimeoutException($"agent not ready after {ReadyTimeout.TotalSeconds} s:\n" + Stderr);
        }
        catch
        {
            // A failed start still cleans up what it made: the process and the temp dir.
            if (!_proc.HasExited) _proc.Kill();
            _proc.WaitForExit();
            Dir.Dispose();
            throw;
        }
    }

    /// <summary>Waits until the agent has logged a line containing <paramref name="text"/> (logs arrive asynchronously;
    /// the first policy of an agent started without one waits for the background program loads, seconds on a loaded
    /// machine, so the default is generous: a wait that succeeds returns at once).</summary>
    public bool WaitForLog(string text, int timeoutMs = 30_000)
    {
        var deadline = DateTime.UtcNow.AddMilliseconds(timeoutMs);
        while (!Stderr.Contains(text))
        {
            if (DateTime.UtcNow > deadline) return false;
            Thread.Sleep(50);
        }
        return true;
    }

    /// <summary>The agent's fanotify marks as its fdinfo lists them ("fanotify ino:... sdev:... mask:...").</summary>
    public List<string> FanotifyMarks()
    {
        var marks = new List<string>();
        try
        {
            foreach (var f in Directory.GetFiles($"/proc/{Pid}/fdinfo"))
                try { marks.AddRange(File.ReadLines(f).Where(l => l.StartsWith("fanotify ", StringComparison.Ordinal))); }
                catch (IOException) { }
        }
        catch (IOException) { }
        return marks;
    }

    /// <summary>Waits until the agent has a fanotify mark on the inode of <paramref name="path"/> (its watchers mark what
    /// appears asynchronously, from their own threads).</summary>
    public bool WaitForInodeMark(string path, int timeoutMs = 30_000)
    {
        var ino = $"fanotify ino:{SecurityAgent.Interop.Libc.Inode(path):x} ";
        var deadline = DateTime.UtcNow.AddMilliseconds(timeoutMs);
        while (!FanotifyMarks().Any(m => m.StartsWith(ino, StringComparison.Ordinal)))
        {
            if (DateTime.UtcNow > deadline) return false;
            Thread.Sleep(20);
        }
        return true;
    }

    /// <summary>SIGTERM, then waits for the exit. Returns the exit code.</summary>
    public int Terminate(TimeSpan? timeout = null)
    {
        if (_proc.HasExited) return _proc.ExitCode;
        Process.Start("kill", ["-TERM", _proc.Id.ToString()])!.WaitForExit();
        if (!_proc.WaitForExit(timeout ?? TimeSpan.FromSeconds(15)))
        {
            _proc.Kill();
            throw new TimeoutException("agent did not stop within the timeout after SIGTERM:\n" + Stderr);
        }
        _proc.WaitForExit();
        return _proc.ExitCode;
    }

    public void Dispose()
    {
        try { Terminate(); } catch (TimeoutException) { }
        _proc.Dispose();
        Dir.Dispose();
    }
}
