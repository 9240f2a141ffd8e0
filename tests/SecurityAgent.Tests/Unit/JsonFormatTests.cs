using System.Text;
using System.Text.Json;
using NJsonSchema;
using SecurityAgent.Events;
using SecurityAgent.Export;
using SecurityAgent.Kernel;
using SecurityAgent.Policies;
using SecurityAgent.Processes;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Unit;

public class JsonFormatTests
{
    internal static readonly Lazy<JsonSchema> Schema = new(() => JsonSchema.FromFileAsync(Repo.File_("schemas", "events.schema.json")).GetAwaiter().GetResult());

    internal static void AssertValid(string line)
    {
        var errors = Schema.Value.Validate(line);
        Assert.True(errors.Count == 0, $"schema errors: {string.Join("; ", errors.Select(e => e.Path + ": " + e.Kind))}\n{line}");
    }

    internal static ProcessInfo Proc(int pid, string? parent, Wire.ExecFlags flags = 0) => new()
    {
        ExecId = ExecId.Make("n1", 1000, pid), Pid = pid, Tid = pid, StartTime = 1_000_000_000, Ktime = 1_000_000_000,
        Binary = "/usr/bin/cat", Args = ["cat", "/etc/passwd"], Cwd = "/tmp", Creds = new Credentials(1000, 1000, 100, 100),
        Caps = new Capabilities(1UL << 21, 0, 0), ParentExecId = parent, Origin = ProcessOrigin.Exec, Flags = flags,
    };

    internal static string Render(AgentEvent e, bool credentials = true) => Render(e, new EventFormat { ProcessCredentials = credentials });

    private static string Render(AgentEvent e, EventFormat format, Func<ProcessInfo, ProcessInfo?>? parentOf = null) =>
        Encoding.UTF8.GetString(new JsonEventFormatter("n1", new BootClock(1_700_000_000_000_000_000), format, parentOf: parentOf).Render(e));

    internal static ArgPlan Arg(int slot, string type, ArgType kernelType, int size = 8, string? label = null) => new(slot, slot, type, kernelType, 0, size, label);

    internal static PolicyMatchEvent Match(HookKind kind, string name, IReadOnlyList<ArgPlan> args, ulong[] ints, byte[][] strings, bool enforce = true, bool enforced = true,
        ProcessInfo? process = null)
    {
        var hook = new HookPlan(kind, Mechanism.Tracepoint, "syscalls/sys_enter_x", name, "", args, [], "watch", ["t1"]);
        return new PolicyMatchEvent(3_000_000_000, process ?? Proc(20, null), null, "p1", hook, "KPROBE_ACTION_SIGKILL", enforce, enforced, SafetyRefused: false, "kernel",
            PolicyArgs.Render(hook, ints, strings));
    }

    internal static string ArgsJson(string line, string type) =>
        JsonDocument.Parse(line).RootElement.GetProperty(type).GetProperty("args").GetRawText();

    [Fact]
    public void A_policy_event_of_a_thread_carries_the_threads_tid_and_the_leaders_pid_and_the_process_stays_the_leaders_elsewhere()
    {
        var p = Proc(20, null);
        var f = new JsonEventFormatter("n1", new BootClock(1_700_000_000_000_000_000), new EventFormat { ProcessCredentials = true });
        JsonElement Process(AgentEvent e, string type) => JsonDocument.Parse(Encoding.UTF8.GetString(f.Render(e))).RootElement.GetProperty(type).GetProperty("process");

        var byThread = Match(HookKind.Tracepoint, "syscalls/sys_enter_openat", [], [], [], process: p) with { Tid = 12345 };
        var thread = Process(byThread, "process_tracepoint");
        Assert.Equal((20, 12345), (thread.GetProperty("pid").GetInt32(), thread.GetProperty("tid").GetInt32()));
        AssertValid(Encoding.UTF8.GetString(f.Render(byThread)));
        var byLeader = Match(HookKind.Kprobe, "__x64_sys_openat", [], [], [], process: p) with { Tid = 20 };
        Assert.Equal(20, Process(byLeader, "process_kprobe").GetProperty("tid").GetInt32());
        // The process's own rendering (its exec, and as a parent) keeps the leader's tid.
        var exec = Process(new ProcessExecEvent(1, p, null), "process_exec");
        Assert.Equal((20, 20), (exec.GetProperty("pid").GetInt32(), exec.GetProperty("tid").GetInt32()));
        Assert.Equal(thread.GetRawText().Replace("\"tid\":12345", "\"tid\":20"), exec.GetRawText());
    }

