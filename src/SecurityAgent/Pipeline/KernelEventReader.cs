using SecurityAgent.Bpf;

namespace SecurityAgent.Pipeline;

/// <summary>The pipeline's thread: waits in epoll for the kernel's wake-up or <see cref="PollMs"/>, whichever comes
/// first, drains the ring buffer through the pipeline and ends the batch. The kernel submits without waking anyone
/// (BPF_RB_NO_WAKEUP) until a threshold of pending bytes is reached, so at high rates one wake-up carries thousands of
/// records, at low rates the timer brings each event to the exporters within one interval, and a record that waits
/// on a decision only user space can make is submitted with a forced wake-up. Under load the thread drains back to
/// back.</summary>
public sealed class KernelEventReader : IDisposable
{
    /// <summary>The longest a record waits in the ring when the kernel does not wake the reader.</summary>
    public const int PollMs = 80;

    /// <summary>A drain this large means records are coming fast: drain again at once instead of waiting, so the ring
    /// never fills between drains (and need not be large).</summary>
    private const int BusyDrain = 256;

    private readonly RingBuffer _ring;
    private readonly EventPipeline _pipeline;
    private readonly Thread _thread;
    private readonly int _nice;
    private readonly Action<int>? _niceFailed;
    private volatile bool _stop;
    private Exception? _failure;

    /// <param name="nice">The thread's nice value (0: the process's); <paramref name="niceFailed"/> gets the errno if it cannot be set.</param>
    public KernelEventReader(BpfMap ringMap, EventPipeline pipeline, int nice = 0, Action<int>? niceFailed = null)
    {
        (_pipeline, _nice, _niceFailed) = (pipeline, nice, niceFailed);
        _ring = new RingBuffer(ringMap, pipeline.OnRecord);
        _thread = new Thread(Loop) { IsBackground = true, Name = "secagent events" };
    }

    public void Start() => _thread.Start();

    private void Loop()
    {
        if (_nice != 0 && Interop.Libc.SetThreadNice(_nice) is var errno and not 0)
            _niceFailed?.Invoke(errno);
        try
        {
            int last = 0;
            while (!_stop)
            {
                int n = _ring.Poll(last < BusyDrain ? PollMs : 0);
                if (n == 0)
                    n = _ring.Consume(); // records submitted without a wake-up
                last = n;
                _pipeline.EndBatch();
            }
            _ring.Consume(); // what is already there
            _pipeline.Complete();
        }
        catch (Exception e)
        {
            _failure = e;
        }
    }

    /// <summary>Stops (within one poll interval) after the last records went out; rethrows a failure of the thread.</summary>
    public void Stop()
    {
        _stop = true;
        if (_thread.IsAlive)
            _thread.Join();
        if (_failure is not null)
            throw new InvalidOperationException("event reader failed", _failure);
    }

    /// <summary>Whether the thread died of a failure (surfaced by <see cref="Stop"/>).</summary>
    public bool Failed => _failure is not null;

    public void Dispose()
    {
        _stop = true;
        if (_thread.IsAlive) _thread.Join();
        _ring.Dispose();
    }
}
