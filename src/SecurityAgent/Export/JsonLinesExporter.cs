using System.Buffers;
using System.Runtime.CompilerServices;
using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace SecurityAgent.Export;

/// <summary>JSON lines to stdout or the export file. Lines are rendered straight into one reused buffer and written with one
/// write per batch (the pipeline flushes after each ring-buffer drain). With a compact style (a person watching a terminal)
/// each event is written as one readable line instead (<see cref="Compact.CompactRenderer"/>). A failed write loses the lines that did not
/// land, counted exactly and logged at a bounded rate; the next batch tries again.</summary>
public sealed class JsonLinesExporter : IEventExporter
{
    private const int FlushAt = 256 * 1024;
    private readonly ILineSink _sink;
    private readonly ArrayBufferWriter<byte> _batch = new(FlushAt + 16 * 1024);
    private readonly Utf8JsonWriter _json;
    private readonly JsonEventFormatter _formatter;
    private readonly FaultLog _faults;
    private readonly List<FieldFilter> _fieldFilters;
    private readonly Compact.CompactStyle? _compact;
    private int _lines;
    private long _written, _failed;

    /// <summary>Events in the sink.</summary>
    public long Written => Volatile.Read(ref _written);
    /// <summary>Events lost to failed writes (not write attempts).</summary>
    public long Failed => Volatile.Read(ref _failed);

    public JsonLinesExporter(ILineSink sink, JsonEventFormatter formatter, ILogger log, List<FieldFilter>? fieldFilters = null, Compact.CompactStyle? compact = null)
    {
        _compact = compact;
        _fieldFilters = fieldFilters ?? [];
        _sink = sink;
        _json = new Utf8JsonWriter(_batch, new JsonWriterOptions { Indented = false, SkipValidation = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        _formatter = formatter;
        _faults = new FaultLog(log, "JSON export write");
    }

    /// <summary>"-" is stdout; anything else the export file (see <see cref="ExportFile"/>), rotated when
    /// <paramref name="maxBytes"/> is set.</summary>
    public static ILineSink OpenTarget(string path, long maxBytes = 0, int maxBackups = 5, int? group = null) =>
        path == "-" ? new StreamSink(Console.OpenStandardOutput()) : new ExportFile(path, maxBytes, maxBackups, group);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Export(AgentEvent e)
    {
        if (_compact is { } style)
        {
            if (!Compact.CompactRenderer.Render(Json(e), _batch, style)) return;
        }
        else
        {
            if (_fieldFilters.Count > 0) _batch.Write(Json(e));
            else _formatter.RenderInto(e, _batch);
            _batch.Write("\n"u8);
        }
        _lines++;
        if (_batch.WrittenCount >= FlushAt)
            Flush();
    }

    private ReadOnlySpan<byte> Json(AgentEvent e) => _fieldFilters.Count > 0
        ? System.Text.Encoding.UTF8.GetBytes(FieldFilter.Apply(_fieldFilters, System.Text.Encoding.UTF8.GetString(_formatter.Render(e))))
        : _formatter.Render(e);

    /// <summary>The rate limiter's notice: how many events it dropped in the last window (a line, not an event).</summary>
    public void WriteRateLimitInfo(long dropped)
    {
        Flush();
        _formatter.Released(_batch);
        _json.Reset(_batch);
        _formatter.WriteRateLimitInfo(_json, dropped, (ulong)Interop.Libc.ClockNs(Interop.Libc.CLOCK_BOOTTIME));
        _json.Flush();
        if (_compact is { } style)
        {
            var line = _batch.WrittenSpan.ToArray();
            _batch.ResetWrittenCount();
            if (!Compact.CompactRenderer.Render(line, _batch, style)) _batch.Write(line);
        }
        _batch.Write("\n"u8);
        _sink.Write(_batch.WrittenSpan, out _);
        _batch.ResetWrittenCount();
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Flush()
    {
        if (_lines == 0) return;
        var batch = _batch.WrittenSpan;
        long landed = _sink.Write(batch, out var error);
        int ok = landed == batch.Length ? _lines : batch[..(int)landed].Count((byte)'\n');
        Volatile.Write(ref _written, _written + ok);
        if (error is not null)
        {
            Volatile.Write(ref _failed, _failed + _lines - ok);
            _faults.Failed(_lines - ok, error);
        }
        else
            _faults.Succeeded();
        _formatter.Released(_batch);
        _batch.ResetWrittenCount();
        _lines = 0;
    }

    public async ValueTask DisposeAsync()
    {
        Flush();
        await _json.DisposeAsync();
        _sink.Dispose();
    }
}
