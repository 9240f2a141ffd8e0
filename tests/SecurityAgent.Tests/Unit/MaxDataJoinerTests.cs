using System.Buffers.Binary;
using SecurityAgent.Events;
using SecurityAgent.Export;
using SecurityAgent.Kernel;
using SecurityAgent.Pipeline;
using SecurityAgent.Policies;

namespace SecurityAgent.Tests.Unit;

/// <summary>maxData data records as the kernel sends them (bpf/include/maxdata.h), decoded and joined to their event.</summary>
public sealed class MaxDataJoinerTests
{
    private static readonly HookPlan Hook = new(HookKind.Kprobe, Mechanism.Tracepoint, "syscalls/sys_enter_write", "sys_write", "",
        [new ArgPlan(0, 0, "int", ArgType.Int, 16, 8, null), new ArgPlan(1, 1, "char_buf", ArgType.BufMax, 24, 32, null)], [], null, []);

    private static byte[] Record(int tid, byte arg, uint total, uint off, ReadOnlySpan<byte> bytes)
    {
        var r = new byte[Wire.DataChunk.Data + bytes.Length];
        r[Wire.Header.Op] = (byte)Op.Data;
        BinaryPrimitives.WriteUInt16LittleEndian(r.AsSpan(Wire.Header.Size), (ushort)r.Length);
        BinaryPrimitives.WriteInt32LittleEndian(r.AsSpan(Wire.DataChunk.Tid), tid);
        BinaryPrimitives.WriteUInt32LittleEndian(r.AsSpan(Wire.DataChunk.Total), total);
        BinaryPrimitives.WriteUInt32LittleEndian(r.AsSpan(Wire.DataChunk.Off), off);
        r[Wire.DataChunk.Arg] = arg;
        bytes.CopyTo(r.AsSpan(Wire.DataChunk.Data));
        return r;
    }

    /// <summary>Sends a buffer as the kernel does: chunks of Contract.MaxdataChunk bytes, at most MaxdataBytes.</summary>
    private static void Send(MaxDataJoiner j, int tid, byte arg, byte[] buffer, Func<int, bool>? keep = null)
    {
        int total = Math.Min(buffer.Length, Contract.MaxdataBytes);
        for (int off = 0, k = 0; off < total; off += Contract.MaxdataChunk, k++)
            if (keep?.Invoke(k) != false)
                j.Add(EventDecoder.Decode(Record(tid, arg, (uint)total, (uint)off, buffer.AsSpan(off, Math.Min(Contract.MaxdataChunk, total - off)))).Data);
    }

    private static PolicyKernelEvent Event(int tid, ulong size, byte[] buffer) =>
        new(1, 100, tid, 1, 1, 0, 0, (uint)(Actions.Post | Actions.MaxData), [3, size], [[], buffer[..(Contract.StrMax - 1)]]);

    private static byte[] Pattern(int n) => Enumerable.Range(0, n).Select(i => (byte)(i * 7 + i / 251)).ToArray();

    [Fact]
    public void A_100000_byte_buffer_in_four_records_is_joined_to_its_event_and_rendered_as_bytes_arg()
    {
        var j = new MaxDataJoiner();
        var buffer = Pattern(100_000);
        Send(j, 42, 1, buffer);
        var e = Event(42, 100_000, buffer);
        j.Join(e, Hook);
        var arg = PolicyArgs.Render(Hook, e.Ints, e.Strings)[1];
        Assert.Equal("bytes_arg", arg.Kind);
        Assert.Equal(buffer, (byte[])arg.Value!);
        Assert.Equal((1L, 0L, 0L, 0), (j.Joined, j.Incomplete, j.Discarded, j.PendingCount));
    }

    [Fact]
    public void A_buffer_above_327360_bytes_keeps_its_first_327360_as_truncated_bytes_arg_with_orig_size()
    {
        var j = new MaxDataJoiner();
        var buffer = Pattern(400_000);
        Send(j, 42, 1, buffer);
        var e = Event(42, 400_000, buffer);
        j.Join(e, Hook);
        var arg = PolicyArgs.Render(Hook, e.Ints, e.Strings)[1];
        Assert.Equal("truncated_bytes_arg", arg.Kind);
        var t = (TruncatedBytes)arg.Value!;
        Assert.Equal((400_000UL, 327_360), (t.OrigSize, t.Bytes.Length));
        Assert.Equal(buffer[..327_360], t.Bytes);
    }

    [Fact]
    public void A_record_lost_in_the_middle_leaves_the_event_its_255_bytes_and_is_counted()
    {
        var j = new MaxDataJoiner();
        var buffer = Pattern(100_000);
        Send(j, 42, 1, buffer, keep: k => k != 1);
        var e = Event(42, 100_000, buffer);
        j.Join(e, Hook);
        var arg = PolicyArgs.Render(Hook, e.Ints, e.Strings)[1];
        Assert.Equal("truncated_bytes_arg", arg.Kind);
        Assert.Equal((100_000UL, 255), (((TruncatedBytes)arg.Value!).OrigSize, ((TruncatedBytes)arg.Value!).Bytes.Length));
        Assert.Equal((0L, 1L, 1L, 0), (j.Joined, j.Incomplete, j.Discarded, j.PendingCount));
    }

    [Fact]
    public void Buffers_no_event_takes_are_bounded_and_the_oldest_is_dropped_first()
    {
        var j = new MaxDataJoiner();
        var buffer = Pattern(1000);
        for (int tid = 1; tid <= MaxDataJoiner.MaxPending + 5; tid++)
            Send(j, tid, 1, buffer);
        Assert.Equal((MaxDataJoiner.MaxPending, 5L), (j.PendingCount, j.Discarded));
        var first = Event(1, 1000, buffer);
        j.Join(first, Hook);
        var last = Event(MaxDataJoiner.MaxPending + 5, 1000, buffer);
        j.Join(last, Hook);
        Assert.Equal((1L, 1L), (j.Joined, j.Incomplete));
        Assert.Equal(buffer, last.Strings[1]);
        Assert.Equal(255, first.Strings[1].Length);
    }

    [Fact]
    public void A_data_record_whose_bytes_pass_its_total_is_a_decode_error()
    {
        var bad = Record(1, 1, 100, 50, new byte[60]);
        Assert.Throws<FormatException>(() => EventDecoder.Decode(bad));
        var tooBig = Record(1, 1, (uint)Contract.MaxdataBytes + 1, 0, new byte[10]);
        Assert.Throws<FormatException>(() => EventDecoder.Decode(tooBig));
    }
}
