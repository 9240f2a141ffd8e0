using System.Buffers.Binary;
using System.Text.Json;
using SecurityAgent.Events;
using SecurityAgent.Kernel;
using SecurityAgent.Policies;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Unit;

/// <summary>Kernel objects passed to kprobes and LSM hooks (sock, skb, socket, cred, ...): how the compiler plans their
/// reads and operators for a kernel that has kprobes, and how their events render as Tetragon's arguments.</summary>
public class KernelObjectArgTests
{
    private static ValidatedPolicy Check(string spec, KernelFeatures? kernel = null) =>
        Assert.Single(new PolicyValidator(kernel ?? KernelFeatures.Everything, tracefs: null) { ForOtherKernel = kernel is null }
            .ValidateText("p.yaml", "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: p\nspec:\n" + spec));

    private static PolicyPlan Plan(string spec)
    {
        var v = Check(spec);
        Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
        Assert.Empty(v.Notes);
        return v.Plan!;
    }

    private static string Kprobe(string call, string type, string matchArgs) => $"""
          kprobes:
          - call: {call}
            syscall: false
            args:
            - index: 0
              type: {type}
            selectors:
            - matchArgs:
        {matchArgs}
        """;

    [Theory]
    [InlineData("sock", ArgType.Sock)]
    [InlineData("socket", ArgType.Socket)]
    [InlineData("skb", ArgType.Skb)]
    [InlineData("cred", ArgType.Cred)]
    [InlineData("user_namespace", ArgType.UserNs)]
    [InlineData("cap_effective", ArgType.Caps)]
    [InlineData("capability", ArgType.Int)]
    [InlineData("net_device", ArgType.NetDev)]
    [InlineData("dentry", ArgType.Dentry)]
    [InlineData("kiocb", ArgType.Kiocb)]
    [InlineData("module", ArgType.Module)]
    [InlineData("load_info", ArgType.LoadInfo)]
    [InlineData("bpf_attr", ArgType.BpfAttr)]
    [InlineData("bpf_map", ArgType.BpfMap)]
    [InlineData("perf_event", ArgType.PerfEvent)]
    [InlineData("bpf_prog", ArgType.BpfProg)]
    [InlineData("bpf_cmd", ArgType.Int)]
    public void Each_kernel_object_type_of_a_kprobe_argument_is_read_by_the_engine_without_a_note(string type, ArgType kernelType)
    {
        var plan = Plan($"  kprobes:\n  - call: some_function\n    syscall: false\n    args:\n    - index: 0\n      type: {type}\n");
        var arg = Assert.Single(Assert.Single(plan.Hooks).Args);
        Assert.Equal((0, kernelType), (arg.Offset, arg.KernelType));
    }

    [Fact]
    public void Socket_operators_on_a_sock_compile_to_indexed_comparisons_of_both_ends_protocol_and_state()
    {
        var plan = Plan(Kprobe("tcp_connect", "sock", """
                  - index: 0
                    operator: DAddr
                    values: ["127.0.0.1", "10.0.0.0/8"]
                  - index: 0
                    operator: NotSPort
                    values: ["22", "8000:8002"]
                  - index: 0
                    operator: Protocol
                    values: ["IPPROTO_TCP"]
                  - index: 0
                    operator: State
                    values: ["TCP_SYN_SENT"]
        """));
        var filters = Assert.Single(plan.Hooks[0].Selectors).Args;
        Assert.Equal([Cmp.DAddr, Cmp.NotSPort, Cmp.Protocol, Cmp.State], filters.Select(f => f.Cmp));
        Assert.Equal(["127.0.0.1/32", "10.0.0.0/8"], plan.ValueSets[filters[0].ValueSet!.Value].Values);
        Assert.Equal([22UL, 8000, 8001, 8002], plan.ValueSets[filters[1].ValueSet!.Value].Integers);
        Assert.Equal([6UL], plan.ValueSets[filters[2].ValueSet!.Value].Integers);
        Assert.Equal([2UL], plan.ValueSets[filters[3].ValueSet!.Value].Integers); // TCP_SYN_SENT
    }

