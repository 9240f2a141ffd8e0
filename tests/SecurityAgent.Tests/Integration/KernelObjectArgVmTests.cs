using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using SecurityAgent.Kernel;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>Kernel objects as kprobe arguments (sock, cred), end to end through the real agent in a kernel with kprobes
/// (the VM lane): the in-kernel operators on them, and their events as Tetragon renders them. Every policy is scoped to a
/// binary the test copied into its own directory.</summary>
[Collection("kernel")]
public class KernelObjectArgVmTests
{
    private static IEnumerable<JsonElement> Events(AgentProcess agent, string policy) =>
        agent.Events.RawLines.Where(l => l.Contains(policy)).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(e => e.TryGetProperty("process_kprobe", out var k) && k.GetProperty("policy_name").GetString() == policy)
            .Select(e => e.GetProperty("process_kprobe"));

    private static JsonElement WaitFor(AgentProcess agent, string policy, Func<JsonElement, bool> also) =>
        agent.Events.WaitFor(e => e.TryGetProperty("process_kprobe", out var k) && k.GetProperty("policy_name").GetString() == policy && also(k),
            $"process_kprobe of {policy}", TimeSpan.FromSeconds(30)).GetProperty("process_kprobe");

    [RequiresKernel(Mechanism.Kprobe)]
    public void A_tcp_connect_kprobe_with_dport_and_daddr_operators_reports_the_sock_of_a_connect_to_that_port_only()
    {
        using var dir = new TempDir();
        var bash = dir.CopyBinary("/usr/bin/bash", "kargs-bash");
        using var watched = new TcpListener(IPAddress.Loopback, 0);
        using var other = new TcpListener(IPAddress.Loopback, 0);
        watched.Start();
        other.Start();
        int port = ((IPEndPoint)watched.LocalEndpoint).Port, otherPort = ((IPEndPoint)other.LocalEndpoint).Port;
        var policy = $"""
            apiVersion: cilium.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: kargs-tcp-connect
            spec:
              kprobes:
              - call: tcp_connect
                syscall: false
                args:
                - index: 0
                  type: sock
                selectors:
                - matchBinaries:
                  - operator: In
                    values: ["{bash}"]
                  matchArgs:
                  - index: 0
                    operator: DPort
                    values: ["{port}"]
                  - index: 0
                    operator: DAddr
                    values: ["127.0.0.0/8"]
                  - index: 0
                    operator: Protocol
                    values: [IPPROTO_TCP]
            """;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy });

        // The other port first: once the watched connect's event is there, the other one's would be too.
        var r = Run.Wait(bash, ["-c", $"exec 3<>/dev/tcp/127.0.0.1/{otherPort} && echo other; exec 4<>/dev/tcp/127.0.0.1/{port} && echo watched"]);
        Assert.Contains("watched", r.Stdout);
        var ev = WaitFor(agent, "kargs-tcp-connect", _ => true);
        Assert.Equal("tcp_connect", ev.GetProperty("function_name").GetString());
        var sock = ev.GetProperty("args")[0].GetProperty("sock_arg");
        Assert.Equal(("AF_INET", "SOCK_STREAM", "IPPROTO_TCP", "127.0.0.1", port),
            (sock.GetProperty("family").GetString(), sock.GetProperty("type").GetString(), sock.GetProperty("protocol").GetString(),
             sock.GetProperty("daddr").GetString(), sock.GetProperty("dport").GetInt32()));
        Assert.Equal("TCP_SYN_SENT", sock.GetProperty("state").GetString());
        Assert.Equal("127.0.0.1", sock.GetProperty("saddr").GetString());
        Assert.NotEqual(0, sock.GetProperty("sport").GetInt32());
        Assert.Equal(bash, ev.GetProperty("process").GetProperty("binary").GetString());
        Assert.DoesNotContain(Events(agent, "kargs-tcp-connect"), e => e.GetProperty("args")[0].GetProperty("sock_arg").GetProperty("dport").GetInt32() == otherPort);
        Unit.JsonFormatTests.AssertValid(agent.Events.RawLines.First(l => l.Contains("kargs-tcp-connect")));
        if (TetragonProtos.SkipReason is null)
            TetragonProtos.AssertTetragonLine(agent.Events.RawLines.First(l => l.Contains("kargs-tcp-connect")));
    }

    [RequiresKernel(Mechanism.Kprobe)]
    public void A_commit_creds_kprobe_reports_the_new_credentials_as_process_credentials_arg()
    {
        using var dir = new TempDir();
        var setpriv = dir.CopyBinary("/usr/bin/setpriv", "kargs-setpriv");
        var policy = $"""
            apiVersion: cilium.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: kargs-commit-creds
            spec:
              kprobes:
              - call: commit_creds
                syscall: false
                args:
                - index: 0
                  type: cred
                selectors:
                - matchBinaries:
                  - operator: In
                    values: ["{setpriv}"]
            """;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy });

        var r = Run.Wait(setpriv, ["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/true"]);
        Assert.True(r.Code == 0, r.Stderr);
        // setpriv changes the gids and the uids in two calls, each committing new credentials.
        static JsonElement Cred(JsonElement k) => k.GetProperty("args")[0].GetProperty("process_credentials_arg");
        var cred = Cred(WaitFor(agent, "kargs-commit-creds", k => Cred(k).GetProperty("euid").GetUInt32() == 65534));
        Assert.Equal(65534u, cred.GetProperty("uid").GetUInt32());
        var gids = Cred(WaitFor(agent, "kargs-commit-creds", k => Cred(k).GetProperty("egid").GetUInt32() == 65534));
        Assert.Equal(65534u, gids.GetProperty("gid").GetUInt32());
        var userNs = cred.GetProperty("user_ns");
        Assert.Equal(0, userNs.GetProperty("level").GetInt32());
        Assert.True(userNs.GetProperty("ns").GetProperty("inum").GetUInt32() > 0);
        Assert.True(userNs.GetProperty("ns").GetProperty("is_host").GetBoolean());
        Unit.JsonFormatTests.AssertValid(agent.Events.RawLines.First(l => l.Contains("kargs-commit-creds") && l.Contains("65534")));
    }

    /// <summary>Loads a two-instruction socket filter named sa_probe (r0 = 0; exit) with bpf(BPF_PROG_LOAD).</summary>
    private const string ProgLoadSource = """
        #include <linux/bpf.h>
        #include <string.h>
        #include <sys/syscall.h>
        #include <unistd.h>

        int main(void)
        {
            struct bpf_insn insns[2] = { { .code = BPF_ALU64 | BPF_MOV | BPF_K }, { .code = BPF_JMP | BPF_EXIT } };
            union bpf_attr attr;
            memset(&attr, 0, sizeof(attr));
            attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
            attr.insn_cnt = 2;
            attr.insns = (unsigned long)insns;
            attr.license = (unsigned long)"GPL";
            strcpy(attr.prog_name, "sa_probe");
            return syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr)) < 0 ? 1 : 0;
        }
        """;

    [RequiresKernel(Mechanism.Kprobe)]
    public void A_security_bpf_prog_kprobe_reports_the_loaded_program_as_bpf_prog_arg()
    {
        using var dir = new TempDir();
        var loader = CProgram.Build(dir, "kargs-prog-load", ProgLoadSource, "-O1");
        var policy = $"""
            apiVersion: cilium.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: kargs-bpf-prog
            spec:
              kprobes:
              - call: security_bpf_prog
                syscall: false
                args:
                - index: 0
                  type: bpf_prog
                selectors:
                - matchBinaries:
                  - operator: In
                    values: ["{loader}"]
            """;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy });

        var r = Run.Wait(loader, []);
        Assert.True(r.Code == 0, r.Stderr);
        var prog = WaitFor(agent, "kargs-bpf-prog", _ => true).GetProperty("args")[0];
        Assert.Equal("""{"bpf_prog_arg":{"ProgType":"BPF_PROG_TYPE_SOCKET_FILTER","InsnCnt":2,"ProgName":"sa_probe"}}""", prog.GetRawText());
        if (TetragonProtos.SkipReason is null)
            TetragonProtos.AssertTetragonLine(agent.Events.RawLines.First(l => l.Contains("kargs-bpf-prog") && l.Contains("bpf_prog_arg")));
    }
}
