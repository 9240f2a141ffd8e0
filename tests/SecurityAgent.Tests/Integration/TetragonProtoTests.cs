using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using SecurityAgent.Tests.Support;
using Xunit.Abstractions;

namespace SecurityAgent.Tests.Integration;

/// <summary>What a Tetragon consumer gets from a real agent: every line the agent writes, under the shipped policies and
/// a test policy that reads each kind of argument, with every opt-in field on, parses strictly with Tetragon's own
/// definitions and is exactly what protojson writes (see <see cref="TetragonProtos"/>).</summary>
[Collection("kernel")]
public class TetragonProtoTests(ITestOutputHelper output)
{
    private static string ArgumentKinds(string name, string perl, string dir) => $"""
        apiVersion: cilium.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: {name}
        spec:
          lists:
          - name: probe-syscalls
            type: syscalls
            values: ["sys_getppid"]
          tracepoints:
          - subsystem: syscalls
            event: sys_enter_write
            args:
            - index: 5
              type: int
            - index: 6
              type: char_buf
            - index: 7
              type: size_t
            selectors:
            - matchBinaries:
              - operator: In
                values: ["{perl}"]
          - subsystem: syscalls
            event: sys_enter_lseek
            args:
            - index: 6
              type: int64
              label: offset
            - index: 7
              type: uint32
              label: whence
            selectors:
            - matchBinaries:
              - operator: In
                values: ["{perl}"]
          - subsystem: syscalls
            event: sys_enter_connect
            args:
            - index: 6
              type: sockaddr
            selectors:
            - matchBinaries:
              - operator: In
                values: ["{perl}"]
          - subsystem: syscalls
            event: sys_enter_bpf
            args:
            - index: 5
              type: bpf_cmd
            selectors:
            - matchBinaries:
              - operator: In
                values: ["{perl}"]
          - subsystem: raw_syscalls
            event: sys_enter
            args:
            - index: 4
              type: syscall64
            selectors:
            - matchArgs:
              - index: 4
                operator: InMap
                values: ["list:probe-syscalls"]
              matchBinaries:
              - operator: In
                values: ["{perl}"]
          kprobes:
          - call: sys_write
            syscall: true
            return: true
            args:
            - index: 0
              type: int
            - index: 1
              type: char_buf
              sizeArgIndex: 3
            - index: 2
              type: size_t
            returnArg:
              index: 0
              type: size_t
            selectors:
            - matchBinaries:
              - operator: In
                values: ["{perl}"]
          - call: sys_openat
            syscall: true
            args:
            - index: 1
              type: string
            - index: 2
              type: int
            selectors:
            - matchArgs:
              - index: 1
                operator: Prefix
                values: ["{dir}"]
              matchBinaries:
              - operator: In
                values: ["{perl}"]
        """;

