using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using SecurityAgent.Events;
using SecurityAgent.Export;
using SecurityAgent.Processes;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Unit;

public class RotationTests
{
    private static ProcessInfo Proc(int i) => new()
    {
        ExecId = ExecId.Make("n", (ulong)i, i), Pid = i, StartTime = 1, Ktime = 1, Binary = "/usr/bin/rotation-test",
        Args = ["x", $"event-{i:D6}", new string('a', 200)], Cwd = "/", Creds = new Credentials(0, 0, 0, 0), Origin = ProcessOrigin.Exec,
    };

    [Fact]
    public async Task Twenty_thousand_events_with_a_one_megabyte_rotation_size_are_all_in_the_files_exactly_once()
    {
        using var dir = new TempDir();
        var path = dir.File("events.json");
        var stream = new ExportFile(path, 1 << 20, maxBackups: 100);
        var exporter = new JsonLinesExporter(stream, new JsonEventFormatter("n", new BootClock(0)), NullLogger.Instance);
        for (int i = 0; i < 20_000; i++)
        {
            exporter.Export(new ProcessExecEvent(1, Proc(i), null));
            if (i % 100 == 0) exporter.Flush();
        }
        await exporter.DisposeAsync();

        var files = Directory.GetFiles(dir.Path, "events.json*");
        Assert.True(files.Length > 5, $"{files.Length} files: expected several rotations");
        Assert.All(files, f => Assert.True(new FileInfo(f).Length <= 1 << 20, $"{f} is {new FileInfo(f).Length} bytes"));
        var lines = files.SelectMany(File.ReadLines).ToList();
        Assert.Equal(20_000, lines.Count);
        Assert.Equal(20_000, lines.Select(l => l[l.IndexOf("event-")..(l.IndexOf("event-") + 12)]).Distinct().Count());
        foreach (var l in lines.Take(50)) JsonFormatTests.AssertValid(l);
    }

    [Fact]
    public async Task A_reader_following_the_file_by_name_across_rotations_loses_no_line()
    {
        using var dir = new TempDir();
        var path = dir.File("events.json");
        var exporter = new JsonLinesExporter(new ExportFile(path, 64 * 1024, maxBackups: 2), new JsonEventFormatter("n", new BootClock(0)), NullLogger.Instance);
        var seen = new List<string>();
        var follower = new NameFollower(path);
        for (int i = 0; i < 5_000; i++)
        {
            exporter.Export(new ProcessExecEvent(1, Proc(i), null));
            exporter.Flush();
            if (i % 7 == 0) seen.AddRange(follower.ReadAvailable()); // the reader lags behind the writer
        }
        await exporter.DisposeAsync();
        seen.AddRange(follower.ReadAvailable());
        Assert.Equal(5_000, seen.Count);
        Assert.Equal(Enumerable.Range(0, 5_000).Select(i => $"event-{i:D6}"), seen.Select(l => l[l.IndexOf("event-")..(l.IndexOf("event-") + 12)]));
        Assert.Equal(2, Directory.GetFiles(dir.Path).Count(f => Path.GetFileName(f).StartsWith("events.json."))); // older backups deleted
    }

    /// <summary>Follows a file by name like `tail -F`: keeps the open handle until it is drained, then reopens the name.</summary>
    private sealed class NameFollower(string path)
    {
        private FileStream? _fs;
        private string _partial = "";

        public List<string> ReadAvailable()
        {
            var lines = new List<string>();
            while (true)
            {
                _fs ??= new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                var buf = new byte[1 << 16];
                int n;
                var sb = new StringBuilder(_partial);
                while ((n = _fs.Read(buf)) > 0) sb.Append(Encoding.UTF8.GetString(buf, 0, n));
                var parts = sb.ToString().Split('\n');
                _partial = parts[^1];
                lines.AddRange(parts[..^1]);
                // Rotated away? Our handle's name (its /proc link) is no longer the file's name: it was drained
                // above, so move on to the new file, as `tail -F` does.
                var name = new FileInfo($"/proc/self/fd/{_fs.SafeFileHandle.DangerousGetHandle()}").LinkTarget;
                if (name != path && File.Exists(path))
                {
                    _fs.Dispose();
                    _fs = null;
                    continue;
                }
                return lines;
            }
        }
    }
}
