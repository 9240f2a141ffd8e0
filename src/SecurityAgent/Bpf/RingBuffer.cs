using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using SecurityAgent.Interop;

namespace SecurityAgent.Bpf;

/// <summary>A consumer of a BPF ring buffer map. <see cref="Poll"/> and <see cref="Consume"/> hand each record, as a
/// span that is valid only during the call, to the sink given at creation, on the calling thread.</summary>
public sealed unsafe class RingBuffer : SafeHandle
{
    public delegate void RecordSink(ReadOnlySpan<byte> record);

    private readonly RecordSink _sink;
    private readonly FdHandle _wake = Libc.EventFd();
    private GCHandle _self;

    public RingBuffer(BpfMap map, RecordSink sink) : base(0, ownsHandle: true)
    {
        _sink = sink;
        _self = GCHandle.Alloc(this);
        var rb = Libbpf.ring_buffer__new(map.Fd, &OnSample, GCHandle.ToIntPtr(_self), null);
        if (rb == 0)
        {
            _self.Free();
            _wake.Dispose();
            LibbpfException.Check(rb, $"ring_buffer__new({map.Name})");
        }
        SetHandle(rb);
        // Edge-triggered: a wait ends on the kernel's wake-up (forced once a batch of bytes is pending, or for a record
        // that awaits a decision) or the timeout, not as soon as one record is there. Level-triggered, a reader that
        // keeps up is woken for every few records, each wake-up a drain, a batch of a few events and a write().
        var ev = new Libc.EpollEvent { Events = Libc.EPOLLIN | Libc.EPOLLET, Data = 0 }; // data: the ring's index in libbpf's epoll
        if (Libc.epoll_ctl(Libbpf.ring_buffer__epoll_fd(rb), Libc.EPOLL_CTL_MOD, map.Fd, &ev) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            Dispose();
            throw new IOException($"epoll_ctl(ring buffer {map.Name}, EPOLLET): {Marshal.GetPInvokeErrorMessage(errno)}");
        }
        // An eventfd in the same epoll set lets another thread end a wait (Wake). Its data is ring 0's index too: libbpf
        // takes an event's data as the ring to consume, so a wake-up only makes it look at the ring once more.
        if (Libc.epoll_ctl(Libbpf.ring_buffer__epoll_fd(rb), Libc.EPOLL_CTL_ADD, (int)_wake.DangerousGetHandle(), &ev) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            Dispose();
            throw new IOException($"epoll_ctl(ring buffer {map.Name}, add eventfd): {Marshal.GetPInvokeErrorMessage(errno)}");
        }
    }

    /// <summary>Ends a <see cref="Poll"/> under way on another thread (or the next one) at once.</summary>
    public void Wake() => Libc.Signal(_wake);

    public override bool IsInvalid => handle == 0;

    /// <summary>Waits in epoll up to <paramref name="timeoutMs"/> for the kernel's wake-up and consumes the rings that
    /// were signalled. Returns the number consumed; EINTR counts as zero.</summary>
    public int Poll(int timeoutMs)
    {
        int rc = Libbpf.ring_buffer__poll(handle, timeoutMs);
        if (rc == -4) return 0; // EINTR
        return LibbpfException.Check(rc, "ring_buffer__poll");
    }

    /// <summary>Consumes every record there is, signalled or not: records submitted with BPF_RB_NO_WAKEUP wake no one.</summary>
    public int Consume() => LibbpfException.Check(Libbpf.ring_buffer__consume(handle), "ring_buffer__consume");

    protected override bool ReleaseHandle()
    {
        Libbpf.ring_buffer__free(handle);
        _wake.Dispose();
        if (_self.IsAllocated) _self.Free();
        return true;
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int OnSample(nint ctx, nint data, nuint size)
    {
        try
        {
            var self = (RingBuffer)GCHandle.FromIntPtr(ctx).Target!;
            self._sink(new ReadOnlySpan<byte>((void*)data, (int)size));
        }
        catch
        {
            // An exception must not unwind through libbpf; the sink counts its own failures.
        }
        return 0;
    }
}