    [TetragonProtoFact]
    public void Every_line_of_a_real_agent_with_every_opt_in_flag_parses_strictly_as_tetragons_and_is_what_protojson_writes()
    {
        using var dir = new TempDir();
        var perl = dir.CopyBinary("/usr/bin/perl", "proto-probe");
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var policies = Directory.GetFiles(Repo.File_("policies"), "*.yaml").ToDictionary(f => Path.GetFileName(f), f => File.ReadAllText(f));
        policies["argument-kinds.yaml"] = ArgumentKinds("argument-kinds", perl, dir.Path);
        string[] flags = ["--enable-process-environment-variables", "--enable-process-cred", "--enable-process-ns", "--enable-ancestors", "base,kprobe,tracepoint,lsm,uprobe,usdt", "--cluster-name", "test-cluster", "--node-labels", "zone=test,tier=ci", "--username-metadata", "unix"];
        using var agent = new AgentProcess(policies, flags);
        Assert.True(agent.WaitForLog("Policy argument-kinds loaded", 30_000), agent.Stderr);

        var longSocket = dir.File(new string('s', 104 - dir.Path.Length)); // past the 26 bytes of a sockaddr_in6's room, within sun_path's 108
        var script = $$"""
            use Socket;
            open(my $f, '>', '{{dir.File("out.bin")}}') or die; syswrite($f, "ab\xfe"); syswrite($f, "x" x 300); sysseek($f, 4096, 0); close($f);
            syscall(321, 5, 0, 0);
            socket(my $u, AF_UNIX, SOCK_STREAM, 0); connect($u, pack_sockaddr_un('{{dir.File("no.sock")}}'));
            socket(my $l, AF_UNIX, SOCK_STREAM, 0); connect($l, pack_sockaddr_un('{{longSocket}}'));
            socket(my $t, AF_INET, SOCK_STREAM, 0); connect($t, pack_sockaddr_in({{port}}, inet_aton('127.0.0.1'))) or die "connect: $!"; close($t);
            syscall(110);
            exit 3;
            """;
        var r = Run.Wait(perl, ["-e", script]);
        Assert.True(r.Code == 3, r.Stderr);

        bool Has(string type, string kind) => agent.Events.All.Any(e => e.TryGetProperty(type, out var b) && b.GetProperty("process").GetProperty("binary").GetString() == perl
            && (kind == "" || b.TryGetProperty("args", out var args) && args.EnumerateArray().Any(a => a.TryGetProperty(kind, out _))));
        string[] wanted = ["process_exec:", "process_exit:", "process_tracepoint:bytes_arg", "process_tracepoint:size_arg", "process_tracepoint:int_arg",
            "process_tracepoint:long_arg", "process_tracepoint:sockaddrun_arg", "process_tracepoint:sockaddr_arg", "process_tracepoint:syscall_id",
            "process_tracepoint:uint_arg", "process_tracepoint:bpf_cmd_arg", "process_kprobe:string_arg", "process_kprobe:bytes_arg",
            "process_kprobe:truncated_bytes_arg", "process_lsm:sockaddr_arg"];
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (wanted.Any(w => !Has(w.Split(':')[0], w.Split(':')[1])) && DateTime.UtcNow < deadline)
            Thread.Sleep(100);
        var missing = wanted.Where(w => !Has(w.Split(':')[0], w.Split(':')[1])).ToList();
        Assert.True(missing.Count == 0, $"no event {string.Join(", ", missing)} from {perl}:\n{string.Join("\n", agent.Events.RawLines.Where(l => l.Contains(perl)))}\n{agent.Stderr}");
        agent.Terminate();
        agent.Events.Read();

        foreach (var line in agent.Events.RawLines)
            TetragonProtos.AssertTetragonLine(line);
        var counts = agent.Events.All.GroupBy(e => e.EnumerateObject().First().Name).ToDictionary(g => g.Key, g => g.Count());
        var kinds = agent.Events.All.SelectMany(e => e.EnumerateObject().First().Value is var b && b.ValueKind == JsonValueKind.Object && b.TryGetProperty("args", out var a)
            ? a.EnumerateArray().Select(x => x.EnumerateObject().First().Name) : []).Distinct().Order();
        output.WriteLine($"{agent.Events.RawLines.Count} lines parsed strictly: {string.Join(", ", counts.Select(c => $"{c.Key} {c.Value}"))}; argument kinds: {string.Join(", ", kinds)}");

        var exec = agent.Events.All.First(e => e.TryGetProperty("process_exec", out var b) && b.GetProperty("process").GetProperty("binary").GetString() == perl);
        Assert.Equal("test-cluster", exec.GetProperty("cluster_name").GetString());
        var body = exec.GetProperty("process_exec");
        Assert.Equal(0u, body.GetProperty("process").GetProperty("process_credentials").GetProperty("euid").GetUInt32());
        Assert.Equal("root", body.GetProperty("process").GetProperty("user").GetProperty("name").GetString());
        Assert.True(body.GetProperty("process").GetProperty("ns").GetProperty("mnt").GetProperty("is_host").GetBoolean());
        Assert.NotEmpty(body.GetProperty("ancestors").EnumerateArray());
        Assert.Contains(body.GetProperty("process").GetProperty("environment_variables").EnumerateArray(), v => v.GetProperty("Key").GetString() == "PATH");
        var unixPaths = agent.Events.All.Where(e => e.TryGetProperty("process_tracepoint", out _)).SelectMany(e => e.GetProperty("process_tracepoint").GetProperty("args").EnumerateArray())
            .Where(a => a.TryGetProperty("sockaddrun_arg", out _)).Select(a => a.GetProperty("sockaddrun_arg").GetProperty("path").GetString()).ToList();
        Assert.Contains(longSocket, unixPaths);
        var write = agent.Events.All.Select(e => e.TryGetProperty("process_tracepoint", out var b) ? b : default)
            .First(b => b.ValueKind == JsonValueKind.Object && b.GetProperty("event").GetString() == "sys_enter_write" && b.GetProperty("process").GetProperty("binary").GetString() == perl);
        // Without sizeArgIndex (refused until the engine reads exactly that many bytes) a char_buf is read up to a NUL.
        var written = Convert.FromBase64String(write.GetProperty("args")[1].GetProperty("bytes_arg").GetString()!);
        Assert.Equal(new byte[] { 0x61, 0x62, 0xfe }, written.Take(3));
        Assert.Equal("""{"size_arg":"3"}""", write.GetProperty("args")[2].GetRawText());
        var cmd = agent.Events.All.Select(e => e.TryGetProperty("process_tracepoint", out var b) ? b : default)
            .First(b => b.ValueKind == JsonValueKind.Object && b.GetProperty("event").GetString() == "sys_enter_bpf" && b.GetProperty("process").GetProperty("binary").GetString() == perl);
        Assert.Equal("""{"bpf_cmd_arg":"BPF_PROG_LOAD"}""", cmd.GetProperty("args")[0].GetRawText());
        var writes = agent.Events.All.Select(e => e.TryGetProperty("process_kprobe", out var b) ? b : default)
            .Where(b => b.ValueKind == JsonValueKind.Object && b.GetProperty("function_name").GetString() == "__x64_sys_write" && b.GetProperty("process").GetProperty("binary").GetString() == perl).ToList();
        var big = writes.First(b => b.GetProperty("args")[1].TryGetProperty("truncated_bytes_arg", out _));
        Assert.Equal("300", big.GetProperty("args")[1].GetProperty("truncated_bytes_arg").GetProperty("orig_size").GetString());
        Assert.Equal("""{"size_arg":"300"}""", big.GetProperty("return").GetRawText());
        Assert.Equal("KPROBE_ACTION_POST", big.GetProperty("return_action").GetString());
        Assert.NotEmpty(big.GetProperty("ancestors").EnumerateArray());
        var exit = agent.Events.All.First(e => e.TryGetProperty("process_exit", out var b) && b.GetProperty("process").GetProperty("binary").GetString() == perl);
        Assert.Equal(3, exit.GetProperty("process_exit").GetProperty("status").GetInt32());
    }
}
