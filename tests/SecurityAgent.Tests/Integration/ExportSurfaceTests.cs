using System.Text.Json;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>The agent's own files as an attack surface and a fault domain: private export files no one else can read
/// or redirect, and faults (full disk, a deleted file) that cost exactly the events they cost and nothing more.</summary>
[Collection("kernel")]
public class ExportSurfaceTests
{
    private static int RunAs(string user, params string[] command) => Run.Wait("runuser", ["-u", user, "--", .. command]).Code;

    private static void Chmod(string path, string mode) => Assert.Equal(0, Run.Wait("chmod", [mode, path]).Code);

    /// <summary>A small tmpfs of its own, unmounted (with what is in it) on dispose.</summary>
    private sealed class SmallFs : IDisposable
    {
        public string Path { get; }
        public SmallFs(string dir, string size)
        {
            Path = Directory.CreateDirectory(dir).FullName;
            Assert.Equal(0, Run.Wait("mount", ["-t", "tmpfs", "-o", $"size={size},mode=0700", "tmpfs", Path]).Code);
        }
        /// <summary>Fills the file system but for <paramref name="spare"/> bytes, with a file that <see cref="Free"/> removes.</summary>
        public void FillBut(long spare)
        {
            using var f = new FileStream(System.IO.Path.Combine(Path, "filler"), FileMode.Create);
            var block = new byte[4096];
            try { while (true) f.Write(block); } catch (IOException) { }
            f.SetLength(Math.Max(0, f.Length - spare));
        }
        public void Free() => File.Delete(System.IO.Path.Combine(Path, "filler"));
        public void Dispose() => Run.Wait("umount", ["-l", Path]);
    }

    [Fact]
    public void Events_are_readable_by_root_only_and_no_one_else_can_redirect_them_through_a_symlink()
    {
        using var dir = new TempDir();
        Chmod(dir.Path, "0755"); // others may enter, as in /var/log
        var export = dir.File("events.json");
        using (var agent = new AgentProcess(export, new Dictionary<string, string>()))
        {
            var tool = dir.CopyBinary("/usr/bin/true", "private-tool");
            Run.Wait(tool, ["--password=hunter2"]);
            agent.Events.WaitFor(e => ExportedEvents.IsExecOf(e, "hunter2"), "exec with a secret argument");
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(export));
            Assert.NotEqual(0, RunAs("nobody", "cat", export));
            Assert.NotEqual(0, RunAs("nobody", "ln", "-s", "/etc/shadow", dir.File("planted.json")));
        }

        // A symlink at the export path (planted while the directory was open to others): refused, its target untouched.
        var victim = dir.File("root-only");
        File.WriteAllText(victim, "precious\n");
        File.Delete(export);
        File.CreateSymbolicLink(export, victim);
        var refused = Assert.ThrowsAny<Exception>(() => new AgentProcess(export, new Dictionary<string, string>()));
        Assert.Contains("symbolic link", refused.Message);
        Assert.Equal("precious\n", File.ReadAllText(victim));

        // A directory others can write: refused, whatever is (not yet) in it.
        var open = Directory.CreateDirectory(dir.File("open")).FullName;
        Chmod(open, "1777");
        var unsafeDir = Assert.ThrowsAny<Exception>(() => new AgentProcess(Path.Combine(open, "events.json"), new Dictionary<string, string>()));
        Assert.Contains("writable by others", unsafeDir.Message);
        Assert.False(File.Exists(Path.Combine(open, "events.json")));
    }

    [Fact]
    public void A_full_disk_is_logged_a_handful_of_times_costs_exactly_the_events_that_did_not_fit_and_leaves_no_partial_line()
    {
        using var dir = new TempDir();
        using var fs = new SmallFs(dir.File("fs"), "256k");
        fs.FillBut(48 * 1024);
        var export = Path.Combine(fs.Path, "events.json");
        var stats = dir.File("stats.json");
        var tool = dir.CopyBinary("/usr/bin/true", "disk-tool");
        string stderr;
        using (var agent = new AgentProcess(export, new Dictionary<string, string>(), "--stats-file", stats))
        {
            for (int i = 0; i < 300; i++) Run.Wait(tool, [$"fill-{i}"]);
            Thread.Sleep(1000);
            fs.Free();
            for (int i = 0; i < 5; i++) Run.Wait(tool, [$"after-{i}"]);
            agent.Events.WaitFor(e => ExportedEvents.IsExitOf(e, "after-4"), "events after the disk has room again", TimeSpan.FromSeconds(10));
            Assert.Equal(0, agent.Terminate());
            stderr = agent.Stderr;
        }

        var lines = File.ReadAllLines(export);
        Assert.All(lines, l => JsonDocument.Parse(l)); // no partial line
        var s = JsonDocument.Parse(File.ReadAllText(stats)).RootElement;
        long written = s.GetProperty("export_written").GetInt64(), failed = s.GetProperty("export_failed").GetInt64();
        Assert.True(failed > 100, $"only {failed} events lost: the disk did not fill up");
        Assert.Equal(lines.Length, written);
        Assert.Equal(s.GetProperty("exported").GetInt64(), written + failed); // every event is either in the file or counted lost
        var logged = stderr.Split('\n').Count(l => l.Contains("JSON export write failed"));
        Console.WriteLine($"full disk: {failed} events lost and counted, {written} written, {logged} log lines");
        Assert.InRange(logged, 1, 5);
        Assert.Contains("JSON export write works again", stderr);
    }

    [Fact]
    public void Deleting_the_export_file_mid_stream_loses_nothing_after_the_reopen()
    {
        using var dir = new TempDir();
        var export = dir.File("events.json");
        var tool = dir.CopyBinary("/usr/bin/true", "delete-tool");
        using var agent = new AgentProcess(export, new Dictionary<string, string>());
        Run.Wait(tool, ["before-delete"]);
        agent.Events.WaitFor(e => ExportedEvents.IsExecOf(e, "before-delete"), "exec before the delete");
        File.Delete(export);
        for (int i = 0; i < 5; i++) Run.Wait(tool, [$"after-delete-{i}"]);
        var reader = new ExportedEvents(export);
        for (int i = 0; i < 5; i++)
        {
            reader.WaitFor(e => ExportedEvents.IsExecOf(e, $"after-delete-{i}"), $"exec {i} after the delete, in the new file");
            reader.WaitFor(e => ExportedEvents.IsExitOf(e, $"after-delete-{i}"), $"exit {i} after the delete, in the new file");
        }
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(export));
    }

    [Fact]
    public void A_full_file_system_under_the_stats_file_is_not_fatal()
    {
        using var dir = new TempDir();
        using var fs = new SmallFs(dir.File("fs"), "64k");
        fs.FillBut(0);
        var tool = dir.CopyBinary("/usr/bin/true", "stats-tool");
        using var agent = new AgentProcess(null, new Dictionary<string, string>(), "--stats-file", Path.Combine(fs.Path, "stats.json"));
        for (int i = 0; i < 5; i++)
        {
            Run.Wait(tool, [$"stats-full-{i}"]);
            Thread.Sleep(600); // a stats write (and its failure) between execs
        }
        agent.Events.WaitFor(e => ExportedEvents.IsExitOf(e, "stats-full-4"), "events while the stats file cannot be written");
        Assert.Equal(0, agent.Terminate());
        Assert.DoesNotContain("Agent failed", agent.Stderr);
        Assert.InRange(agent.Stderr.Split('\n').Count(l => l.Contains("stats file write") && l.Contains("failed")), 1, 3);
    }
}
