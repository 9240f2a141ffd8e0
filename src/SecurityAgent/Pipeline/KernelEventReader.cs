using SecurityAgent.Bpf;
using SecurityAgent.Events;
using SecurityAgent.Interop;

namespace SecurityAgent.Pipeline;

/// <summary>The pipeline's thread: waits in epoll for the kernel's wake-up or <see cref="PollMs"/>, whichever comes
/// first, drains the ring buffer through the pipeline and ends the batch. The kernel submits without waking anyone
/// (BPF_RB_NO_WAKEUP) until a threshold of pending bytes is reached, so at high rates one wake-up carries thousands of
/// records, at low rates the timer brings each event to the exporters within one interval, and a record that waits
/// on a decision only user space can make is submitted with a forced wake-up. Under load the thread drains back to
/// back. Once a look finds the ring empty, the thread says so in sa_reader (a shared mapping: no syscall) and waits
/// without the short timer; the kernel then wakes it with the next record, so an idle agent is not woken 12 times a
/// second, and the first event after a quiet spell goes out at once.</summary>
public sealed class KernelEventReader : IDisposable
{
    /// <summary>The longest a record waits in the ring when the kernel does not wake the reader.</summary>
    public const int PollMs = 80;

    /// <summary>The wait while asleep, from the second wait on. The first wait after the flag is set is the short one: a
    /// submit that read the flag just before it was set and committed after the reader's last look did not wake it
    /// (the flag is read before the record is reserved, so no fence closes that window), and that look finds it.</summary>
    public const int AsleepPollMs = 1000;

    /// <summary>A drain this large means records are coming fast: drain again at once instead of waiting, so the ring
    /// never fills between drains (and need not be large).</summary>
    private const int BusyDrain = 256;

    private readonly RingBuffer _ring;
    private readonly MappedRegion _readerState;
    private readonly EventPipeline _pipeline;
    private readonly Thread _thread;
    private readonly int _nice;
    private readonly Action<int>? _niceFailed;
    private readonly Action _wake;
    private volatile bool _stop;
    private bool _disposed;
    private Exception? _failure;

    /// <param name="ringMap">sa_events.</param>
    /// <param name="readerStateMap">sa_reader (BPF_F_MMAPABLE), read by every submit.</param>
    /// <param name="nice">The thread's nice value (0: the process's); <paramref name="niceFailed"/> gets the errno if it cannot be set.</param>
    public KernelEventReader(BpfMap ringMap, BpfMap readerStateMap, EventPipeline pipeline, int nice = 0, Action<int>? niceFailed = null)
    {
        (_pipeline, _nice, _niceFailed) = (pipeline, nice, niceFailed);
        _ring = new RingBuffer(ringMap, pipeline.OnRecord);
        try
        {
            _readerState = MappedRegion.Map(readerStateMap.Fd, Environment.SystemPageSize, writable: true);
        }
        catch
        {
            _ring.Dispose();
            throw;
        }
        _wake = _ring.Wake;
        _thread = new Thread(Loop) { IsBackground = true, Name = "secagent events" };
    }

    public void Start() => _thread.Start();

    private void Loop()
    {
        if (_nice != 0 && Interop.Libc.SetThreadNice(_nice) is var errno and not 0)
            _niceFailed?.Invoke(errno);
        int timeout = PollMs;
        bool asleep = false;
        try
        {
            while (!_stop)
            {
                int n = _ring.Poll(timeout);
                if (n == 0)
                    n = _ring.Consume(); // records submitted without a wake-up
                _pipeline.EndBatch();
                if (asleep)
                {
                    if (n == 0 && _pipeline.Sleeping)
                    {
                        timeout = AsleepPollMs; // a wait ran out, or a wake-up found nothing: keep sleeping
                        continue;
                    }
                    SetAsleep(false);
                }
                if (n == 0 && _pipeline.TrySleep(_wake))
                {
                    SetAsleep(true);
                    if ((n = _ring.Consume()) > 0) // committed before the kernel could see the flag
                    {
                        SetAsleep(false);
                        _pipeline.EndBatch();
                    }
                }
                timeout = n >= BusyDrain ? 0 : PollMs;
            }
            if (asleep) SetAsleep(false);
            _ring.Consume(); // what is already there
            _pipeline.Complete();
        }
        catch (Exception e)
        {
            _failure = e;
        }

        void SetAsleep(bool value)
        {
            // Fenced: the kernel's submits see the flag before the reader next looks at the ring.
            _readerState.WriteUInt32Fenced(Wire.Reader.Asleep, value ? 1u : 0u);
            if (!value) _pipeline.Awake();
            asleep = value;
        }
    }

    /// <summary>Stops after the last records went out; rethrows a failure of the thread.</summary>
    public void Stop()
    {
        _stop = true;
        _ring.Wake();
        if (_thread.IsAlive)
            _thread.Join();
        if (_failure is not null)
            throw new InvalidOperationException("event reader failed", _failure);
    }

    /// <summary>Whether the thread died of a failure (surfaced by <see cref="Stop"/>).</summary>
    public bool Failed => _failure is not null;

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _stop = true;
        _ring.Wake();
        if (_thread.IsAlive) _thread.Join();
        _ring.Dispose();
        _readerState.Dispose();
    }
}
