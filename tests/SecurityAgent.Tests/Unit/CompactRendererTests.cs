using SecurityAgent.Export.Compact;
using System.Buffers;
using System.Text;
using SecurityAgent.Cli;

namespace SecurityAgent.Tests.Unit;

/// <summary>Compact lines of events recorded from the agent on this machine (parents trimmed; the pod object of
/// the last one is the agent's, from a pod test).</summary>
public class CompactRendererTests
{
    private const string Exec = """{"process_exec":{"process":{"exec_id":"dm06MTE5MTc0MDE4NzkwODoyNTMzMA==","pid":25330,"uid":0,"cwd":"/work/wt/cli","binary":"/usr/bin/grep","arguments":"-q \"Agent ready\" /tmp/cli-rec/stderr","flags":"execve","start_time":"2026-11-22T06:05:09.693350859Z","auid":4294967295,"parent_exec_id":"dm06MTE5MTE3MDAwMDAwMDoyNTMxMQ==","tid":25330}},"node_name":"vm","time":"2026-11-22T06:05:09.700951271Z"}""";
    private const string ExitKilled = """{"process_exit":{"process":{"exec_id":"dm06MTE5NTE1Mzc1MjkwNDoyNTM1NA==","pid":25354,"uid":0,"cwd":"/work/wt/cli","binary":"/usr/bin/bash","arguments":"-c \"\nsleep 5 & sp=$!; kill -9 $sp\"","flags":"clone","start_time":"2026-11-22T06:05:13.114516267Z","auid":4294967295,"parent_exec_id":"dm06MTE5MTE3MDAwMDAwMDoyNTMxMQ==","tid":25354},"status":0,"signal":"SIGKILL","time":"2026-11-22T06:05:13.124004662Z"},"node_name":"vm","time":"2026-11-22T06:05:13.124004662Z"}""";
    private const string MonitorRead = """{"process_kprobe":{"process":{"exec_id":"dm06MTE5NDQ2NjE5NDkwMDoyNTM0Mw==","pid":25343,"uid":0,"cwd":"/work/wt/cli","binary":"/usr/bin/cat","arguments":"/etc/shadow","flags":"execve","start_time":"2026-11-22T06:05:12.420542023Z","auid":4294967295,"parent_exec_id":"dm06MTE5MTE3MDAwMDAwMDoyNTMxMQ==","tid":25343},"function_name":"__x64_sys_openat","args":[{"string_arg":"/etc/shadow","label":"path"}],"action":"KPROBE_ACTION_POST","policy_name":"sensitive-file-reads","policy_mode":"monitor","enforced":false,"decided_by":"kernel"},"node_name":"vm","time":"2026-11-22T06:05:12.429802464Z"}""";
    private const string Killed = """{"process_tracepoint":{"process":{"exec_id":"dm06Mzc4NzMyNTE3MzM1MDoyODk0","pid":2894,"uid":0,"cwd":"/work/wt/cli","binary":"/tmp/cli-rec2/victim-cat","arguments":"/tmp/cli-rec2/secret","flags":"execve","start_time":"2026-11-22T06:48:25.277680933Z","auid":4294967295,"parent_exec_id":"dm06Mzc3OTgxMDAwMDAwMDoyNzQw","tid":2894},"subsys":"syscalls","event":"sys_enter_openat","args":[{"string_arg":"/tmp/cli-rec2/secret"}],"action":"KPROBE_ACTION_SIGKILL","policy_name":"block-secret","policy_mode":"enforce","enforced":true,"decided_by":"kernel"},"node_name":"vm","time":"2026-11-22T06:48:25.289064434Z"}""";
    private const string Denied = """{"process_lsm":{"process":{"exec_id":"dm06Mzc4NzM0NzIxMDgwNDoyODk2","pid":2896,"uid":0,"cwd":"/work/wt/cli","binary":"/tmp/cli-rec2/victim-bash","arguments":"-c \"exec 3<>/dev/tcp/127.0.0.1/9\"","flags":"execve","start_time":"2026-11-22T06:48:25.298022150Z","auid":4294967295,"parent_exec_id":"dm06Mzc3OTgxMDAwMDAwMDoyNzQw","tid":2896},"function_name":"socket_connect","args":[{"sockaddr_arg":{"family":"AF_INET","addr":"127.0.0.1","port":9}}],"action":"KPROBE_ACTION_OVERRIDE","policy_name":"deny-connect","policy_mode":"enforce","enforced":true,"decided_by":"kernel"},"node_name":"vm","time":"2026-11-22T06:48:25.332427788Z"}""";
    private const string InPod = """{"process_exec":{"process":{"exec_id":"dm06MTIzOjQ1","pid":4242,"uid":0,"cwd":"/","binary":"/usr/bin/curl","arguments":"https://ebpf.io","flags":"execve","start_time":"2026-11-22T06:10:00.000000000Z","auid":4294967295,"tid":4242,"docker":"3f1e2d","pod":{"namespace":"default","name":"xwing","uid":"a1b2","container":{"id":"containerd://3f1e2d","name":"spaceship","image":{"id":"sha256:01","name":"docker.io/tgraf/netperf:latest"}},"pod_labels":{"app":"xwing"},"workload":"xwing","workload_kind":"Deployment"}}},"node_name":"vm","time":"2026-11-22T06:10:00.100000000Z"}""";

