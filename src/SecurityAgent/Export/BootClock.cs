using SecurityAgent.Interop;

namespace SecurityAgent.Export;

/// <summary>Turns CLOCK_BOOTTIME nanoseconds (what BPF records) into wall-clock time.</summary>
public sealed class BootClock(long realtimeMinusBoottimeNs)
{
    public static BootClock System() => new(Libc.ClockNs(Libc.CLOCK_REALTIME) - Libc.ClockNs(Libc.CLOCK_BOOTTIME));

    public long ToUnixNs(ulong boottimeNs) => (long)boottimeNs + realtimeMinusBoottimeNs;

    /// <summary>RFC 3339 UTC with nanoseconds, as Tetragon (protojson) writes timestamps.</summary>
    public string Format(ulong boottimeNs) => FormatUnixNs(ToUnixNs(boottimeNs));

    public static string FormatUnixNs(long unixNs)
    {
        long secs = Math.DivRem(unixNs, 1_000_000_000L, out long nanos);
        var dt = DateTime.UnixEpoch.AddSeconds(secs);
        return $"{dt:yyyy'-'MM'-'dd'T'HH':'mm':'ss}.{nanos:D9}Z";
    }
}