    [Fact]
    public void Privileged_port_operators_stand_for_ports_0_to_1023_and_take_no_values()
    {
        var plan = Plan(Kprobe("tcp_connect", "sock", "          - index: 0\n            operator: NotDPortPriv\n          - index: 0\n            operator: SPortPriv\n"));
        var filters = plan.Hooks[0].Selectors[0].Args;
        Assert.Equal([Cmp.NotDPort, Cmp.SPort], filters.Select(f => f.Cmp));
        Assert.All(filters, f => Assert.Equal(Enumerable.Range(0, 1024).Select(p => (ulong)p), plan.ValueSets[f.ValueSet!.Value].Integers));
    }

    [Fact]
    public void Source_operators_on_an_skb_compile_and_state_on_an_skb_stays_a_note()
    {
        var plan = Plan(Kprobe("ip_output", "skb", "          - index: 0\n            operator: SAddr\n            values: [\"192.168.0.0/16\"]\n"));
        Assert.Equal(Cmp.SAddr, Assert.Single(plan.Hooks[0].Selectors[0].Args).Cmp);
        var v = Check(Kprobe("ip_output", "skb", "          - index: 0\n            operator: State\n            values: [TCP_CLOSE]\n"));
        Assert.Contains(v.Notes, n => n.Message.Contains("operator State"));
    }

    [Fact]
    public void A_bad_port_range_or_state_names_the_value()
    {
        var v = Check(Kprobe("tcp_connect", "sock", "          - index: 0\n            operator: DPort\n            values: [\"9:1\"]\n          - index: 0\n            operator: State\n            values: [TCP_NOPE]\n"));
        Assert.Contains(v.Diagnostics, d => d.Message.Contains("'9:1' is not a port"));
        Assert.Contains(v.Diagnostics, d => d.Message.Contains("'TCP_NOPE' is not a socket state"));
    }

    [Fact]
    public void The_encoding_indexes_source_address_port_protocol_and_state_as_their_own_dimensions()
    {
        var plan = Plan(Kprobe("tcp_connect", "sock", """
                  - index: 0
                    operator: NotSAddr
                    values: ["127.0.0.1"]
                  - index: 0
                    operator: SPort
                    values: ["80"]
                  - index: 0
                    operator: Protocol
                    values: ["6"]
                  - index: 0
                    operator: State
                    values: ["1"]
        """));
        var point = PolicyEncoding.Layout([new PlacedHook(1, 1, plan, plan.Hooks[0], plan.Enforce, 0, [])], "tcp_connect");
        Assert.Equal([PolicyWire.DimKind.SAddr, PolicyWire.DimKind.SPort, PolicyWire.DimKind.Protocol, PolicyWire.DimKind.State], point.Dims.Select(d => d.Kind));
        Assert.Equal(SecurityAgent.Bpf.BpfNames.Maps.AddrLpm, point.Dims[0].Map);
        Assert.NotEqual(0UL, point.Dims[0].Neg[0]);
        Assert.Equal(0UL, point.Dims[1].Neg[0]);
    }

    [Fact]
    public void On_this_kernel_a_kernel_object_argument_is_refused_for_the_hook_naming_kprobes()
    {
        var v = Check(Kprobe("tcp_connect", "sock", "          - index: 0\n            operator: DPort\n            values: [\"80\"]\n"), PolicyValidatorTests.OurKernel);
        Assert.False(v.Ok);
        Assert.Contains(v.Diagnostics, d => d.Field == "spec.kprobes[0].call" && d.Message.StartsWith("needs kprobes"));
    }

    private const string MkdirOverride = "  kprobes:\n  - call: security_inode_mkdir\n    syscall: false\n    selectors:\n    - matchActions:\n      - action: Override\n        argError: -13\n";
    private const string FailslabOverride = "  kprobes:\n  - call: should_failslab\n    syscall: false\n    selectors:\n    - matchActions:\n      - action: Override\n        argError: -12\n";

    [Fact]
    public void Override_on_an_error_injectable_kernel_function_runs_the_bpf_override_return_program_on_its_own_attach_point()
    {
        var hook = Assert.Single(Plan(FailslabOverride).Hooks);
        Assert.Equal((Mechanism.Kprobe, "override:should_failslab", "should_failslab"), (hook.Mechanism, hook.Target, hook.Name));
        Assert.Equal(new KprobeTarget(KprobeKind.Override, "should_failslab"), KprobeTarget.Parse(hook.Target));
        Assert.Contains("error_injection/list", hook.Why);
        Assert.Equal(-12, Assert.Single(hook.Selectors).Error);
        // The same function without Override keeps the plain kprobe program.
        var plain = Assert.Single(Plan("  kprobes:\n  - call: should_failslab\n    syscall: false\n").Hooks);
        Assert.Equal(KprobeKind.Plain, KprobeTarget.Parse(plain.Target).Kind);
    }

