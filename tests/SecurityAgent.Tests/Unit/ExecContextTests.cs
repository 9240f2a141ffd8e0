using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using SecurityAgent.Events;
using SecurityAgent.Export;
using SecurityAgent.Processes;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Unit;

/// <summary>What the kernel reads at exec beside ids and paths (namespaces, the executed file, the privilege change,
/// secure bits, user namespace), from the raw record to Tetragon's JSON.</summary>
public sealed class ExecContextTests
{
    private const uint HostUts = 4026531838, HostMnt = 4026531841, HostUser = 4026531837;

    /// <summary>An exec of a file with the given mode and owner by uid/gid 1000, ending with the given euid/egid.</summary>
    private static byte[] Record(uint euid = 1000, uint egid = 1000, ushort mode = 0x81ed, uint fileUid = 0, uint fileGid = 0,
        uint perClear = 0, uint nlink = 1, ulong permitted = 0, uint securebits = 0, uint uts = HostUts)
    {
        var raw = EventDecoderTests.ExecRecord(4242, "/tmp/id", ["id"], "/");
        var s = raw.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(s[Wire.Exec.Uid..], 1000);
        BinaryPrimitives.WriteUInt32LittleEndian(s[Wire.Exec.Euid..], euid);
        BinaryPrimitives.WriteUInt32LittleEndian(s[Wire.Exec.Gid..], 1000);
        BinaryPrimitives.WriteUInt32LittleEndian(s[Wire.Exec.Egid..], egid);
        BinaryPrimitives.WriteUInt64LittleEndian(s[Wire.Exec.CapPermitted..], permitted);
        BinaryPrimitives.WriteUInt64LittleEndian(s[Wire.Exec.FileIno..], 1234567);
        BinaryPrimitives.WriteUInt32LittleEndian(s[Wire.Exec.FileNlink..], nlink);
        BinaryPrimitives.WriteUInt32LittleEndian(s[Wire.Exec.FileUid..], fileUid);
        BinaryPrimitives.WriteUInt32LittleEndian(s[Wire.Exec.FileGid..], fileGid);
        BinaryPrimitives.WriteUInt16LittleEndian(s[Wire.Exec.FileMode..], mode);
        BinaryPrimitives.WriteUInt32LittleEndian(s[Wire.Exec.PerClear..], perClear);
        BinaryPrimitives.WriteUInt32LittleEndian(s[Wire.Exec.Securebits..], securebits);
        BinaryPrimitives.WriteInt32LittleEndian(s[Wire.Exec.UsernsLevel..], 0);
        uint[] ns = [uts, 4026531839, HostMnt, 4026531836, 4026531836, 4026531840, 4026531834, 4026531834, 4026531835, HostUser];
        for (int i = 0; i < ns.Length; i++)
            BinaryPrimitives.WriteUInt32LittleEndian(s[(Wire.Exec.Ns + 4 * i)..], ns[i]);
        return raw;
    }

    private static BinaryProperties Properties(byte[] raw) => EventDecoder.Decode(raw).Exec.BinaryProperties;

    private static NamespaceInums Host()
    {
        var ns = new NamespaceInums();
        uint[] values = [HostUts, 4026531839, HostMnt, 4026531836, 4026531836, 4026531840, 4026531834, 4026531834, 4026531835, HostUser];
        for (int i = 0; i < values.Length; i++) ns[i] = values[i];
        return ns;
    }

    private static ProcessInfo Exec(byte[] raw)
    {
        var cache = new ProcessCache("n1", new ProcessCacheOptions(), TimeProvider.System);
        return cache.OnExec(EventDecoder.Decode(raw).Exec);
    }

    private static JsonElement Render(AgentEvent e, bool credentials = true, bool namespaces = true)
    {
        var format = new EventFormat { ProcessCredentials = credentials, ProcessNamespaces = namespaces, HostNamespaces = Host() };
        var line = Encoding.UTF8.GetString(new JsonEventFormatter("n1", new BootClock(1_700_000_000_000_000_000), format).Render(e));
        JsonFormatTests.AssertValid(line);
        if (TetragonProtos.SkipReason is null) TetragonProtos.AssertTetragonLine(line);
        return JsonDocument.Parse(line).RootElement;
    }

    [Fact]
    public void A_setuid_root_file_run_by_a_user_reports_setuid_0_and_the_privilege_raise()
    {
        var b = Properties(Record(euid: 0, mode: 0x81ed | 0x800, fileUid: 0, perClear: 0x0400000));
        Assert.Equal(0u, b.Setuid);
        Assert.Null(b.Setgid);
        Assert.Equal(PrivilegesChanged.Setuid, b.Changed);
        Assert.False(b.Unlinked);
    }

    [Fact]
    public void A_setgid_file_reports_setgid_only_when_group_execute_is_set_too()
    {
        Assert.Equal(PrivilegesChanged.Setgid, Properties(Record(egid: 0, mode: 0x81ed | 0x400, perClear: 1)).Changed);
        Assert.Equal(0u, Properties(Record(egid: 0, mode: 0x81ed | 0x400, perClear: 1)).Setgid);
        Assert.True(Properties(Record(egid: 0, mode: (0x81ed & ~0x8) | 0x400, perClear: 1)).IsEmpty);
    }

