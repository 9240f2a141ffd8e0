using System.Text.Json;
using SecurityAgent.Kernel;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>An openat hook whose selectors only post is matched at sys_exit_openat alone (no enter program): every way
/// to name a test-owned secret is still caught, from the file the kernel opened, a failed open is reported with the name
/// passed, and unrelated files are not. A hook that must act before the call (Sigkill) at the same point brings the
/// enter back while it is loaded. The policies are scoped to copies of cat, grep and dash in the test's temp dir.</summary>
[Collection("kernel")]
public class ExitOnlyMatchingTests
{
    private static bool AtExit(JsonElement body) =>
        body.GetProperty("securityagent").TryGetProperty("matched_at_exit", out var x) && x.GetBoolean();

    private static string Resolved(JsonElement body) => body.GetProperty("args")[0].GetProperty("string_arg").GetString()!;

    [RequiresKernel(Mechanism.Tracepoint)]
    public void An_open_hook_that_only_posts_is_matched_at_the_exit_alone_and_catches_every_spelling_of_the_secret_and_failed_opens()
    {
        using var s = new SecretScene("xonly");
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = s.OpenPolicy("xonly-post", "monitor", null, s.Cat, s.Grep) },
            "--export-extensions");
        Assert.Contains("Policy xonly-post loaded", agent.Stderr);
        foreach (var (what, file, args, cwd, passed, resolved) in s.Spellings(bindMount: false))
        {
            int from = agent.Events.All.Count;
            var r = Run.Wait(file, args, cwd);
            Assert.True(r.Code == 0 && r.Stdout.Contains("TOP-SECRET"), $"{what}: a hook that only posts must not stop the read: {r.Code} {r.Stdout} {r.Stderr}");
            var body = PathEvasionTests.WaitFor(agent, from, "xonly-post", passed, what);
            Assert.Equal(resolved, Resolved(body));
            Assert.True(AtExit(body), $"{what}: matched at the exit alone");
        }
        // A failed open has no file: the name passed, resolved as the enter would, is matched and reported as passed.
        foreach (var (args, cwd, passed) in new (string[], string?, string)[]
                 { ([s.SecretDir + "/missing.txt"], null, s.SecretDir + "/missing.txt"), (["missing.txt"], s.SecretDir, "missing.txt"),
                   ([s.Dir.Path + "//secret/./missing.txt"], null, s.Dir.Path + "//secret/./missing.txt") })
        {
            int from = agent.Events.All.Count;
            var r = Run.Wait(s.Cat, args, cwd);
            Assert.True(r.Code == 1 && r.Stderr.Contains("No such file"), $"a failed open of {passed}: {r.Code} {r.Stderr}");
            var body = PathEvasionTests.WaitFor(agent, from, "xonly-post", passed, "a failed open");
            Assert.Equal(s.SecretDir + "/missing.txt", Resolved(body));
        }
        // Files outside the secret directory, by the same readers and the same tricks: no event.
        int after = agent.Events.All.Count;
        Assert.Equal((0, "plain\n"), Run.Wait(s.Cat, ["../plain.txt"], s.SecretDir) is var a ? (a.Code, a.Stdout) : default);
        Assert.Equal(0, Run.Wait(s.Cat, [s.Dir.Path + "/secret/../plain.txt"]).Code);
        Assert.Equal(0, Run.Wait(s.Cat, [s.Dir.Path + "/plainlink"]).Code);
        Assert.Equal(0, Run.Wait(s.Sh, ["-c", $"exec 3< {s.Dir.File("plain.txt")}; exec {s.Cat} /proc/self/fd/3"]).Code);
        Assert.Equal(1, Run.Wait(s.Cat, [s.Dir.File("missing.txt")]).Code);
        // A marker open the hook matches, after them: once its event is in, theirs would have been too.
        Assert.Equal(0, Run.Wait(s.Cat, [s.Secret]).Code);
        PathEvasionTests.WaitFor(agent, after, "xonly-post", s.Secret, "the marker open");
        Assert.DoesNotContain(agent.Events.All.Skip(after), e => PathEvasionTests.Body(e, "xonly-post") is { } b && Resolved(b) != s.Secret);
    }

    /// <summary>A Postfix on the path whose values end in "/name" rejects an open by the opened file's own name before any
    /// path is built; every name of the file still reaches the full match, a bind mount of the file itself included.</summary>
    [RequiresKernel(Mechanism.Tracepoint)]
    public void A_postfix_hook_matched_at_the_exit_alone_catches_every_name_of_the_file_and_not_files_sharing_only_its_name()
    {
        using var dir = new TempDir();
        var cat = dir.CopyBinary("/usr/bin/cat", "xonly-key-reader");
        Directory.CreateDirectory(dir.File("keys"));
        Directory.CreateDirectory(dir.File("other"));
        foreach (var f in new[] { "keys/id_test", "keys/id_test.pub", "other/id_test", "plain" })
            File.WriteAllText(dir.File(f), f == "plain" ? "" : "KEY\n");
        File.CreateSymbolicLink(dir.File("link"), dir.File("keys/id_test"));
        var policy = TestPolicies.SyscallOpenat("xonly-postfix", cat, "Postfix", "/keys/id_test");
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy }, "--export-extensions");
        Assert.Contains("Policy xonly-postfix loaded", agent.Stderr);
        var key = dir.File("keys/id_test");
        foreach (var (what, args, cwd, passed) in new (string, string[], string?, string)[]
                 { ("the path", [key], null, key), ("a relative name", ["id_test"], dir.File("keys"), "id_test"), ("a symlink", [dir.File("link")], null, dir.File("link")) })
        {
            int from = agent.Events.All.Count;
            Assert.Equal((0, "KEY\n"), Run.Wait(cat, args, cwd) is var r ? (r.Code, r.Stdout) : default);
            var body = PathEvasionTests.WaitFor(agent, from, "xonly-postfix", passed, what);
            Assert.Equal((key, true), (Resolved(body), AtExit(body)));
        }
        // A bind mount of the file itself: the file is the root of that mount, and its path is the one through the
        // filesystem's own mount (on 6.1 found through the superblock's older list of mounts).
        int fromBind = agent.Events.All.Count;
        var bind = Run.Wait("/usr/bin/unshare", ["-m", "/bin/sh", "-c", $"mount --bind {key} {dir.File("plain")} && exec {cat} {dir.File("plain")}"]);
        Assert.Equal((0, "KEY\n"), (bind.Code, bind.Stdout));
        Assert.Equal(key, Resolved(PathEvasionTests.WaitFor(agent, fromBind, "xonly-postfix", dir.File("plain"), "a bind mount of the file")));
        int after = agent.Events.All.Count;
        Assert.Equal(0, Run.Wait(cat, [dir.File("other/id_test")]).Code);
        Assert.Equal(0, Run.Wait(cat, ["id_test.pub"], dir.File("keys")).Code);
        Assert.Equal(0, Run.Wait(cat, [key]).Code); // the marker: once its event is in, theirs would have been too
        PathEvasionTests.WaitFor(agent, after, "xonly-postfix", key, "the marker open");
        Assert.DoesNotContain(agent.Events.All.Skip(after), e => PathEvasionTests.Body(e, "xonly-postfix") is { } b && Resolved(b) != key);
    }

    [RequiresKernel(Mechanism.Tracepoint)]
    public void A_killing_hook_added_at_the_same_open_brings_the_enter_back_and_kills_and_once_removed_the_open_is_matched_at_the_exit_alone_again()
    {
        using var s = new SecretScene("xonly");
        var killCat = s.Dir.CopyBinary("/usr/bin/cat", "xonly-killed-cat");
        using var agent = new AgentProcess(new Dictionary<string, string> { ["post.yaml"] = s.OpenPolicy("xonly-watch", "monitor", null, s.Cat) },
            "--export-extensions");
        var policies = agent.Dir.File("policies");

        JsonElement Watched(string what)
        {
            int from = agent.Events.All.Count;
            Assert.Equal(0, Run.Wait(s.Cat, [s.Secret]).Code);
            return PathEvasionTests.WaitFor(agent, from, "xonly-watch", s.Secret, what);
        }

        Assert.True(AtExit(Watched("only the posting hook")), "matched at the exit alone");

        File.WriteAllText(Path.Combine(policies, "kill.yaml"), s.OpenPolicy("xonly-kill", "enforce", "Sigkill", killCat));
        Assert.True(agent.WaitForLog("Policy xonly-kill loaded", 30_000), agent.Stderr);
        Assert.False(AtExit(Watched("beside a killing hook")), "matched at enter again");
        int before = agent.Events.All.Count;
        var killed = Run.Wait(killCat, [s.Secret]);
        Assert.True(killed.Code == 137 && !killed.Stdout.Contains("TOP-SECRET"), $"expected SIGKILL before any output, got {killed.Code} '{killed.Stdout}'; "
            + $"events since: {string.Join("; ", agent.Events.All.Skip(before).Select(e => e.ToString()))}; the agent's log ends:\n{agent.Stderr[Math.Max(0, agent.Stderr.Length - 2000)..]}");
        Assert.True(PathEvasionTests.WaitFor(agent, before, "xonly-kill", s.Secret, "the killed read").GetProperty("securityagent").GetProperty("enforced").GetBoolean());

        File.Delete(Path.Combine(policies, "kill.yaml"));
        Assert.True(agent.WaitForLog("Policy xonly-kill unloaded", 30_000), agent.Stderr);
        Assert.True(AtExit(Watched("the killing hook removed")), "matched at the exit alone again");
        Assert.Equal((0, "TOP-SECRET\n"), Run.Wait(killCat, [s.Secret]) is var r ? (r.Code, r.Stdout) : default);
    }

    [RequiresKernel(Mechanism.Tracepoint)]
    public void Without_the_exit_only_program_a_hook_that_only_posts_is_matched_at_enter_and_still_catches_the_secret()
    {
        using var s = new SecretScene("xonly");
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = s.OpenPolicy("xonly-off", "monitor", null, s.Cat) },
            "--export-extensions", "--debug-no-exit-only");
        Assert.True(agent.WaitForLog("matched at enter and exit, not at the exit alone", 30_000), agent.Stderr);
        int from = agent.Events.All.Count;
        Assert.Equal(0, Run.Wait(s.Cat, ["key.txt"], s.SecretDir).Code);
        var body = PathEvasionTests.WaitFor(agent, from, "xonly-off", "key.txt", "a relative open");
        Assert.Equal(s.Secret, Resolved(body));
        Assert.False(AtExit(body));
        from = agent.Events.All.Count;
        Assert.Equal(0, Run.Wait(s.Cat, [s.Dir.File("link")]).Code);
        Assert.True(AtExit(PathEvasionTests.WaitFor(agent, from, "xonly-off", s.Dir.File("link"), "a symlink")), "the exit's re-check");
    }
    /// <summary>The quick answer keeps its last lookup of a top directory per CPU: a top directory renamed into the
    /// watched name must not be answered from it. The test's own directories under / (only a top directory's name
    /// decides the quick answer), its opens made by one shell pinned to one CPU so that they meet the same last lookup.</summary>
    [RequiresKernel(Mechanism.Tracepoint)]
    public void A_top_directory_renamed_into_the_watched_name_is_caught_though_its_old_name_was_just_let_through()
    {
        using var s = new SecretScene("xonly");
        string tag = Path.GetFileName(s.Dir.Path).ToLowerInvariant().Replace('.', '-');
        string before = $"/sa-quick-{tag}-before", watched = $"/sa-quick-{tag}-watched";
        var policy = s.OpenPolicy("xonly-top", "monitor", null, s.Sh).Replace($"[\"{s.SecretDir}/\"]", $"[\"{watched}/\"]");
        Assert.Contains(watched, policy);
        try
        {
            Directory.CreateDirectory(before);
            File.WriteAllText(before + "/f.txt", "moved\n");
            using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy }, "--export-extensions");
            Assert.Contains("Policy xonly-top loaded", agent.Stderr);
            // One process, so that nothing else it opens comes between: the old name twice (the second is answered from
            // the first's lookup), the rename, and the new name.
            int from = agent.Events.All.Count;
            var r = Run.Wait("/usr/bin/taskset", ["-c", "0", s.Sh, "-c",
                $"exec 3< {before}/f.txt; exec 4< {before}/f.txt; /bin/mv {before} {watched} && exec 5< {watched}/f.txt"]);
            Assert.True(r.Code == 0 && Directory.Exists(watched), $"{r.Code} {r.Stderr}");
            var body = PathEvasionTests.WaitFor(agent, from, "xonly-top", watched + "/f.txt", "an open under the renamed top directory");
            Assert.True(AtExit(body), $"matched at the exit alone; the agent's log:\n{agent.Stderr}");
            Assert.DoesNotContain(agent.Events.All.Skip(from), e => PathEvasionTests.Body(e, "xonly-top") is { } b && Resolved(b) != watched + "/f.txt");
        }
        finally
        {
            foreach (var d in new[] { before, watched })
                if (Directory.Exists(d))
                    Directory.Delete(d, true);
        }
    }
}
