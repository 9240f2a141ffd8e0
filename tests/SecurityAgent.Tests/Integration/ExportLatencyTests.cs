using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using SecurityAgent.Tests.Support;
using Xunit.Abstractions;

namespace SecurityAgent.Tests.Integration;

/// <summary>Latency stays bounded when the kernel does not wake the reader for each record. Measured as the issue
/// states it, from the exec in the kernel (the event's own time: the kernel's CLOCK_BOOTTIME stamp, which the agent
/// turns into wall-clock time) to the moment its line is in the export file (the file's mtime after the write that
/// carried it), so neither the test's spawn of the process nor the test's reading of the file is counted. (The shared
/// agent's file holds every event of the machine since it started: parsing that backlog on the first poll took the
/// earlier version of this test ~100 µs a line on a loaded host, 21,267 lines in 2.1 s, inside its stopwatch.)</summary>
[Collection("kernel")]
public class ExportLatencyTests(SharedAgent shared, ITestOutputHelper output)
{
    /// <summary>Follows the end of an export file: only what is written after it was made, line by line, polled often.</summary>
    private sealed class Tail(string path)
    {
        private long _offset = File.Exists(path) ? new FileInfo(path).Length : 0;
        private readonly StringBuilder _partial = new();

        /// <summary>Waits for a complete line containing <paramref name="marker"/> and <paramref name="type"/>; returns it
        /// with the moment it was in the file: the file's mtime when nothing was written after it (else when it was read).</summary>
        public (JsonElement Event, DateTime InFile) WaitFor(string type, string marker, TimeSpan timeout)
        {
            var deadline = DateTime.UtcNow + timeout;
            while (DateTime.UtcNow < deadline)
            {
                using (var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
                {
                    fs.Seek(_offset, SeekOrigin.Begin);
                    using var sr = new StreamReader(fs);
                    _partial.Append(sr.ReadToEnd());
                    _offset = fs.Position;
                    var seen = DateTime.UtcNow;
                    var text = _partial.ToString();
                    int end = text.LastIndexOf('\n');
                    _partial.Clear().Append(text.AsSpan(end + 1));
                    foreach (var line in text[..Math.Max(0, end)].Split('\n'))
                    {
                        if (!line.Contains(marker) || !line.Contains(type)) continue;
                        var e = JsonDocument.Parse(line).RootElement.Clone();
                        if (!e.TryGetProperty(type, out _)) continue;
                        var mtime = File.GetLastWriteTimeUtc(path);
                        // A later write moves the mtime past this line's: the earlier of the two bounds the moment.
                        return (e, mtime < seen ? mtime : seen);
                    }
                }
                Thread.Sleep(5);
            }
            throw new TimeoutException($"no {type} event with {marker} in {path} after {timeout.TotalSeconds} s");
        }
    }

    /// <summary>The event's "time" (RFC 3339 with up to 9 fractional digits, UTC) as a DateTime (100 ns ticks).</summary>
    private static DateTime EventTime(JsonElement e)
    {
        var text = e.GetProperty("time").GetString()!;
        var dot = text.IndexOf('.');
        var whole = DateTime.ParseExact(dot < 0 ? text : text[..dot] + "Z", "yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture,
            DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal);
        if (dot < 0) return whole;
        var digits = text[(dot + 1)..^1].PadRight(9, '0');
        return whole.AddTicks(long.Parse(digits, CultureInfo.InvariantCulture) / 100);
    }

    [Fact]
    public void At_one_exec_per_second_each_exec_reaches_the_export_file_within_a_second_of_the_exec()
    {
        var agent = shared.Agent;
        using var dir = new TempDir();
        var tool = dir.CopyBinary("/usr/bin/true", "latency-tool");
        var tail = new Tail(agent.Events.Path);
        var report = new List<string>();
        for (int i = 0; i < 5; i++)
        {
            var marker = $"latency-{Guid.NewGuid():N}";
            var started = DateTime.UtcNow;
            var spawn = Stopwatch.StartNew();
            Run.Wait(tool, [marker]);
            spawn.Stop();
            var (exec, inFile) = tail.WaitFor("process_exec", marker, TimeSpan.FromSeconds(5));
            var seen = DateTime.UtcNow;
            var execTime = EventTime(exec);
            var latency = inFile - execTime;
            report.Add($"exec {i}: exec → in the file {latency.TotalMilliseconds:F1} ms; test side: spawn+wait {spawn.ElapsedMilliseconds} ms, " +
                $"test start → exec {(execTime - started).TotalMilliseconds:F1} ms, in the file → read {(seen - inFile).TotalMilliseconds:F1} ms");
            output.WriteLine(report[^1]);
            Assert.True(execTime > started.AddSeconds(-1) && execTime < seen.AddSeconds(1), $"exec {i}: event time {execTime:o} is not this exec's ({started:o}..{seen:o})");
            Assert.True(latency < TimeSpan.FromSeconds(1), $"exec {i} took {latency.TotalMilliseconds:F0} ms from the exec to the export file:\n" + string.Join("\n", report));
            var rest = TimeSpan.FromSeconds(1) - (DateTime.UtcNow - started);
            if (rest > TimeSpan.Zero) Thread.Sleep(rest);
        }
    }
}