    private static readonly CompactStyle Plain = new(Color: false, Timestamps: false);

    [Theory]
    [InlineData(Exec, "🚀 process vm /usr/bin/grep -q \"Agent ready\" /tmp/cli-rec/stderr")]
    [InlineData(ExitKilled, "💥 exit    vm /usr/bin/bash \"-c \\\"\\nsleep 5 & sp=$!; kill -9 $sp\\\"\" SIGKILL")]
    [InlineData(MonitorRead, "📬 open    vm /usr/bin/cat /etc/shadow  [sensitive-file-reads]")]
    [InlineData(Killed, "📬 open    vm /tmp/cli-rec2/victim-cat /tmp/cli-rec2/secret  killed [block-secret]")]
    [InlineData(Denied, "🔌 connect vm /tmp/cli-rec2/victim-bash 127.0.0.1:9  denied [deny-connect]")]
    [InlineData(InPod, "🚀 process default/xwing /usr/bin/curl https://ebpf.io")]
    public void Each_recorded_event_becomes_one_line_with_verb_place_binary_what_and_decision(string json, string expected) =>
        Assert.Equal(expected, CompactRenderer.Line(json, Plain));

    [Fact]
    public void A_monitor_mode_kill_says_what_it_would_have_done_and_a_refused_kill_says_why()
    {
        Assert.EndsWith("  would kill [block-secret]", CompactRenderer.Line(Killed.Replace("\"policy_mode\":\"enforce\",\"enforced\":true", "\"policy_mode\":\"monitor\",\"enforced\":false"), Plain));
        Assert.EndsWith("  would deny [deny-connect]", CompactRenderer.Line(Denied.Replace("\"policy_mode\":\"enforce\",\"enforced\":true", "\"policy_mode\":\"monitor\",\"enforced\":false"), Plain));
        Assert.EndsWith("  not killed: protected process [block-secret]",
            CompactRenderer.Line(Killed.Replace("\"enforced\":true", "\"enforced\":false,\"safety_refused\":true"), Plain));
    }

    [Fact]
    public void The_decision_is_read_from_the_extension_object_and_a_strict_line_names_only_the_action()
    {
        const string decision = "\"policy_mode\":\"enforce\",\"enforced\":true,\"decided_by\":\"kernel\"";
        Assert.EndsWith("  killed [block-secret]", CompactRenderer.Line(Killed.Replace(decision, "\"securityagent\":{" + decision + "}"), Plain));
        Assert.EndsWith("  kill action [block-secret]", CompactRenderer.Line(Killed.Replace("," + decision, ""), Plain));
    }

