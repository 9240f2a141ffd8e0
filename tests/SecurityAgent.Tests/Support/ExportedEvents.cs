using System.Text.Json;

namespace SecurityAgent.Tests.Support;

/// <summary>Tails a JSON-lines export file and waits for events a test is looking for.</summary>
public sealed class ExportedEvents(string path)
{
    private long _offset;
    private readonly List<JsonElement> _events = [];
    private string _partial = "";

    public string Path => path;
    public IReadOnlyList<JsonElement> All { get { Read(); return _events; } }
    public List<string> RawLines { get; } = [];

    public void Read()
    {
        if (!File.Exists(path)) return;
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        fs.Seek(_offset, SeekOrigin.Begin);
        using var sr = new StreamReader(fs);
        var text = _partial + sr.ReadToEnd();
        _offset = fs.Position;
        var lines = text.Split('\n');
        _partial = lines[^1];
        foreach (var line in lines[..^1])
        {
            RawLines.Add(line);
            _events.Add(JsonDocument.Parse(line).RootElement.Clone());
        }
    }

    public List<JsonElement> Where(Func<JsonElement, bool> predicate) => All.Where(predicate).ToList();

    public JsonElement WaitFor(Func<JsonElement, bool> predicate, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        while (true)
        {
            var hit = All.FirstOrDefault(predicate);
            if (hit.ValueKind != JsonValueKind.Undefined)
                return hit;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"no event {what} in {path} after {(timeout ?? TimeSpan.FromSeconds(10)).TotalSeconds}s ({_events.Count} events read)");
            Thread.Sleep(50);
        }
    }

    public static bool IsExecOf(JsonElement e, string marker) =>
        e.TryGetProperty("process_exec", out var x) && x.GetProperty("process").GetProperty("arguments").GetString()!.Contains(marker);

    public static bool IsExitOf(JsonElement e, string marker) =>
        e.TryGetProperty("process_exit", out var x) && x.GetProperty("process").GetProperty("arguments").GetString()!.Contains(marker);
}
