using System.Diagnostics;
using System.Text;

namespace SecurityAgent.Bench;

/// <summary>Processes the bench starts, and what /proc says about them.</summary>
public static class Host
{
    public static readonly long TickNs = 10_000_000; // USER_HZ 100

    public static (int Code, string Stdout, string Stderr) Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        return (p.ExitCode, o.Result, e.Result);
    }

    public static string Sh(string command) => Run("/bin/sh", "-c", command).Stdout.Trim();

    /// <summary>utime + stime of a process, in milliseconds.</summary>
    public static double CpuMs(int pid)
    {
        try { return StatCpuMs($"/proc/{pid}/stat", 11); }
        catch (IOException) { return 0; }
    }

    /// <summary>cutime + cstime of this process, in milliseconds: the CPU of every descendant waited for so far (a command
    /// run through <see cref="Run"/>, and the processes it waited for in turn).</summary>
    public static double ChildrenCpuMs() => StatCpuMs("/proc/self/stat", 13);

    /// <summary>Two adjacent tick counts of a stat file (fields after the command name, from <paramref name="at"/>), summed, in ms.</summary>
    private static double StatCpuMs(string path, int at)
    {
        var stat = File.ReadAllText(path);
        var f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(f[at]) + long.Parse(f[at + 1])) * TickNs / 1e6;
    }

    /// <summary>Resident set now (VmRSS), in MB.</summary>
    public static double RssMb(int pid) => StatusMb(pid, "VmRSS:");

    /// <summary>Peak resident set (VmHWM), in MB.</summary>
    public static double PeakRssMb(int pid) => StatusMb(pid, "VmHWM:");

    /// <summary>Sets VmHWM back to the resident set now (clear_refs 5, Linux 4.0+).</summary>
    public static void ResetPeakRss(int pid) => File.WriteAllText($"/proc/{pid}/clear_refs", "5");

    private static double StatusMb(int pid, string key)
    {
        try
        {
            var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith(key));
            return line is null ? 0 : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0;
        }
        catch (IOException) { return 0; }
    }


    /// <summary>A background process whose output is collected line by line.</summary>
    /// <summary>The environment the agent runs with wherever it is deployed (Dockerfile, `make run`): one malloc arena,
    /// which glibc reads before the runtime starts and the process cannot set for itself.</summary>
    public static readonly IReadOnlyDictionary<string, string> AgentEnv = new Dictionary<string, string> { ["MALLOC_ARENA_MAX"] = "1" };

    public sealed class Background : IDisposable
    {
        private readonly Process _p;
        private readonly StringBuilder _out = new(), _err = new();
        private long _stdoutLines;
        public int Pid => _p.Id;
        public long StdoutLines => Interlocked.Read(ref _stdoutLines);
        public string Stderr { get { lock (_err) return _err.ToString(); } }
        public string Stdout { get { lock (_out) return _out.ToString(); } }

        public Background(string file, IEnumerable<string> args, bool keepStdout = false, IReadOnlyDictionary<string, string>? env = null)
        {
            var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in args) psi.ArgumentList.Add(a);
            foreach (var (k, v) in env ?? new Dictionary<string, string>()) psi.Environment[k] = v;
            _p = Process.Start(psi)!;
            _p.OutputDataReceived += (_, e) =>
            {
                if (e.Data is null) return;
                Interlocked.Increment(ref _stdoutLines);
                if (keepStdout) lock (_out) _out.AppendLine(e.Data);
            };
            _p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_err) _err.AppendLine(e.Data); };
            _p.BeginOutputReadLine();
            _p.BeginErrorReadLine();
        }

        public bool WaitFor(Func<Background, bool> ready, TimeSpan timeout)
        {
            var deadline = DateTime.UtcNow + timeout;
            while (!ready(this))
            {
                if (_p.HasExited || DateTime.UtcNow > deadline) return false;
                Thread.Sleep(20);
            }
            return true;
        }

        public void Signal(string sig) => Run("kill", "-" + sig, _p.Id.ToString());

        public void Stop(string sig = "TERM")
        {
            if (!_p.HasExited) Signal(sig);
            if (!_p.WaitForExit(15_000)) _p.Kill();
            _p.WaitForExit();
        }

        public void Dispose()
        {
            Stop();
            _p.Dispose();
        }
    }
}
