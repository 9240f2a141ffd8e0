using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace SecurityAgent.Export;

/// <summary>--stats-file: the agent's counters as one JSON object, replaced atomically, private like the export file.
/// Written only when a counter changed; a failure (full disk, a removed directory) is counted and logged at a bounded
/// rate, and never stops the agent. Control loop only.</summary>
public sealed class StatsFile
{
    private readonly string _path;
    private readonly int? _group;
    private readonly FaultLog _faults;
    private byte[] _last = [];

    public long Failures => _faults.Total;

    /// <summary>Refuses an unsafe directory now, with the reason (see <see cref="PrivateFiles.CheckDirectory"/>).</summary>
    public StatsFile(string path, int? group, ILogger log)
    {
        (_path, _group) = (Path.GetFullPath(path), group);
        PrivateFiles.CheckDirectory(Path.GetDirectoryName(_path)!);
        _faults = new FaultLog(log, "stats file write " + _path);
    }

    public void Write(Func<object> counters, bool force = false)
    {
        try
        {
            var json = JsonSerializer.SerializeToUtf8Bytes(counters());
            if (!force && json.AsSpan().SequenceEqual(_last)) return;
            PrivateFiles.Replace(_path, json, _group);
            _last = json;
            _faults.Succeeded();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _faults.Failed(1, e.Message);
        }
    }
}
