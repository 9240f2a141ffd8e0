using System.Buffers.Binary;
using SecurityAgent.Events;

namespace SecurityAgent.Tests.Unit;

/// <summary>policy_event records: a fixed part, then only the used bytes of the hook's strings, back to back.</summary>
public class PolicyEventTests
{
    private static byte[] Record(params (ulong Int, byte[] Str)[] args)
    {
        var buf = new byte[PolicyWire.Event.Data + args.Sum(a => a.Str.Length)];
        buf[Wire.Header.Op] = (byte)Op.Tracepoint;
        BinaryPrimitives.WriteInt32LittleEndian(buf.AsSpan(PolicyWire.Event.Pid), 42);
        BinaryPrimitives.WriteUInt32LittleEndian(buf.AsSpan(PolicyWire.Event.HookId), 7);
        buf[PolicyWire.Event.Selector] = 2;
        buf[PolicyWire.Event.Flags] = (byte)PolicyWire.EventFlags.Enforced;
        buf[PolicyWire.Event.Nargs] = (byte)args.Length;
        int off = PolicyWire.Event.Data;
        for (int i = 0; i < args.Length; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(buf.AsSpan(PolicyWire.Event.Ints + 8 * i), args[i].Int);
            BinaryPrimitives.WriteUInt16LittleEndian(buf.AsSpan(PolicyWire.Event.StrLen + 2 * i), (ushort)args[i].Str.Length);
            args[i].Str.CopyTo(buf, off);
            off += args[i].Str.Length;
        }
        return buf;
    }

    [Fact]
    public void The_strings_of_a_policy_record_are_read_back_to_back_in_argument_order()
    {
        var e = EventDecoder.Decode(Record((0, "/etc/passwd"u8.ToArray()), (0x241, []), (0, "x"u8.ToArray()))).Policy;
        Assert.Equal((42, 7u, 2, PolicyWire.EventFlags.Enforced), (e.Pid, e.HookId, e.Selector, e.Flags));
        Assert.Equal([0UL, 0x241, 0], e.Ints);
        Assert.Equal(["/etc/passwd", "", "x"], e.Strings.Select(s => System.Text.Encoding.UTF8.GetString(s)));
    }

    [Fact]
    public void A_string_length_beyond_the_bytes_sent_is_a_format_error()
    {
        var raw = Record((0, "abc"u8.ToArray()));
        BinaryPrimitives.WriteUInt16LittleEndian(raw.AsSpan(PolicyWire.Event.StrLen), 200);
        Assert.Throws<FormatException>(() => { _ = EventDecoder.Decode(raw).Policy; });
    }
}
