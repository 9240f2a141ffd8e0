using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace SecurityAgent.Export;

/// <summary>JSON lines to stdout or a file. A write failure (full disk, revoked path) is logged and
/// counted, and the agent keeps running.</summary>
public sealed partial class JsonLinesExporter : IEventExporter
{
    private readonly Stream _stream;
    private readonly Utf8JsonWriter _json;
    private readonly JsonEventFormatter _formatter;
    private readonly ILogger _log;
    private static readonly byte[] NewLine = "\n"u8.ToArray();

    public long Written { get; private set; }
    public long Failed { get; private set; }

    public JsonLinesExporter(Stream stream, JsonEventFormatter formatter, ILogger log)
    {
        _stream = new BufferedStream(stream, 64 * 1024);
        _json = new Utf8JsonWriter(_stream, new JsonWriterOptions { Indented = false, SkipValidation = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        _formatter = formatter;
        _log = log;
    }

    /// <summary>"-" is stdout; anything else a file opened for append (created if missing).</summary>
    public static Stream OpenTarget(string path) =>
        path == "-" ? Console.OpenStandardOutput()
        : new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete, 1, FileOptions.None);

    public void Export(AgentEvent e)
    {
        try
        {
            _formatter.Write(_json, e);
            _json.Flush();
            _json.Reset();
            _stream.Write(NewLine);
            Written++;
        }
        catch (IOException ex)
        {
            _json.Reset();
            if (Failed++ % 1000 == 0)
                LogWriteFailed(_log, Failed, ex.Message);
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
        await _stream.DisposeAsync();
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "JSON export write failed ({Failed} events lost so far): {Reason}")]
    private static partial void LogWriteFailed(ILogger log, long failed, string reason);
}
