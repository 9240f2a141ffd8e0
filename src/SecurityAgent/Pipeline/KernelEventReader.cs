using SecurityAgent.Bpf;

namespace SecurityAgent.Pipeline;

/// <summary>Polls the kernel ring buffer on a dedicated thread and hands records to the pipeline.</summary>
public sealed class KernelEventReader : IDisposable
{
    private readonly RingBuffer _ring;
    private readonly Thread _thread;
    private volatile bool _stop;
    private Exception? _failure;

    public KernelEventReader(BpfMap ringMap, EventPipeline pipeline)
    {
        _ring = new RingBuffer(ringMap, pipeline.Enqueue);
        _thread = new Thread(Loop) { IsBackground = true, Name = "secagent ringbuf" };
    }

    public void Start() => _thread.Start();

    private void Loop()
    {
        try
        {
            while (!_stop)
                if (_ring.Poll(50) == 0)
                    _ring.Consume(); // records below the kernel's wake-up threshold arrive without a wake-up
            while (_ring.Consume() > 0) { } // drain what is already there
        }
        catch (Exception e)
        {
            _failure = e;
        }
    }

    /// <summary>Stops polling (within one poll interval) and rethrows a failure of the thread.</summary>
    public void Stop()
    {
        _stop = true;
        if (_thread.IsAlive)
            _thread.Join();
        if (_failure is not null)
            throw new InvalidOperationException("ring buffer reader failed", _failure);
    }

    public void Dispose()
    {
        _stop = true;
        if (_thread.IsAlive) _thread.Join();
        _ring.Dispose();
    }
}
