using System.Collections.Concurrent;
using System.Diagnostics;
using SecurityAgent.Fanotify;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>File and exec deny through fanotify permission events on this kernel (no BPF LSM). The test process holds
/// the fanotify group (it is "the agent": its own opens are always allowed); every rule targets a binary copied into
/// the test's temp dir or files there.</summary>
[Collection("kernel")]
public sealed class FanotifyDenyTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly ConcurrentQueue<FanotifyReport> _reports = new();

    public void Dispose() => _dir.Dispose();

    private string Secret(string relative = "secret/key", string content = "s3cret")
    {
        var path = _dir.File(relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content);
        return path;
    }

    private FanotifyEnforcer Start(FanotifyOptions? options = null, params FanotifyRule[] rules) =>
        FanotifyEnforcer.Start(rules, _reports.Enqueue, options);

    private static PathFilter Prefix(string p) => new(StringOp.Prefix, [p]);
    private static PathFilter Equal(string p) => new(StringOp.Equal, [p]);
    private static ProcessSelector Binary(string path) => new(Binary: Equal(path));

    private FanotifyReport WaitForReport(Func<FanotifyReport, bool> match, string what)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(10))
        {
            if (_reports.FirstOrDefault(match) is { } r) return r;
            Thread.Sleep(20);
        }
        throw new TimeoutException($"no report: {what}; got {string.Join(", ", _reports)}");
    }

    /// <summary>Retries until the expected outcome: marks for paths that appear after start land asynchronously.</summary>
    private static (int Code, string Stdout, string Stderr) Eventually(Func<(int Code, string Stdout, string Stderr)> run, int code)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var r = run();
            if (r.Code == code || sw.Elapsed > TimeSpan.FromSeconds(5)) return r;
            Thread.Sleep(50);
        }
    }

    [Fact]
    public void A_copied_cat_gets_EPERM_under_a_denied_prefix_while_another_binary_and_other_files_are_untouched()
    {
        var key = Secret();
        var pub = Secret("public.txt", "public");
        var cat = _dir.CopyBinary("/usr/bin/cat", "victim-cat");
        var other = _dir.CopyBinary("/usr/bin/cat", "other-cat");
        using var e = Start(null, new FanotifyRule("deny-secret", FileOperations.Open, [Prefix(_dir.File("secret/"))], Binary(cat)));

        var denied = Run.Wait(cat, [key]);
        Assert.Equal(1, denied.Code);
        Assert.Contains("Operation not permitted", denied.Stderr);
        Assert.Equal((0, "s3cret"), (Run.Wait(other, [key]) is var o ? (o.Code, o.Stdout) : default));
        Assert.Equal((0, "public"), (Run.Wait(cat, [pub]) is var p ? (p.Code, p.Stdout) : default));
        Assert.Equal("s3cret", File.ReadAllText(key)); // the agent's own opens never wait for it

        var r = WaitForReport(r => r.RuleId == "deny-secret", "the denied open");
        Assert.Equal((key, FileOperations.Open, FanotifyVerdict.Denied, DefaultReason.None, true), (r.Path, r.Operation, r.Verdict, r.Reason, r.Enforced));
        Assert.True(r.Pid > 1 && r.Pid != Environment.ProcessId);
        Assert.Single(_reports);
        var c = e.Counters;
        Assert.Equal(1, c.Denied);
        Assert.Equal(0, c.Defaulted.Sum());
        Assert.True(c.Events >= 2 && c.Allowed >= 1, $"events {c.Events}, allowed {c.Allowed}");
    }

    [Fact]
    public void A_denied_binary_fails_to_exec_with_EPERM_and_the_shell_exits_126_instead_of_being_killed()
    {
        var victim = _dir.CopyBinary("/usr/bin/true", "victim-true");
        var other = _dir.CopyBinary("/usr/bin/true", "other-true");
        using var e = Start(null, new FanotifyRule("deny-exec", FileOperations.Exec, [Equal(victim)], null));

        var r = Run.Wait("/bin/bash", ["-c", victim]);
        Assert.Equal(126, r.Code);
        Assert.Contains("Operation not permitted", r.Stderr);
        Assert.Equal(0, Run.Wait("/bin/bash", ["-c", other]).Code);
        Assert.Equal("", Run.Wait("/bin/bash", ["-c", $"cat {victim} >/dev/null"]).Stderr); // reading it is no exec

        var report = WaitForReport(x => x.RuleId == "deny-exec", "the denied exec");
        Assert.Equal((victim, FileOperations.Exec, FanotifyVerdict.Denied), (report.Path, report.Operation, report.Verdict));
    }

    [Fact]
    public void Monitor_mode_reports_what_it_would_deny_and_allows_it()
    {
        var key = Secret();
        var cat = _dir.CopyBinary("/usr/bin/cat", "watched-cat");
        using var e = Start(null, new FanotifyRule("watch-secret", FileOperations.Open, [Prefix(_dir.File("secret/"))], Binary(cat), RuleMode.Monitor));

        Assert.Equal((0, "s3cret"), (Run.Wait(cat, [key]) is var r ? (r.Code, r.Stdout) : default));
        var report = WaitForReport(x => x.RuleId == "watch-secret", "the monitored open");
        Assert.Equal((RuleMode.Monitor, FanotifyVerdict.Allowed, false, key), (report.Mode, report.Verdict, report.Enforced, report.Path));
        Assert.Equal(0, e.Counters.Denied);
    }

    [Fact]
    public void Killing_the_process_that_holds_the_group_with_SIGKILL_mid_decision_releases_the_blocked_opener()
    {
        var key = Secret();
        var cat = _dir.CopyBinary("/usr/bin/cat", "held-cat");
        using var holder = Run.Start(Environment.ProcessPath!, [FanotifyChild.Dll, "--fanotify-child", _dir.File("secret/")]);
        var lines = new BlockingCollection<string>();
        holder.OutputDataReceived += (_, a) => { if (a.Data is { } l) lines.Add(l); };
        holder.BeginOutputReadLine();
        try
        {
            if (!lines.TryTake(out var ready, TimeSpan.FromSeconds(30)))
            {
                holder.Kill();
                Assert.Fail("the holder did not start: " + holder.StandardError.ReadToEnd());
            }
            Assert.Equal("ready", ready);

            using var opener = Run.Start(cat, [key]);
            Assert.True(lines.TryTake(out var deciding, TimeSpan.FromSeconds(10)), "the open never reached the holder");
            Assert.Equal($"deciding {opener.Id}", deciding);
            Assert.False(opener.WaitForExit(300), "the opener should be blocked in open(2)");
            Assert.Equal("D", File.ReadAllText($"/proc/{opener.Id}/stat").Split(' ')[2]);

            holder.Kill(); // SIGKILL: no clean-up of ours runs; the kernel closes the group
            Assert.True(opener.WaitForExit(5000), "the opener stayed blocked after the holder died");
            Assert.Equal(0, opener.ExitCode); // a closed group allows what was waiting
            Assert.Equal("s3cret", opener.StandardOutput.ReadToEnd());
        }
        finally
        {
            if (!holder.HasExited) holder.Kill();
        }
    }

    private sealed class Slow(TimeSpan delay) : IProcessPredicate
    {
        public readonly ManualResetEventSlim Entered = new();

        public bool Matches(IProcessView process)
        {
            Entered.Set();
            Thread.Sleep(delay);
            return true;
        }
    }

    [Theory]
    [InlineData(FailMode.Open, 0, FanotifyVerdict.DefaultAllowed)]
    [InlineData(FailMode.Closed, 1, FanotifyVerdict.DefaultDenied)]
    public void A_decision_slower_than_the_bound_gets_the_rules_default_and_is_counted(FailMode failMode, int exitCode, FanotifyVerdict verdict)
    {
        var key = Secret();
        var cat = _dir.CopyBinary("/usr/bin/cat", "slow-cat");
        var slow = new Slow(TimeSpan.FromSeconds(3));
        var bound = TimeSpan.FromMilliseconds(200);
        using var e = Start(new FanotifyOptions { DecisionTimeout = bound },
            new FanotifyRule("slow", FileOperations.Open, [Prefix(_dir.File("secret/"))], slow, FailMode: failMode));

        var sw = Stopwatch.StartNew();
        using var first = Run.Start(cat, [key]);
        Assert.True(slow.Entered.Wait(5000));
        // While the decision thread is stuck, a second open is answered by the watchdog (overload), not queued behind it.
        var second = Run.Wait(cat, [key]);
        Assert.True(first.WaitForExit(5000));
        var elapsed = sw.Elapsed;

        Assert.Equal((exitCode, exitCode), (first.ExitCode, second.Code));
        if (exitCode == 1) Assert.Contains("Operation not permitted", second.Stderr);
        Assert.InRange(elapsed, bound, TimeSpan.FromSeconds(2)); // answered around the bound, long before the 3 s decision
        var c = e.Counters;
        Assert.Equal((1L, 1L), (c.DefaultedBy(DefaultReason.Timeout), c.DefaultedBy(DefaultReason.Overload)));
        Assert.Equal(failMode == FailMode.Closed ? 2 : 0, c.Denied);
        // Reports are handed off after the answer: they may arrive a moment after the counters.
        WaitForReport(r => (r.Verdict, r.Reason) == (verdict, DefaultReason.Timeout), "the timeout's default answer");
        WaitForReport(r => (r.Verdict, r.Reason) == (verdict, DefaultReason.Overload), "the overload's default answer");
    }

    [Fact]
    public void Files_and_directories_appearing_after_start_are_marked_and_a_hard_link_or_a_replacement_does_not_evade_an_equal_path()
    {
        var cat = _dir.CopyBinary("/usr/bin/cat", "late-cat");
        Directory.CreateDirectory(_dir.File("tree"));
        var token = _dir.File("later/token");
        using var e = Start(null,
            new FanotifyRule("tree", FileOperations.Open, [Prefix(_dir.File("tree/"))], Binary(cat)),
            new FanotifyRule("token", FileOperations.Open, [Equal(token)], Binary(cat)));

        var deep = Secret("tree/new/deeper/f", "deep");
        Assert.Equal(1, Eventually(() => Run.Wait(cat, [deep]), 1).Code);
        Secret("later/token", "t");
        Assert.Equal(1, Eventually(() => Run.Wait(cat, [token]), 1).Code);

        File.WriteAllText(token + ".new", "t2");
        File.Move(token + ".new", token, overwrite: true); // the editor's way of saving: a new inode under the name
        Assert.Equal(1, Eventually(() => Run.Wait(cat, [token]), 1).Code);

        var link = _dir.File("elsewhere");
        Assert.Equal(0, Run.Wait("/usr/bin/ln", [token, link]).Code);
        Assert.Equal(1, Run.Wait(cat, [link]).Code);
        WaitForReport(r => r.RuleId == "token" && r.Path == link, "the open through the hard link");
    }

    [Fact]
    public void A_directory_made_in_a_renamed_directory_under_a_prefix_is_marked_under_its_new_name()
    {
        var cat = _dir.CopyBinary("/usr/bin/cat", "moved-cat");
        Directory.CreateDirectory(_dir.File("tree"));
        using var e = Start(null, new FanotifyRule("tree", FileOperations.Open, [Prefix(_dir.File("tree/"))], Binary(cat)));
        var first = Secret("tree/a/f", "a");
        Assert.Equal(1, Eventually(() => Run.Wait(cat, [first]), 1).Code);

        Directory.Move(_dir.File("tree/a"), _dir.File("tree/b")); // the watch on the directory stays, under a new name
        Thread.Sleep(300); // the agent has seen the move before the next directory is made in it
        var later = Secret("tree/b/c/f", "c");
        Assert.Equal(1, Eventually(() => Run.Wait(cat, [later]), 1).Code);
    }

    [Fact]
    public void Every_event_fd_is_closed_after_its_answer()
    {
        var key = Secret();
        var cat = _dir.CopyBinary("/usr/bin/cat", "fd-cat");
        using var e = Start(null, new FanotifyRule("fds", FileOperations.Open | FileOperations.Read, [Prefix(_dir.File("secret/"))], Binary("/nonexistent")));
        for (int i = 0; i < 20; i++)
            Assert.Equal(0, Run.Wait(cat, [key]).Code);
        Assert.True(e.Counters.Events >= 40, $"{e.Counters.Events} events");
        // Each event carries an fd of the opened file; none may stay open in the agent once answered.
        Assert.Equal(0, Directory.GetFiles("/proc/self/fd").Count(f => Target(f) == key));

        static string? Target(string fd)
        {
            try { return new FileInfo(fd).LinkTarget; }
            catch (IOException) { return null; } // the directory listing's own fd, closed by now
        }
    }
}
