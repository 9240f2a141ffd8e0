using System.Buffers;
using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace SecurityAgent.Export;

/// <summary>JSON lines to stdout or a file. A write failure (full disk, revoked path) is logged and
/// counted, and the agent keeps running.</summary>
public sealed partial class JsonLinesExporter : IEventExporter
{
    private readonly Stream _stream;
    private readonly System.Buffers.ArrayBufferWriter<byte> _line = new(4096);
    private readonly Utf8JsonWriter _json;
    private readonly JsonEventFormatter _formatter;
    private readonly ILogger _log;
    private static readonly byte[] NewLine = "\n"u8.ToArray();

    public long Written { get; private set; }
    public long Failed { get; private set; }

    private readonly List<FieldFilter> _fieldFilters;

    public JsonLinesExporter(Stream stream, JsonEventFormatter formatter, ILogger log, List<FieldFilter>? fieldFilters = null)
    {
        _fieldFilters = fieldFilters ?? [];
        _stream = stream is RotatingFileStream ? stream : new BufferedStream(stream, 64 * 1024);
        _json = new Utf8JsonWriter(_line, new JsonWriterOptions { Indented = false, SkipValidation = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        _formatter = formatter;
        _log = log;
    }

    /// <summary>"-" is stdout; anything else a file opened for append (created if missing), rotated when
    /// <paramref name="maxBytes"/> is set.</summary>
    public static Stream OpenTarget(string path, long maxBytes = 0, int maxBackups = 5) =>
        path == "-" ? Console.OpenStandardOutput()
        : maxBytes > 0 ? new RotatingFileStream(path, maxBytes, maxBackups)
        : new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete, 1, FileOptions.None);

    public void Export(AgentEvent e)
    {
        try
        {
            _line.Write(_formatter.Render(e));
            WriteLine();
            Written++;
        }
        catch (IOException ex)
        {
            if (Failed++ % 1000 == 0)
                LogWriteFailed(_log, Failed, ex.Message);
        }
        finally
        {
            _json.Reset();
            _line.ResetWrittenCount();
        }
    }

    private void WriteLine()
    {
        if (_fieldFilters.Count > 0)
        {
            var filtered = System.Text.Encoding.UTF8.GetBytes(FieldFilter.Apply(_fieldFilters, System.Text.Encoding.UTF8.GetString(_line.WrittenSpan)));
            _line.ResetWrittenCount();
            _line.Write(filtered);
        }
        _line.Write(NewLine);
        _stream.Write(_line.WrittenSpan); // one whole line per write: rotation never splits a line
    }

    /// <summary>The rate limiter's notice: how many events it dropped in the last window.</summary>
    public void WriteRateLimitInfo(long dropped)
    {
        try
        {
            _formatter.WriteRateLimitInfo(_json, dropped, (ulong)Interop.Libc.ClockNs(Interop.Libc.CLOCK_BOOTTIME));
            _json.Flush();
            _line.Write(NewLine);
            _stream.Write(_line.WrittenSpan);
        }
        catch (IOException) { Failed++; }
        finally
        {
            _json.Reset();
            _line.ResetWrittenCount();
        }
    }

    public void Flush()
    {
        try { _stream.Flush(); }
        catch (IOException ex)
        {
            Failed++;
            LogWriteFailed(_log, Failed, ex.Message);
        }
    }

    public async ValueTask DisposeAsync()
    {
        Flush();
        await _json.DisposeAsync();
        try
        {
            await _stream.DisposeAsync(); // flushes what is buffered: may hit the same full disk
        }
        catch (IOException ex)
        {
            Failed++;
            LogWriteFailed(_log, Failed, ex.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "JSON export write failed ({Failed} events lost so far): {Reason}")]
    private static partial void LogWriteFailed(ILogger log, long failed, string reason);
}
