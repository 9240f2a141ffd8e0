using System.Diagnostics;

namespace SecurityAgent.Tests.Support;

/// <summary>Starting the test's own child processes.</summary>
public static class Run
{
    public static Process Start(string file, IEnumerable<string> args, string? cwd = null, bool redirect = true)
    {
        var psi = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = redirect, RedirectStandardError = redirect, RedirectStandardInput = redirect };
        if (cwd is not null) psi.WorkingDirectory = cwd;
        foreach (var a in args) psi.ArgumentList.Add(a);
        return Process.Start(psi)!;
    }

    /// <summary>Runs to completion; returns exit code and stdout.</summary>
    public static (int Code, string Stdout, string Stderr) Wait(string file, IEnumerable<string> args, string? cwd = null, int timeoutMs = 60_000)
    {
        using var p = Start(file, args, cwd);
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeoutMs))
        {
            p.Kill();
            throw new TimeoutException($"{file} did not finish in {timeoutMs} ms");
        }
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    public static string Bpftool(params string[] args) => Wait("bpftool", args).Stdout;
}
