using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace SecurityAgent.Interop;

/// <summary>Routes libbpf's printf-style log into .NET and captures it per thread while an operation
/// runs, so a load failure can carry its verifier log.</summary>
internal static unsafe class LibbpfLog
{
    private static int _installed;
    [ThreadStatic] private static StringBuilder? _capture;
    [ThreadStatic] private static bool _quiet;

    /// <summary>Receives every libbpf message (level 0 warn, 1 info, 2 debug).</summary>
    public static Action<int, string>? Sink { get; set; }

    public static void EnsureInstalled()
    {
        if (Interlocked.Exchange(ref _installed, 1) == 0)
            Libbpf.libbpf_set_print(&OnPrint);
    }

    /// <summary>Captures libbpf messages of this thread until disposed.</summary>
    /// <param name="quiet">Expected failures (feature probes): keep the text, do not log it.</param>
    public static Capture BeginCapture(bool quiet = false)
    {
        EnsureInstalled();
        var previous = (_capture, _quiet);
        _capture = new StringBuilder();
        _quiet |= quiet;
        return new Capture(previous);
    }

    public readonly struct Capture((StringBuilder? Text, bool Quiet) previous) : IDisposable
    {
        public string Text => _capture?.ToString() ?? "";

        /// <summary>The verifier's own lines (between libbpf's BEGIN/END markers), last <paramref name="lines"/> of them.</summary>
        public string VerifierTail(int lines = 30) => ExtractVerifierTail(Text, lines);

        public void Dispose()
        {
            (_capture, _quiet) = previous;
            if (_capture is null)
                FreeLogBuffer();
        }
    }

    internal static string ExtractVerifierTail(string text, int lines)
    {
        var all = text.Split('\n');
        int begin = Array.FindLastIndex(all, l => l.Contains("-- BEGIN PROG LOAD LOG --"));
        int end = Array.FindLastIndex(all, l => l.Contains("-- END PROG LOAD LOG --"));
        IEnumerable<string> body = begin >= 0 && end > begin ? all[(begin + 1)..end]
            : begin >= 0 ? all[(begin + 1)..].Where(l => !l.StartsWith("libbpf:"))
            : all.Where(l => l.StartsWith("libbpf:"));
        var list = body.Where(l => l.Length > 0 && !l.StartsWith("; ")).ToList();
        return string.Join('\n', list.Skip(Math.Max(0, list.Count - lines)));
    }

    // libbpf prints a whole verifier log as one message: while a capture runs (loads), the buffer must hold it
    // (or its failing end is lost). It is allocated on the first message of a capture and freed when the
    // thread's outermost capture ends; other messages are short and formatted on the stack.
    private const int CaptureBufferSize = 16 * 1024 * 1024;
    private const int StackBufferSize = 4096;
    [ThreadStatic] private static byte* _logBuffer;

    private static void FreeLogBuffer()
    {
        if (_logBuffer == null) return;
        NativeMemory.Free(_logBuffer);
        _logBuffer = null;
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int OnPrint(int level, byte* format, nint args)
    {
        byte* stack = stackalloc byte[StackBufferSize];
        byte* buf = stack;
        int size = StackBufferSize;
        if (_capture is not null)
        {
            if (_logBuffer == null)
                _logBuffer = (byte*)NativeMemory.Alloc(CaptureBufferSize);
            buf = _logBuffer;
            size = CaptureBufferSize;
        }
        int n = Libc.vsnprintf(buf, (nuint)size, format, args);
        if (n <= 0)
            return 0;
        var text = Encoding.UTF8.GetString(buf, Math.Min(n, size - 1));
        _capture?.Append(text);
        if (!_quiet)
            try { Sink?.Invoke(level, text.TrimEnd('\n')); } catch { /* logging must never unwind into native code */ }
        return 0;
    }
}