    [Fact]
    public void A_setuid_file_that_changed_nothing_and_a_plain_exec_report_nothing()
    {
        // the file is setuid to its caller: per_clear is set, the euid stays the uid
        Assert.True(Properties(Record(mode: 0x81ed | 0x800, fileUid: 1000, perClear: 1)).IsEmpty);
        Assert.True(Properties(Record()).IsEmpty);
    }

    [Fact]
    public void Capabilities_raised_without_an_id_change_come_from_the_files_capabilities()
    {
        var b = Properties(Record(perClear: 1, permitted: 1UL << 13));
        Assert.Equal(PrivilegesChanged.FileCap, b.Changed);
        Assert.Null(b.Setuid);
    }

    [Fact]
    public void A_binary_with_no_link_left_reports_its_inode()
    {
        var b = Properties(Record(nlink: 0));
        Assert.True(b.Unlinked);
        Assert.Equal((1234567UL, 0u), (b.Inode, b.Links));
    }

    [Fact]
    public void Namespaces_render_each_inum_and_is_host_only_where_it_equals_the_hosts()
    {
        var p = Exec(Record(uts: 4026532999));
        var ns = Render(new ProcessExecEvent(1, p, null)).GetProperty("process_exec").GetProperty("process").GetProperty("ns");
        Assert.Equal(4026532999u, ns.GetProperty("uts").GetProperty("inum").GetUInt32());
        Assert.False(ns.GetProperty("uts").TryGetProperty("is_host", out _));
        Assert.Equal(HostMnt, ns.GetProperty("mnt").GetProperty("inum").GetUInt32());
        Assert.True(ns.GetProperty("mnt").GetProperty("is_host").GetBoolean());
        Assert.Equal(NamespaceInums.Names, ns.EnumerateObject().Select(o => o.Name));
    }

    [Fact]
    public void Namespaces_are_only_rendered_when_asked_for_as_in_tetragon()
    {
        var p = Exec(Record());
        Assert.False(Render(new ProcessExecEvent(1, p, null), namespaces: false).GetProperty("process_exec").GetProperty("process").TryGetProperty("ns", out _));
    }

    [Fact]
    public void Binary_properties_are_on_the_exec_event_only_and_only_with_credentials()
    {
        var p = Exec(Record(euid: 0, mode: 0x81ed | 0x800, fileUid: 0, perClear: 1));
        var bp = Render(new ProcessExecEvent(1, p, null)).GetProperty("process_exec").GetProperty("process").GetProperty("binary_properties");
        Assert.Equal(0u, bp.GetProperty("setuid").GetUInt32());
        Assert.Equal(["PRIVILEGES_RAISED_EXEC_FILE_SETUID"], bp.GetProperty("privileges_changed").EnumerateArray().Select(e => e.GetString()));

        Assert.False(Render(new ProcessExitEvent(2, p, null, 0, 0)).GetProperty("process_exit").GetProperty("process").TryGetProperty("binary_properties", out _));
        Assert.False(Render(new ProcessExecEvent(1, p, null), credentials: false).GetProperty("process_exec").GetProperty("process").TryGetProperty("binary_properties", out _));
    }

    [Fact]
    public void An_unlinked_binary_renders_its_inode_number_as_a_protojson_string()
    {
        var p = Exec(Record(nlink: 0));
        var inode = Render(new ProcessExecEvent(1, p, null)).GetProperty("process_exec").GetProperty("process")
            .GetProperty("binary_properties").GetProperty("file").GetProperty("inode");
        Assert.Equal("1234567", inode.GetProperty("number").GetString());
        Assert.Equal(0u, inode.GetProperty("links").GetUInt32());
    }

    [Fact]
    public void Credentials_carry_secure_bits_by_name_and_the_user_namespace()
    {
        var p = Exec(Record(securebits: 0x11));
        var cred = Render(new ProcessExecEvent(1, p, null)).GetProperty("process_exec").GetProperty("process").GetProperty("process_credentials");
        Assert.Equal(["SecBitNoRoot", "SecBitKeepCaps"], cred.GetProperty("securebits").EnumerateArray().Select(e => e.GetString()));
        var userNs = cred.GetProperty("user_ns");
        Assert.Equal(0, userNs.GetProperty("level").GetInt32());
        Assert.Equal(HostUser, userNs.GetProperty("ns").GetProperty("inum").GetUInt32());
        Assert.True(userNs.GetProperty("ns").GetProperty("is_host").GetBoolean());
    }

    [Fact]
    public void A_proc_entry_reads_its_namespaces_from_proc_pid_ns()
    {
        var ns = ProcFsScanner.ReadNamespaces($"/proc/{Environment.ProcessId}");
        var link = new FileInfo($"/proc/{Environment.ProcessId}/ns/uts").LinkTarget!;
        Assert.Equal(link, $"uts:[{ns[(int)Wire.Namespace.Uts]}]");
        Assert.NotEqual(0u, ns[(int)Wire.Namespace.Net]);
    }
}
