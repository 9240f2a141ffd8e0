using System.Text.Json;
using SecurityAgent.Kernel;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>Path selectors match the file the kernel uses, not the string the process passed: every other spelling
/// of a test-owned secret (relative, `//`, `./`, `..`, a dirfd, a symlink, a bind mount, /proc/self/fd) is
/// reported in monitor mode and killed in enforce mode, on the real kernel. Policies are scoped to binaries copied
/// into the test's temp dir and to paths inside it.</summary>
[Collection("kernel")]
public class PathEvasionTests
{
    internal static JsonElement? Body(JsonElement e, string policy)
    {
        foreach (var p in e.EnumerateObject())
            if (p.Value.ValueKind == JsonValueKind.Object && p.Value.TryGetProperty("policy_name", out var n) && n.GetString() == policy)
                return p.Value;
        return null;
    }

    /// <summary>The first event of <paramref name="policy"/> for <paramref name="passed"/> among those exported after
    /// the first <paramref name="from"/>.</summary>
    internal static JsonElement WaitFor(AgentProcess agent, int from, string policy, string passed, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(Environment.GetEnvironmentVariable("SECAGENT_IN_VM") == "1" ? 60 : 10);
        while (true)
        {
            var all = agent.Events.All;
            for (int i = from; i < all.Count; i++)
                if (Body(all[i], policy) is { } b && Passed(b) == passed)
                    return b;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"no {policy} event for {what} ({passed}); its events since: "
                    + string.Join("; ", all.Skip(from).Select(e => Body(e, policy)).OfType<JsonElement>()
                        .Select(b => $"{Passed(b)} -> {b.GetProperty("args")[0].GetProperty("string_arg").GetString()}"))
                    + $" ({all.Count - from} events in all)" + Diagnostics(agent, from));
            Thread.Sleep(50);
        }
    }

    /// <summary>What a missed event's report needs: every event exported since <paramref name="from"/> (one line each),
    /// the agent's counters (hooks' matched/posted, kernel and export losses) and the end of its log.</summary>
    internal static string Diagnostics(AgentProcess agent, int from)
    {
        var lines = agent.Events.RawLines.Skip(from).Select(l => l.Length > 3000 ? l[..3000] + "..." : l);
        string status;
        try { status = Run.Wait("dotnet", [Repo.AgentDll, "status", "-o", "json", "--api-socket", agent.Socket], timeoutMs: 120_000).Stdout; }
        catch (TimeoutException e) { status = e.Message; }
        return $"\nexported since:\n{string.Join("\n", lines)}\nstatus:\n{status}\nthe agent's log ends:\n{agent.Stderr[Math.Max(0, agent.Stderr.Length - 3000)..]}";
    }

    private static JsonElement WaitForPassed(AgentProcess agent, string policy, string passed, string what) =>
        Body(agent.Events.WaitFor(e => Body(e, policy) is { } b && Passed(b) == passed, $"{policy} event for {what} ({passed})"), policy)!.Value;

    /// <summary>The string the process passed for the first argument (the securityagent extension has it where it
    /// differs from the resolved string_arg).</summary>
    internal static string? Passed(JsonElement body)
    {
        if (body.TryGetProperty("securityagent", out var ext) && ext.TryGetProperty("passed_args", out var passed))
            foreach (var p in passed.EnumerateArray())
                if (p.GetProperty("arg").GetInt32() == 0) return p.GetProperty("string_arg").GetString();
        return body.GetProperty("args")[0].GetProperty("string_arg").GetString();
    }

    [Fact]
    public void Every_spelling_of_a_secret_file_is_reported_with_the_resolved_path_and_the_string_passed()
    {
        using var s = new SecretScene("victim");
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = s.OpenPolicy("evasion-monitor", "monitor", "Sigkill", s.Cat, s.Grep) }, "--export-extensions");
        Assert.Contains("Policy evasion-monitor loaded", agent.Stderr);
        foreach (var (what, file, args, cwd, passed, resolved) in s.Spellings(bindMount: true))
        {
            var r = Run.Wait(file, args, cwd);
            Assert.True(r.Code == 0 && r.Stdout.Contains("TOP-SECRET"), $"{what}: monitor mode must not stop the read: {r.Code} {r.Stdout} {r.Stderr}");
            var body = WaitForPassed(agent, "evasion-monitor", passed, what);
            Assert.Equal(resolved, body.GetProperty("args")[0].GetProperty("string_arg").GetString());
            Assert.False(body.GetProperty("securityagent").GetProperty("enforced").GetBoolean());
        }
        // A file outside the secret directory, by the same binaries and the same tricks, is not reported.
        Assert.Equal(0, Run.Wait(s.Cat, ["../plain.txt"], s.SecretDir).Code);
        Assert.Equal(0, Run.Wait(s.Cat, [s.Dir.Path + "/secret/../plain.txt"]).Code);
        Assert.Equal(0, Run.Wait(s.Cat, [s.Dir.Path + "/plain.txt"]).Code);
        Thread.Sleep(500);
        Assert.DoesNotContain(agent.Events.Where(e => Body(e, "evasion-monitor") is not null),
            e => Body(e, "evasion-monitor")!.Value.GetProperty("args")[0].GetProperty("string_arg").GetString()!.EndsWith("plain.txt"));
    }

    [Fact]
    public void Every_spelling_of_a_secret_file_is_killed_in_enforce_mode_before_the_reader_prints_a_byte()
    {
        using var s = new SecretScene("victim");
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = s.OpenPolicy("evasion-kill", "enforce", "Sigkill", s.Cat, s.Grep) }, "--export-extensions");
        Assert.Contains("Policy evasion-kill loaded", agent.Stderr);
        foreach (var (what, file, args, cwd, passed, _) in s.Spellings(bindMount: true))
        {
            var r = Run.Wait(file, args, cwd);
            Assert.True(r.Code == 137 && !r.Stdout.Contains("TOP-SECRET"), $"{what}: expected SIGKILL before any output, got {r.Code} '{r.Stdout}' {r.Stderr}");
            var body = WaitForPassed(agent, "evasion-kill", passed, what);
            Assert.True(body.GetProperty("securityagent").GetProperty("enforced").GetBoolean(), what);
        }
        Assert.Equal((0, "plain\n"), (Run.Wait(s.Cat, ["../plain.txt"], s.SecretDir).Code, Run.Wait(s.Cat, ["../plain.txt"], s.SecretDir).Stdout));
    }

    /// <summary>The openat hooks' resolution (the enter's join and fold, the exit's look at the file opened) on every
    /// kernel the agent supports: this runs on the host and in the VM lane (6.1, stricter verifier). One agent holds a
    /// monitor policy for one pair of readers and an enforce policy for another; each spelling is caught by both, a failed
    /// open of a name in the secret directory is reported, and the same readers' unrelated files are not.</summary>
    [RequiresKernel(Mechanism.Tracepoint)]
    public void Every_spelling_of_an_openat_of_the_secret_is_caught_in_monitor_and_enforce_mode_on_this_kernel()
    {
        using var s = new SecretScene("victim");
        var killCat = s.Dir.CopyBinary("/usr/bin/cat", "killed-cat");
        var killGrep = s.Dir.CopyBinary("/usr/bin/grep", "killed-grep");
        using var agent = new AgentProcess(new Dictionary<string, string>
        {
            ["monitor.yaml"] = s.OpenPolicy("kernels-monitor", "monitor", "Sigkill", s.Cat, s.Grep),
            ["enforce.yaml"] = s.OpenPolicy("kernels-enforce", "enforce", "Sigkill", killCat, killGrep),
        }, "--export-extensions");
        Assert.Contains("Policy kernels-monitor loaded", agent.Stderr);
        Assert.Contains("Policy kernels-enforce loaded", agent.Stderr);
        foreach (var (what, file, args, cwd, passed) in s.Renamed(s.Cat, s.Grep))
        {
            int from = agent.Events.All.Count;
            var r = Run.Wait(file, args, cwd);
            Assert.True(r.Code == 0 && r.Stdout.Contains("TOP-SECRET"), $"{what}: monitor mode must not stop the read: {r.Code} {r.Stdout} {r.Stderr}");
            var body = WaitFor(agent, from, "kernels-monitor", passed, what);
            Assert.Equal(s.Secret, body.GetProperty("args")[0].GetProperty("string_arg").GetString());
            Assert.False(body.GetProperty("securityagent").GetProperty("enforced").GetBoolean(), what);
        }
        foreach (var (what, file, args, cwd, passed) in s.Renamed(killCat, killGrep))
        {
            int from = agent.Events.All.Count;
            var r = Run.Wait(file, args, cwd);
            Assert.True(r.Code == 137 && !r.Stdout.Contains("TOP-SECRET"), $"{what}: expected SIGKILL before any output, got {r.Code} '{r.Stdout}' {r.Stderr}");
            var body = WaitFor(agent, from, "kernels-enforce", passed, what);
            Assert.Equal(s.Secret, body.GetProperty("args")[0].GetProperty("string_arg").GetString());
            Assert.True(body.GetProperty("securityagent").GetProperty("enforced").GetBoolean(), what);
        }
        // A failed open (no such file) of a name in the secret directory is an attempt: reported, by either spelling.
        foreach (var (args, cwd, passed) in new (string[], string?, string)[]
                 { ([s.SecretDir + "/missing.txt"], null, s.SecretDir + "/missing.txt"), (["missing.txt"], s.SecretDir, "missing.txt") })
        {
            int from = agent.Events.All.Count;
            var r = Run.Wait(s.Cat, args, cwd);
            Assert.True(r.Code == 1 && r.Stderr.Contains("No such file"), $"a failed open of {passed}: {r.Code} {r.Stderr}");
            var body = WaitFor(agent, from, "kernels-monitor", passed, "a failed open");
            Assert.Equal(s.SecretDir + "/missing.txt", body.GetProperty("args")[0].GetProperty("string_arg").GetString());
        }
        // Files outside the secret directory, by the same readers and the same tricks: no event of either policy.
        int after = agent.Events.All.Count;
        foreach (var cat in new[] { s.Cat, killCat })
        {
            Assert.Equal((0, "plain\n"), (Run.Wait(cat, ["../plain.txt"], s.SecretDir) is var a ? (a.Code, a.Stdout) : default));
            Assert.Equal(0, Run.Wait(cat, [s.Dir.Path + "/secret/../plain.txt"]).Code);
            Assert.Equal(0, Run.Wait(cat, [s.Dir.Path + "/plainlink"]).Code);
            Assert.Equal(0, Run.Wait(s.Sh, ["-c", $"exec 3< {s.Dir.File("plain.txt")}; exec {cat} /proc/self/fd/3"]).Code);
        }
        Thread.Sleep(500);
        Assert.DoesNotContain(agent.Events.All.Skip(after), e => Body(e, "kernels-monitor") is not null || Body(e, "kernels-enforce") is not null);
    }

    private static string ExecPolicy(string name, string mode, string prefix, string? binary = null) => $"""
        apiVersion: securityagent.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: {name}
        spec:
          options:
          - name: policy-mode
            value: {mode}
          tracepoints:
          - subsystem: syscalls
            event: sys_enter_execve
            args:
            - index: 5
              type: string
              label: filename
            selectors:
            - matchArgs:
              - index: 5
                operator: Prefix
                values: ["{prefix}"]{(binary is null ? "" : "\n      matchBinaries:\n      - operator: In\n        values: [\"" + binary + "\"]")}
              matchActions:
              - action: Sigkill
        """;

    [Theory]
    [InlineData("monitor")]
    [InlineData("enforce")]
    public void Executing_a_file_of_a_watched_directory_by_a_relative_path_or_a_symlink_is_caught(string mode)
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("bins"));
        Directory.CreateDirectory(dir.File("elsewhere"));
        var tool = dir.CopyBinary("/usr/bin/true", "bins/tool");
        var sh = dir.CopyBinary("/usr/bin/dash", "elsewhere/sh");
        File.CreateSymbolicLink(dir.File("elsewhere/alias"), tool);
        var policy = "exec-" + mode;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = ExecPolicy(policy, mode, dir.File("bins") + "/") }, "--export-extensions");
        int expected = mode == "enforce" ? 137 : 0;

        // ./tool from the watched directory: resolved at enter (the shell is killed before the exec).
        Assert.Equal(expected, Run.Wait(sh, ["-c", "./tool"], dir.File("bins")).Code);
        var rel = WaitForPassed(agent, policy, "./tool", "relative exec");
        Assert.Equal(tool, rel.GetProperty("args")[0].GetProperty("string_arg").GetString());
        Assert.False(rel.GetProperty("securityagent").TryGetProperty("matched_at_exit", out _));
        // A symlink elsewhere: only the exec itself finds the file; caught at exit, before the program runs.
        Assert.Equal(expected, Run.Wait(sh, ["-c", "./alias"], dir.File("elsewhere")).Code);
        var link = WaitForPassed(agent, policy, "./alias", "exec through a symlink");
        Assert.Equal(tool, link.GetProperty("args")[0].GetProperty("string_arg").GetString());
        Assert.Equal(mode == "enforce", link.GetProperty("securityagent").GetProperty("enforced").GetBoolean());
        Assert.True(link.GetProperty("securityagent").GetProperty("matched_at_exit").GetBoolean());
        // The same shell running a program outside the directory is left alone.
        Assert.Equal(0, Run.Wait(sh, ["-c", "/usr/bin/true"]).Code);
    }

    /// <summary>matchBinaries on an exec hook is about the binary that calls exec. The check at exit (after an exec
    /// through a symlink) must not ask it of the new program.</summary>
    [Theory]
    [InlineData("monitor")]
    [InlineData("enforce")]
    public void An_exec_through_a_symlink_is_caught_for_the_binaries_a_policy_names_and_only_them(string mode)
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("bins"));
        Directory.CreateDirectory(dir.File("elsewhere"));
        var tool = dir.CopyBinary("/usr/bin/true", "bins/tool");
        var sh = dir.CopyBinary("/usr/bin/dash", "elsewhere/sh");
        var other = dir.CopyBinary("/usr/bin/dash", "elsewhere/other-sh");
        File.CreateSymbolicLink(dir.File("elsewhere/alias"), tool);
        var policy = "exec-bin-" + mode;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = ExecPolicy(policy, mode, dir.File("bins") + "/", sh) }, "--export-extensions");
        Assert.Contains($"Policy {policy} loaded", agent.Stderr);

        // Another shell running the same symlink: not the policy's binary, not reported, not killed.
        Assert.Equal(0, Run.Wait(other, ["-c", "./alias"], dir.File("elsewhere")).Code);
        // The policy's shell: caught at exit, the binary checked being the shell, not the program it became.
        Assert.Equal(mode == "enforce" ? 137 : 0, Run.Wait(sh, ["-c", "./alias"], dir.File("elsewhere")).Code);
        var link = WaitForPassed(agent, policy, "./alias", "exec through a symlink by the policy's binary");
        Assert.Equal(tool, link.GetProperty("args")[0].GetProperty("string_arg").GetString());
        Assert.True(link.GetProperty("securityagent").GetProperty("matched_at_exit").GetBoolean());
        Assert.Equal(mode == "enforce", link.GetProperty("securityagent").GetProperty("enforced").GetBoolean());
        Thread.Sleep(300);
        Assert.Single(agent.Events.All, e => Body(e, policy) is not null);
    }
}
