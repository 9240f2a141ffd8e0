using SecurityAgent.Interop;

namespace SecurityAgent.Export;

/// <summary>Turns CLOCK_BOOTTIME nanoseconds (what BPF records) into wall-clock time.</summary>
public sealed class BootClock(long realtimeMinusBoottimeNs)
{
    public static BootClock System() => new(Libc.ClockNs(Libc.CLOCK_REALTIME) - Libc.ClockNs(Libc.CLOCK_BOOTTIME));

    public long ToUnixNs(ulong boottimeNs) => (long)boottimeNs + realtimeMinusBoottimeNs;
}