    [Fact]
    public void The_verb_column_is_aligned_for_every_kind_of_event()
    {
        var lines = new[] { Exec, ExitKilled, MonitorRead, Denied }.Select(j => CompactRenderer.Line(j, Plain)!).ToList();
        Assert.All(lines, l => Assert.Equal(' ', l[l.IndexOf(' ') + 8])); // emoji, space, verb padded to 7, space
        Assert.Single(lines.Select(l => l.IndexOf(" vm ", StringComparison.Ordinal)).Distinct());
    }

    [Fact]
    public void On_a_terminal_an_enforced_hit_is_bold_red_a_monitor_hit_yellow_and_timestamps_come_first_when_asked()
    {
        var color = new CompactStyle(Color: true, Timestamps: true);
        var kill = CompactRenderer.Line(Killed, color)!;
        Assert.StartsWith("2026-11-22T06:48:25.289064434Z \u001b[1;31m📬 open   \u001b[0m", kill);
        Assert.Contains("\u001b[1;31mkilled \u001b[0m", kill);
        var monitor = CompactRenderer.Line(MonitorRead, color)!;
        Assert.Contains("\u001b[33m[sensitive-file-reads]\u001b[0m", monitor);
        Assert.DoesNotContain("\u001b[", CompactRenderer.Line(Killed, Plain));
    }

    [Fact]
    public void Control_characters_from_an_event_cannot_reach_the_terminal()
    {
        var hostile = Exec.Replace("/usr/bin/grep", "/tmp/x\\u001b]0;owned\\u0007 \\u202egnp.exe");
        var line = CompactRenderer.Line(hostile, new CompactStyle(Color: true, Timestamps: false))!;
        Assert.Contains("\"/tmp/x\\u001b]0;owned\\u0007 \\u202egnp.exe\"", line);
        Assert.DoesNotContain('\u0007', line);
        Assert.DoesNotContain('\u202e', line);
        Assert.DoesNotContain('\u001b', System.Text.RegularExpressions.Regex.Replace(line, @"\u001b\[[0-9;]*m", "")); // only our colours
    }

    [Fact]
    public void The_live_streams_drop_notice_reads_as_a_count_of_events_this_client_lost()
    {
        var line = CompactRenderer.Line("""{"stream_drop_info":{"number_of_dropped_process_events":"340","reason":"this client read the stream too slowly"},"node_name":"vm","time":"t"}""", Plain);
        Assert.Equal("🚦 dropped 340 events dropped: this client read the stream too slowly", line);
    }

    [Fact]
    public void The_renderer_writes_utf8_lines_into_a_buffer_and_refuses_what_is_not_an_event()
    {
        var buffer = new ArrayBufferWriter<byte>();
        Assert.True(CompactRenderer.Render(Encoding.UTF8.GetBytes(Denied), buffer, Plain));
        Assert.True(CompactRenderer.Render(Encoding.UTF8.GetBytes("""{"rate_limit_info":{"number_of_dropped_process_events":12},"node_name":"vm","time":"t"}"""), buffer, Plain));
        Assert.Equal("🔌 connect vm /tmp/cli-rec2/victim-bash 127.0.0.1:9  denied [deny-connect]\n🚦 limit   12 events dropped by the export rate limit\n",
            Encoding.UTF8.GetString(buffer.WrittenSpan));
        Assert.False(CompactRenderer.Render("not json"u8, buffer, Plain));
        Assert.False(CompactRenderer.Render("{\"node_name\":\"vm\"}"u8, buffer, Plain));
        Assert.False(CompactRenderer.Render("{\"process_exec\":{\"process\":"u8, buffer, Plain));
    }

    [Theory]
    [InlineData("__x64_sys_openat", "openat")]
    [InlineData("syscalls/sys_enter_connect", "connect")]
    [InlineData("security_file_open", "file_open")]
    [InlineData("socket_connect", "socket_connect")]
    public void Hook_names_become_the_call_a_person_knows(string hook, string call) => Assert.Equal(call, CompactRenderer.CallName(hook));
}
