using SecurityAgent.Bpf;

namespace SecurityAgent.Pipeline;

/// <summary>The pipeline's thread: every <see cref="PollMs"/> at most, drains the ring buffer through the pipeline and
/// ends the batch, so at low rates an event reaches the exporters within one interval and at high rates one drain
/// carries thousands of records. While a loaded policy enforces a decision only user space can make
/// (<see cref="WakeOnRecord"/>), the thread also waits in epoll for the kernel's wake-up, so that decision is not
/// delayed; otherwise it sleeps between drains: a wake-up per record (the kernel's default) costs more than the
/// record itself. The kernel may submit without waking anyone (BPF_RB_NO_WAKEUP), so every wait ends in a drain.
/// Under load the thread drains back to back.</summary>
public sealed class KernelEventReader : IDisposable
{
    /// <summary>The longest a record waits in the ring when the kernel does not wake the reader.</summary>
    public const int PollMs = 80;

    /// <summary>A drain this large means records are coming fast: drain again at once instead of sleeping, so the ring
    /// never fills between drains (and need not be large).</summary>
    private const int BusyDrain = 256;
    private int _lastDrain;

    private readonly RingBuffer _ring;
    private readonly EventPipeline _pipeline;
    private readonly Thread _thread;
    private volatile bool _stop, _wakeOnRecord;

    /// <summary>Whether a record must reach user space at once (see <see cref="Decider.AwaitsUserSpace"/>).</summary>
    public bool WakeOnRecord { get => _wakeOnRecord; set => _wakeOnRecord = value; }
    private Exception? _failure;

    public KernelEventReader(BpfMap ringMap, EventPipeline pipeline)
    {
        _pipeline = pipeline;
        _ring = new RingBuffer(ringMap, pipeline.OnRecord);
        _thread = new Thread(Loop) { IsBackground = true, Name = "secagent events" };
    }

    public void Start() => _thread.Start();

    private void Loop()
    {
        try
        {
            while (!_stop)
            {
                int n;
                if (!_wakeOnRecord)
                {
                    if (_lastDrain < BusyDrain) Thread.Sleep(PollMs);
                    n = _ring.Consume();
                }
                else if ((n = _ring.Poll(_lastDrain < BusyDrain ? PollMs : 0)) == 0)
                    n = _ring.Consume(); // records submitted without a wake-up
                _lastDrain = n;
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
