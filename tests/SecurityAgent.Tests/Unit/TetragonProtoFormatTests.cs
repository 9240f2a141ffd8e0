using System.Text;
using SecurityAgent.Containers;
using SecurityAgent.Events;
using SecurityAgent.Export;
using SecurityAgent.Kernel;
using SecurityAgent.Policies;
using SecurityAgent.Processes;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Unit;

/// <summary>Events built here, rendered by the formatter with every opt-in field on, parse strictly with Tetragon's own
/// definitions and are byte-for-byte what protojson writes for them (see <see cref="TetragonProtos"/>).</summary>
public sealed class TetragonProtoFormatTests : IDisposable
{
    private readonly TempDir _dir = new();

    public TetragonProtoFormatTests() => File.WriteAllText(_dir.File("passwd"), "root:x:0:0::/root:/bin/sh\nalice:x:1000:100::/home/alice:/bin/sh\n");

    public void Dispose() => _dir.Dispose();

    private EventFormat Everything => new()
    {
        PasswdFile = _dir.File("passwd"),
        ProcessCredentials = true,
        Ancestors = AncestorEvents.Base | AncestorEvents.Kprobe | AncestorEvents.Tracepoint | AncestorEvents.Lsm | AncestorEvents.Loader,
        ClusterName = "prod",
        NodeLabels = EventFormat.ParseLabels("zone=a"),
    };

    private static ProcessInfo Proc(int pid, string? parent, PodInfo? pod = null, string? unattributed = null)
    {
        var p = new ProcessInfo
        {
            ExecId = ExecId.Make("n1", (ulong)pid * 1000, pid), Pid = pid, Tid = pid, StartTime = 1_000_000_123, Ktime = 1_000_000_123,
            Binary = "/usr/bin/cat", Args = ["cat", "a b", ""], Cwd = "/", Creds = new Credentials(1000, 0, 100, 0) { Suid = 0, Fsuid = 0 },
            Caps = new Capabilities(~0UL, 1UL << 21, 0), ParentExecId = parent, Origin = ProcessOrigin.Exec, Auid = uint.MaxValue, Unattributed = unattributed,
            Nspid = 1, Environment = [new("PATH", "/usr/bin"), new("EMPTY", ""), new("invalid", "NOEQUALS")],
        };
        p.Pod = pod;
        return p;
    }

    private static readonly PodInfo Pod = new("default", "web-1", "u-1", new Dictionary<string, string> { ["app"] = "web" }, "web", "Deployment",
        new ContainerInfo("containerd://abc", "nginx", "nginx:1.27", "sha256:01") { StartedAt = "2026-11-22T06:10:00Z", Privileged = true })
    {
        Annotations = new Dictionary<string, string> { ["team"] = "payments" },
    };

    private static readonly ProcessInfo Init = Proc(1, null), Shell = Proc(10, Init.ExecId), Cat = Proc(20, Shell.ExecId, Pod);

    private static ProcessInfo? ParentOf(ProcessInfo p) => p.ParentExecId == Shell.ExecId ? Shell : p.ParentExecId == Init.ExecId ? Init : null;

    private string Render(AgentEvent e, EventFormat? format = null) =>
        Encoding.UTF8.GetString(new JsonEventFormatter("n1", new BootClock(1_700_000_000_000_000_000), format ?? Everything, parentOf: ParentOf).Render(e));