    [Fact]
    public void Override_on_a_kernel_function_where_the_kernel_lacks_bpf_override_return_is_an_error_naming_what_is_missing()
    {
        var noOverride = KernelFeatures.Everything with { OverrideReturn = Availability.No("verifier: unknown func bpf_override_return#58"), FmodRet = Availability.Yes() };
        var v = Check(FailslabOverride, noOverride);
        Assert.False(v.Ok);
        var e = Assert.Single(v.Diagnostics, d => d.Field == "spec.kprobes[0].selectors[0].matchActions[0].action");
        Assert.Contains("needs bpf_override_return to Override the kernel function 'should_failslab'", e.Message);
        Assert.Contains("unknown func bpf_override_return", e.Message);
    }

    [Fact]
    public void Override_on_a_security_function_runs_an_fmod_ret_program_as_tetragon_does_since_it_is_not_error_injectable()
    {
        var hook = Assert.Single(Plan(MkdirOverride).Hooks);
        Assert.Equal((Mechanism.Fentry, "security_inode_mkdir"), (hook.Mechanism, hook.Target));
        Assert.Contains("fmod_ret", hook.Why);
        Assert.Equal(-13, Assert.Single(hook.Selectors).Error);
        // Without Override the function keeps its kprobe.
        Assert.Equal(Mechanism.Kprobe, Assert.Single(Plan("  kprobes:\n  - call: security_inode_mkdir\n    syscall: false\n").Hooks).Mechanism);
    }

    [Fact]
    public void Override_on_a_security_function_without_fmod_ret_is_an_error_even_where_bpf_override_return_exists()
    {
        var v = Check(MkdirOverride, KernelFeatures.Everything with { FmodRet = Availability.No("bpf_program__attach: ENOTSUPP") });
        Assert.False(v.Ok);
        var e = Assert.Single(v.Diagnostics, d => d.Field == "spec.kprobes[0].selectors[0].matchActions[0].action");
        Assert.Contains("needs fmod_ret to Override the security_ function 'security_inode_mkdir'", e.Message);
        Assert.Contains("ENOTSUPP", e.Message);
    }

    [Fact]
    public void A_positive_argError_on_a_kernel_function_is_kept_as_tetragon_does_with_a_warning()
    {
        var v = Check(MkdirOverride.Replace("argError: -13", "argError: 1"));
        Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
        Assert.Equal(1, Assert.Single(Assert.Single(v.Plan!.Hooks).Selectors).Error);
        Assert.Contains(v.Warnings, w => w.Field == "spec.kprobes[0].selectors[0].matchActions[0].argError" && w.Message.Contains("not a negative errno"));
    }

    [Fact]
    public void SizeArgIndex_on_a_kernel_function_char_buf_reads_exactly_the_count_in_the_argument_it_names()
    {
        var hook = Assert.Single(Plan("  kprobes:\n  - call: tty_write\n    syscall: false\n    args:\n    - index: 0\n      type: file\n    - index: 1\n      type: char_buf\n      sizeArgIndex: 3\n    - index: 2\n      type: size_t\n").Hooks);
        var buf = hook.Args[1];
        Assert.Equal((ArgType.Buf, 1, 2), (buf.KernelType, buf.Offset, buf.Size)); // the buffer in register argument 1, its count in argument 2
        var v = Check("  kprobes:\n  - call: tty_write\n    syscall: false\n    args:\n    - index: 1\n      type: char_buf\n      sizeArgIndex: 6\n");
        Assert.Contains(v.Diagnostics, d => d.Field == "spec.kprobes[0].args[0].sizeArgIndex" && d.Message.Contains("only the first 5 function arguments"));
    }

