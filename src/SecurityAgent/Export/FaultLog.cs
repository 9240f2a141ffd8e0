using Microsoft.Extensions.Logging;

namespace SecurityAgent.Export;

/// <summary>The failures of one exporter or side file, logged at a bounded rate: the first at once, then at most one
/// line per interval with the count since the last line, and one line when it works again. Used by one thread.</summary>
public sealed partial class FaultLog(ILogger log, string what, TimeProvider? clock = null, TimeSpan? interval = null)
{
    private readonly TimeProvider _clock = clock ?? TimeProvider.System;
    private readonly TimeSpan _interval = interval ?? TimeSpan.FromSeconds(10);
    private long _total, _sinceLine, _lastLine;
    private bool _failing;

    /// <summary>Events (or writes, for side files) lost so far.</summary>
    public long Total => Volatile.Read(ref _total);

    public void Failed(long lost, string reason)
    {
        Volatile.Write(ref _total, _total + lost);
        _sinceLine += lost;
        long now = _clock.GetTimestamp();
        if (_failing && _clock.GetElapsedTime(_lastLine, now) < _interval) return;
        LogFailing(log, what, _sinceLine, _total, reason);
        (_failing, _sinceLine, _lastLine) = (true, 0, now);
    }

    public void Succeeded()
    {
        if (!_failing) return;
        LogRecovered(log, what, _sinceLine, _total);
        (_failing, _sinceLine) = (false, 0);
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "{What} failed: {Lost} lost since the last report, {Total} in all: {Reason}")]
    private static partial void LogFailing(ILogger log, string what, long lost, long total, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{What} works again: {Lost} lost since the last report, {Total} in all")]
    private static partial void LogRecovered(ILogger log, string what, long lost, long total);
}