    private static PolicyMatchEvent Match(HookKind kind, string name)
    {
        byte[] unix = [1, 0, 0, .. "abstract"u8, 0], inet6 = [10, 0, 0, 80, 0, 0, 0, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        var args = new ArgPlan[]
        {
            new(0, 0, "int", ArgType.Int, 0, 4, "n"), new(1, 1, "uint32", ArgType.UInt, 0, 4, null), new(2, 2, "long", ArgType.Int, 0, 8, null),
            new(3, 3, "size_t", ArgType.UInt, 0, 8, null), new(4, 4, "syscall64", ArgType.UInt, 0, 8, null), new(5, 5, "char_buf", ArgType.String, 0, 8, null),
            new(6, 6, "string", ArgType.String, 0, 8, null), new(7, 7, "sockaddr", ArgType.SockAddr, 0, 8, null), new(8, 8, "sockaddr", ArgType.KSockAddr, 0, 8, null),
            new(9, 9, "file", ArgType.File, 0, 8, null), new(10, 10, "path", ArgType.Path, 0, 8, null), new(11, 11, "linux_binprm", ArgType.Bprm, 0, 8, null),
            new(12, 12, "fd", ArgType.Fd, 0, 4, null),
        };
        var hook = new HookPlan(kind, Mechanism.Tracepoint, "t", name, "", args, [], "a message", ["tag"]);
        ulong[] ints = [unchecked((ulong)-1L), 7, unchecked((ulong)long.MinValue), ulong.MaxValue, 0x80000000 | 3, 0, 0, 0, 0, 0x81a4, 0x43ff | (ulong)PolicyWire.FileInfo.Unresolved, 0x89ed, 9];
        byte[][] strings = [[], [], [], [], [], [0xde, 0xad, 0xbe, 0xef], "s"u8.ToArray(), unix, inet6, "/f"u8.ToArray(), "/p"u8.ToArray(), "/b"u8.ToArray(), []];
        return new PolicyMatchEvent(2_000_000_001, Cat, Shell, "p1", hook, "KPROBE_ACTION_SIGKILL", true, true, false, "kernel", PolicyArgs.Render(hook, ints, strings));
    }

    [TetragonProtoFact]
    public void Exec_and_exit_events_with_every_opt_in_field_are_exactly_what_protojson_writes()
    {
        TetragonProtos.AssertTetragonLine(Render(new ProcessExecEvent(2_000_000_000, Cat, Shell)));
        TetragonProtos.AssertTetragonLine(Render(new ProcessExitEvent(3_000_000_000, Cat, Shell, 0, 9)));
        TetragonProtos.AssertTetragonLine(Render(new ProcessExitEvent(3_000_000_000, Proc(30, null, unattributed: "gone"), null, 3, 0)));
    }

    [TetragonProtoFact]
    public void Policy_events_of_each_hook_kind_with_every_argument_kind_are_exactly_what_protojson_writes()
    {
        TetragonProtos.AssertTetragonLine(Render(Match(HookKind.Kprobe, "__x64_sys_write")));
        TetragonProtos.AssertTetragonLine(Render(Match(HookKind.Tracepoint, "syscalls/sys_enter_write")));
        TetragonProtos.AssertTetragonLine(Render(Match(HookKind.LsmHook, "file_open")));
    }

    [TetragonProtoFact]
    public void A_loader_event_is_exactly_what_protojson_writes()
    {
        TetragonProtos.AssertTetragonLine(Render(new ProcessLoaderEvent(2_000_000_002, Cat, Shell, "/usr/lib/libz.so.1", Convert.FromHexString("00ff10203040506070809a0b0c0d0e0f10111213"))));
    }

    [TetragonProtoFact]
    public void The_rate_limit_notice_is_exactly_what_protojson_writes()
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new System.Text.Json.Utf8JsonWriter(buffer))
            new JsonEventFormatter("n1", new BootClock(0), Everything).WriteRateLimitInfo(w, 12, 5);
        TetragonProtos.AssertTetragonLine(Encoding.UTF8.GetString(buffer.WrittenSpan));
    }

    [TetragonProtoFact]
    public void The_extension_object_is_refused_by_a_strict_parser_which_is_why_it_is_opt_in()
    {
        var line = Render(Match(HookKind.Kprobe, "f"), Everything with { Extensions = true });
        var e = Assert.ThrowsAny<Exception>(() => TetragonProtos.Parse(line));
        Assert.Contains(JsonEventFormatter.Extension, e.Message);
    }

    [TetragonProtoFact]
    public void The_check_catches_what_a_lenient_parser_would_let_through()
    {
        // protojson parsers accept a 64-bit number unquoted and any count of fractional digits; what Tetragon writes differs.
        Assert.Contains("protojson writes \"12\"", Assert.ThrowsAny<Exception>(() =>
            TetragonProtos.AssertTetragonLine("""{"rate_limit_info":{"number_of_dropped_process_events":12},"node_name":"n","time":"2026-01-01T00:00:00Z"}""")).Message);
        Assert.Contains("2026-01-01T00:00:00.100Z", Assert.ThrowsAny<Exception>(() =>
            TetragonProtos.AssertTetragonLine("""{"rate_limit_info":{},"node_name":"n","time":"2026-01-01T00:00:00.100000000Z"}""")).Message);
        Assert.ThrowsAny<Exception>(() => TetragonProtos.AssertTetragonLine("""{"process_kprobe":{"args":[{"syscall_id":59}]},"node_name":"n"}"""));
    }
}