    [Fact]
    public void An_exec_event_has_tetragons_shape_and_validates_against_the_schema()
    {
        var line = Render(new ProcessExecEvent(2_000_000_000, Proc(20, ExecId.Make("n1", 1, 10)), Proc(10, null)));
        AssertValid(line);
        var root = JsonDocument.Parse(line).RootElement;
        var p = root.GetProperty("process_exec").GetProperty("process");
        Assert.Equal("/usr/bin/cat", p.GetProperty("binary").GetString());
        Assert.Equal("/etc/passwd", p.GetProperty("arguments").GetString());
        Assert.Equal(["CAP_SYS_ADMIN"], p.GetProperty("cap").GetProperty("permitted").EnumerateArray().Select(x => x.GetString()));
        Assert.Equal("n1", root.GetProperty("node_name").GetString());
        Assert.Equal("2023-11-14T22:13:22Z", root.GetProperty("time").GetString());
    }

    [Fact]
    public void In_init_tree_is_always_a_boolean_and_a_flag_when_the_kernel_set_it()
    {
        var inTree = Proc(20, null, Wire.ExecFlags.InInitTree);
        var p = JsonDocument.Parse(Render(new ProcessExecEvent(2_000_000_000, inTree, null))).RootElement.GetProperty("process_exec").GetProperty("process");
        Assert.True(p.GetProperty("in_init_tree").GetBoolean());
        Assert.Equal("execve inInitTree", p.GetProperty("flags").GetString());
        var line = Render(new ProcessExecEvent(2_000_000_000, Proc(21, null), null));
        AssertValid(line);
        p = JsonDocument.Parse(line).RootElement.GetProperty("process_exec").GetProperty("process");
        Assert.False(p.GetProperty("in_init_tree").GetBoolean());
        Assert.Equal("execve", p.GetProperty("flags").GetString());
    }

    [Fact]
    public void Credentials_and_capabilities_are_only_rendered_when_asked_for_as_in_tetragon()
    {
        var line = Render(new ProcessExecEvent(2_000_000_000, Proc(20, null), null), credentials: false);
        AssertValid(line);
        var p = JsonDocument.Parse(line).RootElement.GetProperty("process_exec").GetProperty("process");
        Assert.False(p.TryGetProperty("cap", out _));
        Assert.False(p.TryGetProperty("process_credentials", out _));
        Assert.Equal(1000, p.GetProperty("uid").GetInt32());
    }

    [Fact]
    public void An_exit_by_signal_names_the_signal()
    {
        var line = Render(new ProcessExitEvent(2_000_000_000, Proc(20, null), null, 0, 9));
        AssertValid(line);
        var exit = JsonDocument.Parse(line).RootElement.GetProperty("process_exit");
        Assert.Equal("SIGKILL", exit.GetProperty("signal").GetString());
        Assert.Equal(0, exit.GetProperty("status").GetInt32());
    }

