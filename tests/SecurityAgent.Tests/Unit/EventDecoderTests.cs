using System.Buffers.Binary;
using System.Text;
using SecurityAgent.Events;

namespace SecurityAgent.Tests.Unit;

public class EventDecoderTests
{
    internal static byte[] ExecRecord(int pid, string path, string[] argv, string cwd, uint flags = 0, int ppid = 1,
        ulong start = 4_000_000_000, ulong ktime = 5_000_000_123, ulong parentStart = 0, ulong cgroupId = 0, byte[]? env = null, uint nspid = 0)
    {
        var args = Encoding.UTF8.GetBytes(string.Join('\0', argv) + "\0");
        var p = Encoding.UTF8.GetBytes(path);
        var c = Encoding.UTF8.GetBytes(cwd);
        env ??= [];
        var buf = new byte[Wire.Exec.Data + p.Length + args.Length + c.Length + env.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(buf.AsSpan(Wire.Exec.Nspid), nspid);
        BinaryPrimitives.WriteUInt16LittleEndian(buf.AsSpan(Wire.Exec.EnvLen), (ushort)env.Length);
        env.CopyTo(buf, Wire.Exec.Data + p.Length + args.Length + c.Length);
        buf[Wire.Header.Op] = (byte)Op.Exec;
        BinaryPrimitives.WriteUInt16LittleEndian(buf.AsSpan(Wire.Header.Size), (ushort)buf.Length);
        BinaryPrimitives.WriteUInt64LittleEndian(buf.AsSpan(Wire.Header.Ktime), ktime);
        BinaryPrimitives.WriteInt32LittleEndian(buf.AsSpan(Wire.Exec.Pid), pid);
        BinaryPrimitives.WriteInt32LittleEndian(buf.AsSpan(Wire.Exec.Tid), pid);
        BinaryPrimitives.WriteInt32LittleEndian(buf.AsSpan(Wire.Exec.Ppid), ppid);
        BinaryPrimitives.WriteUInt64LittleEndian(buf.AsSpan(Wire.Exec.ParentStartTime), parentStart);
        BinaryPrimitives.WriteUInt64LittleEndian(buf.AsSpan(Wire.Exec.CgroupId), cgroupId);
        BinaryPrimitives.WriteUInt32LittleEndian(buf.AsSpan(Wire.Exec.Flags), flags);
        BinaryPrimitives.WriteUInt64LittleEndian(buf.AsSpan(Wire.Exec.StartTime), start);
        BinaryPrimitives.WriteUInt32LittleEndian(buf.AsSpan(Wire.Exec.Uid), 1000);
        BinaryPrimitives.WriteUInt32LittleEndian(buf.AsSpan(Wire.Exec.Euid), 0);
        BinaryPrimitives.WriteUInt32LittleEndian(buf.AsSpan(Wire.Exec.Auid), 1000);
        BinaryPrimitives.WriteUInt64LittleEndian(buf.AsSpan(Wire.Exec.CapEffective), 1UL << 21);
        BinaryPrimitives.WriteUInt16LittleEndian(buf.AsSpan(Wire.Exec.PathLen), (ushort)p.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(buf.AsSpan(Wire.Exec.ArgsLen), (ushort)args.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(buf.AsSpan(Wire.Exec.CwdLen), (ushort)c.Length);
        p.CopyTo(buf, Wire.Exec.Data);
        args.CopyTo(buf, Wire.Exec.Data + p.Length);
        c.CopyTo(buf, Wire.Exec.Data + p.Length + args.Length);
        return buf;
    }

    [Fact]
    public void An_exec_record_decodes_to_its_path_arguments_cwd_and_credentials()
    {
        var raw = ExecRecord(4242, "/usr/bin/curl", ["curl", "-s", "http://x y"], "/home/u", flags: 1);

        var record = EventDecoder.Decode(raw);
        Assert.Equal(Op.Exec, record.Op);
        var e = record.Exec;

        Assert.Equal(4242, e.Pid);
        Assert.Equal(1, e.Ppid);
        Assert.Equal(5_000_000_123UL, e.Ktime);
        Assert.Equal("/usr/bin/curl", Encoding.UTF8.GetString(e.Binary));
        Assert.Equal(["curl", "-s", "http://x y"], EventDecoder.SplitArgs(e.Args));
        Assert.Equal("/home/u", Encoding.UTF8.GetString(e.Cwd));
        Assert.Equal(1000U, e.Uid);
        Assert.Equal(0U, e.Euid);
        Assert.Equal(1000U, e.Auid);
        Assert.Equal(1UL << 21, e.CapEffective);
        Assert.True(e.Flags.HasFlag(Wire.ExecFlags.ArgsTruncated));
    }

    [Fact]
    public void An_exec_record_with_an_environment_decodes_its_variables_after_the_cwd_and_its_namespace_pid()
    {
        var raw = ExecRecord(4242, "/usr/bin/env", ["env"], "/root", env: "HOME=/root\0A=b=c\0ODD\0EMPTY=\0"u8.ToArray(), nspid: 1);

        var e = EventDecoder.Decode(raw).Exec;
        Assert.Equal("/root", Encoding.UTF8.GetString(e.Cwd));
        Assert.Equal(1u, e.Nspid);
        Assert.Equal([new EnvVar("HOME", "/root"), new EnvVar("A", "b=c"), new EnvVar("invalid", "ODD"), new EnvVar("EMPTY", "")],
            EventDecoder.SplitEnvironment(e.Env, truncated: false, filter: null));
    }

    [Fact]
    public void A_cut_environment_leaves_out_its_cut_variable_and_a_filter_keeps_only_the_listed_names()
    {
        var env = "PATH=/bin\0SECRET=x\0LANG=C\0TERM=xte"u8;
        Assert.Equal([new EnvVar("PATH", "/bin"), new EnvVar("SECRET", "x"), new EnvVar("LANG", "C")], EventDecoder.SplitEnvironment(env, truncated: true, filter: null));
        Assert.Equal([new EnvVar("PATH", "/bin"), new EnvVar("LANG", "C")],
            EventDecoder.SplitEnvironment(env, truncated: true, filter: new HashSet<string> { "PATH", "LANG", "TERM" }));
    }

    [Fact]
    public void An_environment_longer_than_the_record_says_is_rejected()
    {
        var raw = ExecRecord(1, "/b", ["b"], "/", env: "A=1\0"u8.ToArray());
        BinaryPrimitives.WriteUInt16LittleEndian(raw.AsSpan(Wire.Exec.EnvLen), 500);
        Assert.Contains("env 500", Assert.Throws<FormatException>(() => EventDecoder.Decode(raw)).Message);
    }

    [Theory]
    [InlineData(0x81a4, "-rw-r--r--")]
    [InlineData(0x89ed, "-rwsr-xr-x")]
    [InlineData(0x85a4, "-rw-r-Sr--")]
    [InlineData(0x43ff, "drwxrwxrwt")]
    [InlineData(0x43fe, "drwxrwxrwT")]
    [InlineData(0xa1ff, "lrwxrwxrwx")]
    [InlineData(0x21b0, "crw-rw----")]
    [InlineData(0, "")]
    public void A_file_mode_reads_as_ls_and_tetragon_write_it(int mode, string expected) => Assert.Equal(expected, Export.PolicyArgs.Permission((ushort)mode));

    [Fact]
    public void A_path_argument_takes_its_permission_and_unresolved_flag_from_the_integer_slot()
    {
        var arg = Export.PolicyArgs.PathArgOf("/etc/shadow"u8.ToArray(), 0x8180 | (ulong)PolicyWire.FileInfo.Unresolved);
        Assert.Equal(new Export.PathArg("/etc/shadow", "unresolvedPathComponents", "-rw-------"), arg);
        Assert.Equal(new Export.PathArg("/x", "", ""), Export.PolicyArgs.PathArgOf("/x"u8.ToArray(), 0));
    }

    [Fact]
    public void An_af_unix_address_keeps_a_path_longer_than_a_sockaddr_in6()
    {
        var path = "/run/" + new string('p', Contract.SockaddrUnSize - 2 - 5 - 1); // sun_path's 108 bytes, NUL included
        var raw = new byte[Contract.SockaddrUnSize];
        raw[0] = 1;
        Encoding.ASCII.GetBytes(path).CopyTo(raw, 2);
        Assert.Equal(path, Export.PolicyArgs.UnixOf(raw).Path);
    }

    [Fact]
    public void Truncated_argv_keeps_the_partial_last_argument()
    {
        Assert.Equal(["a", "bc", "de"], EventDecoder.SplitArgs("a\0bc\0de"u8));
        Assert.Equal(["a"], EventDecoder.SplitArgs("a\0"u8));
        Assert.Empty(EventDecoder.SplitArgs(""u8));
    }

    [Fact]
    public void An_exit_record_splits_the_wait_status_into_code_and_signal()
    {
        var buf = new byte[Wire.Exit.Length];
        buf[Wire.Header.Op] = (byte)Op.Exit;
        BinaryPrimitives.WriteInt32LittleEndian(buf.AsSpan(Wire.Exit.Pid), 77);
        BinaryPrimitives.WriteUInt32LittleEndian(buf.AsSpan(Wire.Exit.ExitCode), 3 << 8);
        var exited = EventDecoder.Decode(buf).Exit;
        Assert.Equal((77, 3, 0), (exited.Pid, exited.Status, exited.Signal));

        BinaryPrimitives.WriteUInt32LittleEndian(buf.AsSpan(Wire.Exit.ExitCode), 9);
        var killed = EventDecoder.Decode(buf).Exit;
        Assert.Equal((0, 9), (killed.Status, killed.Signal));
    }

    [Fact]
    public void A_fork_record_decodes_child_and_parent()
    {
        var buf = new byte[Wire.Fork.Length];
        buf[Wire.Header.Op] = (byte)Op.Fork;
        BinaryPrimitives.WriteInt32LittleEndian(buf.AsSpan(Wire.Fork.Pid), 10);
        BinaryPrimitives.WriteInt32LittleEndian(buf.AsSpan(Wire.Fork.Ppid), 9);
        BinaryPrimitives.WriteUInt64LittleEndian(buf.AsSpan(Wire.Fork.StartTime), 123);
        BinaryPrimitives.WriteUInt32LittleEndian(buf.AsSpan(Wire.Fork.Nspid), 2);
        var record = EventDecoder.Decode(buf);
        Assert.Equal(Op.Fork, record.Op);
        var f = record.Fork;
        Assert.Equal((10, 9, 123UL, 2u), (f.Pid, f.Ppid, f.StartTime, f.Nspid));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(8)]
    [InlineData(20)]
    public void A_short_record_is_a_format_error_not_a_crash(int length)
    {
        var buf = new byte[length];
        if (length > 0) buf[0] = (byte)Op.Exec;
        Assert.Throws<FormatException>(() => { EventDecoder.Decode(buf); });
    }

    [Fact]
    public void Lengths_that_exceed_the_record_are_rejected()
    {
        var raw = ExecRecord(1, "/bin/x", ["x"], "/");
        BinaryPrimitives.WriteUInt16LittleEndian(raw.AsSpan(Wire.Exec.PathLen), 4000);
        var e = Assert.Throws<FormatException>(() => { EventDecoder.Decode(raw); });
        Assert.Contains("exceed", e.Message);
    }

    [Fact]
    public void An_unknown_op_code_is_rejected_with_its_number()
    {
        var buf = new byte[Wire.Header.Length];
        buf[0] = 200;
        Assert.Contains("200", Assert.Throws<FormatException>(() => { EventDecoder.Decode(buf); }).Message);
    }
}