    [Fact]
    public void SAddr_and_SPort_on_a_sockaddr_compare_its_one_address_and_port_as_tetragon_reads_them()
    {
        var plan = Plan("  kprobes:\n  - call: security_socket_connect\n    syscall: false\n    args:\n    - index: 0\n      type: socket\n    - index: 1\n      type: sockaddr\n    selectors:\n    - matchArgs:\n"
            + "      - index: 0\n        operator: Protocol\n        values: [IPPROTO_TCP]\n      - index: 1\n        operator: SAddr\n        values: [\"192.168.1.1\"]\n      - index: 1\n        operator: NotSPort\n        values: [\"80\"]\n");
        Assert.Equal([Cmp.Protocol, Cmp.DAddr, Cmp.NotDPort], plan.Hooks[0].Selectors[0].Args.Select(f => f.Cmp));
    }

    private static byte[] Sockaddr4(ushort port, params byte[] addr)
    {
        var b = new byte[Contract.SockaddrSize];
        b[0] = (byte)Contract.AfInet;
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(2), port);
        addr.CopyTo(b, 4);
        return b;
    }

    [Fact]
    public void A_sock_and_a_cred_render_as_tetragons_sock_arg_and_process_credentials_arg()
    {
        var sock = new byte[PolicyWire.SockInfo.Length];
        Sockaddr4(8080, 127, 0, 0, 1).CopyTo(sock, PolicyWire.SockInfo.Peer);
        Sockaddr4(40000, 127, 0, 0, 2).CopyTo(sock, PolicyWire.SockInfo.Local);
        BinaryPrimitives.WriteUInt16LittleEndian(sock.AsSpan(PolicyWire.SockInfo.Type), 1);
        sock[PolicyWire.SockInfo.Protocol] = 6;
        sock[PolicyWire.SockInfo.State] = 2;
        BinaryPrimitives.WriteUInt64LittleEndian(sock.AsSpan(PolicyWire.SockInfo.Cookie), 0xffff888012345678);
        var cred = new byte[PolicyWire.CredInfo.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(cred.AsSpan(PolicyWire.CredInfo.Uid), 1000);
        BinaryPrimitives.WriteUInt32LittleEndian(cred.AsSpan(PolicyWire.CredInfo.Euid), 0);
        BinaryPrimitives.WriteUInt64LittleEndian(cred.AsSpan(PolicyWire.CredInfo.CapEffective), 1UL << 21);
        BinaryPrimitives.WriteUInt32LittleEndian(cred.AsSpan(PolicyWire.CredInfo.UsernsInum), 4026531837);
        var e = JsonFormatTests.Match(HookKind.Kprobe, "tcp_connect",
            [JsonFormatTests.Arg(0, "sock", ArgType.Sock), JsonFormatTests.Arg(1, "cred", ArgType.Cred, label: "new"),
             JsonFormatTests.Arg(2, "cap_effective", ArgType.Caps), JsonFormatTests.Arg(3, "capability", ArgType.Int, 4)],
            [0, 0, 1UL << 21, 21], [sock, cred, [], []]);
        var line = JsonFormatTests.Render(e);
        JsonFormatTests.AssertValid(line);
        Assert.Equal("""
            [{"sock_arg":{"family":"AF_INET","type":"SOCK_STREAM","protocol":"IPPROTO_TCP","mark":0,"priority":0,"saddr":"127.0.0.2","daddr":"127.0.0.1","sport":40000,"dport":8080,"cookie":"18446612682375452280","state":"TCP_SYN_SENT"}},{"process_credentials_arg":{"uid":1000,"gid":0,"euid":0,"egid":0,"suid":0,"sgid":0,"fsuid":0,"fsgid":0,"caps":{"effective":["CAP_SYS_ADMIN"]},"user_ns":{"level":0,"uid":0,"gid":0,"ns":{"inum":4026531837,"is_host":true}}},"label":"new"},{"cap_effective_arg":"0000000000200000"},{"capability_arg":{"value":21,"name":"CAP_SYS_ADMIN"}}]
            """, JsonFormatTests.ArgsJson(line, "process_kprobe"));
        if (TetragonProtos.SkipReason is null)
            TetragonProtos.AssertTetragonLine(line);
    }

    [Fact]
    public void An_skb_and_a_bpf_map_render_as_tetragons_skb_arg_and_bpf_map_arg()
    {
        var skb = new byte[PolicyWire.SockInfo.Length];
        Sockaddr4(53, 8, 8, 8, 8).CopyTo(skb, PolicyWire.SockInfo.Peer);
        Sockaddr4(5353, 10, 0, 0, 1).CopyTo(skb, PolicyWire.SockInfo.Local);
        skb[PolicyWire.SockInfo.Protocol] = 17;
        BinaryPrimitives.WriteUInt32LittleEndian(skb.AsSpan(PolicyWire.SockInfo.Len), 60);
        var map = new byte[PolicyWire.BpfInfo.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(map.AsSpan(PolicyWire.BpfInfo.Type), 1);
        BinaryPrimitives.WriteUInt32LittleEndian(map.AsSpan(PolicyWire.BpfInfo.Count), 4);
        BinaryPrimitives.WriteUInt32LittleEndian(map.AsSpan(PolicyWire.BpfInfo.ValueSize), 8);
        BinaryPrimitives.WriteUInt32LittleEndian(map.AsSpan(PolicyWire.BpfInfo.MaxEntries), 1024);
        "my_map"u8.CopyTo(map.AsSpan(PolicyWire.BpfInfo.Name));
        var e = JsonFormatTests.Match(HookKind.Kprobe, "ip_output", [JsonFormatTests.Arg(0, "skb", ArgType.Skb), JsonFormatTests.Arg(1, "bpf_map", ArgType.BpfMap)], [0, 0], [skb, map]);
        var line = JsonFormatTests.Render(e);
        JsonFormatTests.AssertValid(line);
        var args = JsonDocument.Parse(JsonFormatTests.ArgsJson(line, "process_kprobe")).RootElement;
        var s = args[0].GetProperty("skb_arg");
        Assert.Equal(("8.8.8.8", 53u, "10.0.0.1", 5353u, "IPPROTO_UDP", 60u),
            (s.GetProperty("daddr").GetString(), s.GetProperty("dport").GetUInt32(), s.GetProperty("saddr").GetString(), s.GetProperty("sport").GetUInt32(),
             s.GetProperty("protocol").GetString(), s.GetProperty("len").GetUInt32()));
        var m = args[1].GetProperty("bpf_map_arg");
        Assert.Equal(("BPF_MAP_TYPE_HASH", 4u, 8u, 1024u, "my_map"),
            (m.GetProperty("MapType").GetString(), m.GetProperty("KeySize").GetUInt32(), m.GetProperty("ValueSize").GetUInt32(), m.GetProperty("MaxEntries").GetUInt32(), m.GetProperty("MapName").GetString()));
        if (TetragonProtos.SkipReason is null)
            TetragonProtos.AssertTetragonLine(line);
    }

    [Fact]
    public void A_bpf_prog_and_a_bpf_cmd_render_as_tetragons_bpf_prog_arg_and_the_bpf_cmd_enum_name()
    {
        var prog = new byte[PolicyWire.BpfInfo.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(prog.AsSpan(PolicyWire.BpfInfo.Type), 1);
        BinaryPrimitives.WriteUInt32LittleEndian(prog.AsSpan(PolicyWire.BpfInfo.Count), 2);
        "sa_probe"u8.CopyTo(prog.AsSpan(PolicyWire.BpfInfo.Name));
        var e = JsonFormatTests.Match(HookKind.Kprobe, "security_bpf_prog",
            [JsonFormatTests.Arg(0, "bpf_prog", ArgType.BpfProg), JsonFormatTests.Arg(1, "bpf_cmd", ArgType.Int, 4), JsonFormatTests.Arg(2, "bpf_cmd", ArgType.Int, 4)],
            [0, 5, 99], [prog, [], []]);
        var line = JsonFormatTests.Render(e);
        JsonFormatTests.AssertValid(line);
        Assert.Equal("""[{"bpf_prog_arg":{"ProgType":"BPF_PROG_TYPE_SOCKET_FILTER","InsnCnt":2,"ProgName":"sa_probe"}},{"bpf_cmd_arg":"BPF_PROG_LOAD"},{"bpf_cmd_arg":99}]""",
            JsonFormatTests.ArgsJson(line, "process_kprobe"));
        if (TetragonProtos.SkipReason is null)
            TetragonProtos.AssertTetragonLine(line);
    }
}
