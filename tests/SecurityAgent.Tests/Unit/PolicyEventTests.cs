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
    public void The_strings_passed_for_resolved_file_names_follow_the_arguments_and_render_beside_the_resolved_path()
    {
        var raw = Record((0, "/etc/shadow"u8.ToArray()), (0, []));
        BinaryPrimitives.WriteUInt16LittleEndian(raw.AsSpan(PolicyWire.Event.RawLen), 6);
        raw = [.. raw, .. "shadow"u8.ToArray()];
        var e = EventDecoder.Decode(raw).Policy;
        Assert.Equal("shadow", System.Text.Encoding.UTF8.GetString(e.Passed![0]!));
        Assert.Null(e.Passed[1]);

        var hook = new Policies.HookPlan(Policies.HookKind.Kprobe, Kernel.Mechanism.Tracepoint, "syscalls/sys_enter_openat", "__x64_sys_openat", "",
            [new Policies.ArgPlan(0, 1, "string", Policies.ArgType.String, 24, 8, "path"), new Policies.ArgPlan(1, 2, "int", Policies.ArgType.Int, 32, 4, null)], [], null, []);
        var args = Export.PolicyArgs.Render(hook, e.Ints, e.Strings, e.Passed);
        Assert.Equal(("/etc/shadow", "shadow"), (args[0].Value, args[0].Passed));
        Assert.Null(args[1].Passed);

        BinaryPrimitives.WriteUInt16LittleEndian(raw.AsSpan(PolicyWire.Event.RawLen), 60);
        Assert.Throws<FormatException>(() => EventDecoder.Decode(raw).Policy);
    }

    [Fact]
    public void A_string_length_beyond_the_bytes_sent_is_a_format_error()
    {
        var raw = Record((0, "abc"u8.ToArray()));
        BinaryPrimitives.WriteUInt16LittleEndian(raw.AsSpan(PolicyWire.Event.StrLen), 200);
        Assert.Throws<FormatException>(() => { _ = EventDecoder.Decode(raw).Policy; });
    }
}