    [Fact]
    public void Each_argument_kind_has_tetragons_protojson_encoding()
    {
        byte[] unix = [1, 0, .. "/run/x.sock"u8, 0, 0], inet = [2, 0, 0x01, 0xbb, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        var e = Match(HookKind.Kprobe, "__x64_sys_write",
            [
                Arg(0, "int", ArgType.Int, 4), Arg(1, "uint32", ArgType.UInt, 4), Arg(2, "int64", ArgType.Int), Arg(3, "size_t", ArgType.UInt),
                Arg(4, "syscall64", ArgType.UInt), Arg(5, "char_buf", ArgType.String, label: "buf"), Arg(6, "string", ArgType.String),
                Arg(7, "sockaddr", ArgType.SockAddr), Arg(8, "sockaddr", ArgType.KSockAddr), Arg(9, "file", ArgType.File), Arg(10, "fd", ArgType.Fd, 4),
                Arg(11, "syscall64", ArgType.UInt),
            ],
            [unchecked((ulong)-100L), 4_000_000_000, unchecked((ulong)-5L), ulong.MaxValue, 59, 0, 0, 0, 0, 0, 3, 0x80000000 | 11],
            [[], [], [], [], [], [0, 1, 0xff], "/etc/passwd"u8.ToArray(), unix, inet, "/etc/shadow"u8.ToArray(), [], []]);
        var line = Render(e, EventFormat.Default);
        AssertValid(line);
        Assert.Equal("""
            [{"int_arg":-100},{"uint_arg":4000000000},{"long_arg":"-5"},{"size_arg":"18446744073709551615"},{"syscall_id":{"id":59,"abi":"x64"}},{"bytes_arg":"AAH/","label":"buf"},{"string_arg":"/etc/passwd"},{"sockaddrun_arg":{"family":"AF_UNIX","path":"/run/x.sock"}},{"sockaddr_arg":{"family":"AF_INET","addr":"10.0.0.1","port":443}},{"file_arg":{"path":"/etc/shadow"}},{"int_arg":3},{"syscall_id":{"id":11,"abi":"i386"}}]
            """, ArgsJson(line, "process_kprobe"));
    }

    [Fact]
    public void A_node_name_and_a_path_that_json_escapes_come_out_escaped_in_every_event_and_an_argument_changed_after_rendering_shows_its_new_value()
    {
        var formatter = new JsonEventFormatter("node \"α\"\\1", new BootClock(1_700_000_000_000_000_000));
        var path = "/tmp/sa-escape-\"q\"\\b\u0001-é-\u2028/f";
        PolicyMatchEvent Open() => Match(HookKind.Kprobe, "__x64_sys_openat", [Arg(0, "string", ArgType.String)], [0], [Encoding.UTF8.GetBytes(path)]);
        // The first event of the path renders its string; the next ones copy the bytes kept with the name.
        var lines = Enumerable.Range(0, 3).Select(_ => Encoding.UTF8.GetString(formatter.Render(Open()))).ToList();
        foreach (var line in lines)
        {
            AssertValid(line);
            var root = JsonDocument.Parse(line).RootElement;
            Assert.Equal("node \"α\"\\1", root.GetProperty("node_name").GetString());
            Assert.Equal("2023-11-14T22:13:23Z", root.GetProperty("time").GetString());
            Assert.Equal(path, root.GetProperty("process_kprobe").GetProperty("args")[0].GetProperty("string_arg").GetString());
            Assert.Equal(lines[0], line);
        }
        var changed = Open() is var e ? e with { Args = [e.Args[0] with { Value = "/redacted" }] } : null;
        var redacted = JsonDocument.Parse(Encoding.UTF8.GetString(formatter.Render(changed!))).RootElement;
        Assert.Equal("/redacted", redacted.GetProperty("process_kprobe").GetProperty("args")[0].GetProperty("string_arg").GetString());
    }

    [Fact]
    public void A_plain_policy_event_written_directly_is_byte_for_byte_what_the_json_writer_writes()
    {
        var formatter = new JsonEventFormatter("node \"α\"", new BootClock(1_700_000_000_000_000_000));
        var parent = Proc(10, null);
        var child = Proc(20, parent.ExecId);
        byte[] inet = [2, 0, 0x01, 0xbb, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        var longPath = "/tmp/" + new string('d', 300) + "/f";
        IEnumerable<PolicyMatchEvent> Events()
        {
            foreach (var kind in new[] { HookKind.Kprobe, HookKind.LsmHook, HookKind.Tracepoint })
            foreach (var (tid, withParent) in new[] { (0, true), (20, false), (21, true) })
            foreach (var plain in new[] { true, false })
            foreach (var every in new[] { true, false })
                yield return Match(kind, kind == HookKind.Tracepoint ? "syscalls/sys_enter_openat" : "__x64_sys_openat",
                    // Kept strings and ints only (the direct path), or every kind of argument.
                    every
                        ? [Arg(0, "int", ArgType.Int, 4, label: "dirfd"), Arg(1, "string", ArgType.String, label: "päth"), Arg(2, "string", ArgType.String),
                           Arg(3, "sockaddr", ArgType.SockAddr), Arg(4, "uint32", ArgType.UInt, 4), Arg(5, "file", ArgType.File)]
                        : [Arg(0, "int", ArgType.Int, 4, label: "dirfd"), Arg(1, "string", ArgType.String, label: "päth"), Arg(2, "string", ArgType.String),
                           Arg(3, "int", ArgType.Int, 4)],
                    [unchecked((ulong)-100L), 0, 0, every ? 0 : 2147483648UL, 7, 0],
                    [[], Encoding.UTF8.GetBytes("/etc/\"x\"\\é\u0001"), Encoding.UTF8.GetBytes(every ? longPath : "/tmp/f"), inet, [], "/etc/shadow"u8.ToArray()],
                    process: child) is var e ? e with { Parent = withParent ? parent : null, Tid = tid, Hook = plain ? e.Hook with { Message = null, Tags = [] } : e.Hook } : null!;
        }
        int n = 0;
        foreach (var e in Events())
        {
            var direct = Encoding.UTF8.GetString(formatter.Render(e));
            Assert.Equal(Encoding.UTF8.GetString(formatter.RenderWithWriter(e)), direct);
            AssertValid(direct);
            n++;
        }
        Assert.Equal(36, n);
    }

    [Fact]
    public void Rendering_a_policy_event_of_a_known_process_allocates_nothing()
    {
        var formatter = new JsonEventFormatter("n1", new BootClock(1_700_000_000_000_000_000));
        var events = Enumerable.Range(0, 64).Select(_ => Match(HookKind.Tracepoint, "syscalls/sys_enter_openat",
            [Arg(0, "int", ArgType.Int, 4), Arg(1, "string", ArgType.String), Arg(2, "size_t", ArgType.UInt), Arg(3, "syscall64", ArgType.UInt)],
            [1, 0, 4096, 257], [[], "/etc/passwd"u8.ToArray(), [], []])).ToArray();
        foreach (var e in events) formatter.Render(e); // the process's JSON is rendered once, then reused
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int round = 0; round < 10; round++)
            foreach (var e in events) formatter.Render(e);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void A_policy_event_carries_only_tetragons_fields_unless_extensions_are_asked_for()
    {
        var e = Match(HookKind.Tracepoint, "syscalls/sys_enter_openat", [Arg(0, "string", ArgType.String)], [0], ["/etc/shadow"u8.ToArray()], enforce: false, enforced: false);
        var plain = JsonDocument.Parse(Render(e, EventFormat.Default)).RootElement.GetProperty("process_tracepoint");
        Assert.Equal(["process", "subsys", "event", "args", "action", "policy_name", "message", "tags"], plain.EnumerateObject().Select(p => p.Name));

        var line = Render(e, new EventFormat { Extensions = true });
        AssertValid(line);
        var ext = JsonDocument.Parse(line).RootElement.GetProperty("process_tracepoint").GetProperty(JsonEventFormatter.Extension);
        Assert.Equal("""{"policy_mode":"monitor","enforced":false,"decided_by":"kernel"}""", ext.GetRawText());
    }

    [Fact]
    public void A_match_on_the_object_the_kernel_looked_up_at_exit_says_so_in_the_extension_only()
    {
        var e = Match(HookKind.Tracepoint, "syscalls/sys_enter_openat", [Arg(0, "string", ArgType.String)], [0], ["/etc/shadow"u8.ToArray()], enforce: false, enforced: false)
            with { MatchedAtExit = true };
        Assert.DoesNotContain("matched_at_exit", Render(e, EventFormat.Default));
        var ext = JsonDocument.Parse(Render(e, new EventFormat { Extensions = true })).RootElement.GetProperty("process_tracepoint").GetProperty(JsonEventFormatter.Extension);
        Assert.True(ext.GetProperty("matched_at_exit").GetBoolean());
    }

    [Fact]
    public void An_abstract_unix_address_is_shown_with_an_at_sign()
    {
        byte[] raw = [1, 0, 0, .. "dbus-x"u8, 0, 0, 0];
        Assert.Equal(new UnixSockAddr("AF_UNIX", "@dbus-x"), PolicyArgs.UnixOf(raw));
    }

    [Fact]
    public void An_unattributed_process_is_flagged_unknown_and_says_why_only_in_the_extension()
    {
        var stub = new ProcessInfo
        {
            ExecId = ExecId.Make("n1", 0, 77), Pid = 77, StartTime = 0, Ktime = 0, Binary = "", Args = [], Cwd = "", Creds = new Credentials(0, 0, 0, 0),
            Origin = ProcessOrigin.Clone, Unattributed = "gone",
        };
        var e = new ProcessExitEvent(2_000_000_000, stub, null, 0, 0);
        var plain = JsonDocument.Parse(Render(e, EventFormat.Default)).RootElement.GetProperty("process_exit");
        Assert.Equal("clone unknown", plain.GetProperty("process").GetProperty("flags").GetString());
        Assert.False(plain.TryGetProperty(JsonEventFormatter.Extension, out _));
        var ext = JsonDocument.Parse(Render(e, new EventFormat { Extensions = true })).RootElement.GetProperty("process_exit").GetProperty(JsonEventFormatter.Extension);
        Assert.Equal("gone", ext.GetProperty("process_unattributed").GetString());
    }

    [Fact]
    public void Credentials_are_tetragons_full_set_with_saved_and_filesystem_ids_as_exec_leaves_them()
    {
        var p = Proc(20, null);
        var creds = JsonDocument.Parse(Render(new ProcessExecEvent(2_000_000_000, p, null), EventFormat.Default with { ProcessCredentials = true })).RootElement
            .GetProperty("process_exec").GetProperty("process").GetProperty("process_credentials");
        Assert.Equal("""{"uid":1000,"gid":100,"euid":1000,"egid":100,"suid":1000,"sgid":100,"fsuid":1000,"fsgid":100,"caps":{"permitted":["CAP_SYS_ADMIN"]}}""", creds.GetRawText());
    }

    [Fact]
    public void Ancestors_list_the_parents_parent_up_to_pid_1_for_the_event_types_asked_for()
    {
        ProcessInfo init = Proc(1, null), shell = Proc(10, init.ExecId), make = Proc(15, shell.ExecId), cat = Proc(20, make.ExecId);
        var byId = new[] { init, shell, make, cat }.ToDictionary(p => p.ExecId);
        ProcessInfo? ParentOf(ProcessInfo p) => p.ParentExecId is { } id ? byId.GetValueOrDefault(id) : null;
        var exec = new ProcessExecEvent(2_000_000_000, cat, make);
        var line = Render(exec, new EventFormat { Ancestors = AncestorEvents.Base }, ParentOf);
        AssertValid(line);
        var ancestors = JsonDocument.Parse(line).RootElement.GetProperty("process_exec").GetProperty("ancestors");
        Assert.Equal([10, 1], ancestors.EnumerateArray().Select(a => a.GetProperty("pid").GetInt32()));

        var hit = Match(HookKind.Kprobe, "f", [], [], [], process: cat) with { Parent = make };
        Assert.False(JsonDocument.Parse(Render(hit, new EventFormat { Ancestors = AncestorEvents.Base }, ParentOf)).RootElement.GetProperty("process_kprobe").TryGetProperty("ancestors", out _));
        Assert.True(JsonDocument.Parse(Render(hit, new EventFormat { Ancestors = AncestorEvents.Base | AncestorEvents.Kprobe }, ParentOf)).RootElement.GetProperty("process_kprobe").TryGetProperty("ancestors", out _));
    }

    [Fact]
    public void Host_processes_are_named_from_the_passwd_file_and_a_changed_file_is_read_again()
    {
        using var dir = new TempDir();
        var passwd = dir.File("passwd");
        File.WriteAllText(passwd, "root:x:0:0::/root:/bin/sh\nalice:x:1000:100::/home/alice:/bin/sh\n");
        var format = new EventFormat { PasswdFile = passwd };
        var host = JsonDocument.Parse(Render(new ProcessExecEvent(2_000_000_000, Proc(20, null), null), format)).RootElement.GetProperty("process_exec").GetProperty("process");
        Assert.Equal("""{"name":"alice"}""", host.GetProperty("user").GetRawText());

        var contained = Proc(21, null);
        contained.Container = new Containers.ContainerRef("c1", null, "containerd");
        var inContainer = JsonDocument.Parse(Render(new ProcessExecEvent(2_000_000_000, contained, null), format)).RootElement.GetProperty("process_exec").GetProperty("process");
        Assert.False(inContainer.TryGetProperty("user", out _)); // its uid means nothing in the host's passwd file

        var names = new UserNames(passwd);
        Assert.Equal("alice", names.Name(1000));
        File.WriteAllText(passwd, "bob:x:1000:100::/home/bob:/bin/sh\n");
        File.SetLastWriteTimeUtc(passwd, DateTime.UtcNow.AddMinutes(1));
        Assert.Equal("alice", names.Name(1000)); // looked at again only after a while, not per event
        Assert.Null(new UserNames(dir.File("missing")).Name(0));
    }

    [Fact]
    public void Cluster_name_and_node_labels_are_top_level_fields_when_set()
    {
        var format = new EventFormat { ClusterName = "prod", NodeLabels = EventFormat.ParseLabels("zone=a,role=edge") };
        var line = Render(new ProcessExecEvent(2_000_000_000, Proc(20, null), null), format);
        AssertValid(line);
        var root = JsonDocument.Parse(line).RootElement;
        Assert.Equal("prod", root.GetProperty("cluster_name").GetString());
        Assert.Equal("""{"zone":"a","role":"edge"}""", root.GetProperty("node_labels").GetRawText());
    }

    [Fact]
    public void Bad_ancestor_types_and_labels_are_refused_with_the_offending_text()
    {
        Assert.Equal(AncestorEvents.Base | AncestorEvents.Lsm | AncestorEvents.Uprobe, EventFormat.ParseAncestors("base, lsm,uprobe"));
        Assert.Contains("'kprobes'", Assert.Throws<FormatException>(() => EventFormat.ParseAncestors("base,kprobes")).Message);
        Assert.Contains("'zone'", Assert.Throws<FormatException>(() => EventFormat.ParseLabels("zone")).Message);
    }

    [Theory]
    [InlineData(0L, "2023-11-14T22:13:20Z")]
    [InlineData(5_000_000L, "2023-11-14T22:13:20.005Z")]
    [InlineData(5_000L, "2023-11-14T22:13:20.000005Z")]
    [InlineData(123_456_789L, "2023-11-14T22:13:20.123456789Z")]
    public void Timestamps_have_the_fractional_digits_protojson_writes(long nanos, string expected)
    {
        var line = Render(new ProcessExecEvent((ulong)nanos, Proc(20, null), null), EventFormat.Default);
        Assert.Equal(expected, JsonDocument.Parse(line).RootElement.GetProperty("time").GetString());
    }

    [Fact]
    public void The_schema_rejects_an_event_without_a_type()
    {
        Assert.NotEmpty(Schema.Value.Validate("""{"node_name":"n","time":"2023-11-14T22:13:22.000000000Z"}"""));
    }
}
