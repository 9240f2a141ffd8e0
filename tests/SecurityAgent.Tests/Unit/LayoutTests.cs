using System.Reflection;
using SecurityAgent.Bpf;
using SecurityAgent.ContractGen;
using SecurityAgent.Events;
using SecurityAgent.Policies;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Unit;

/// <summary>bpf/include/contract.h and the C# that tools/ContractGen emits from it must agree: the committed
/// Contract.g.cs is what the generator emits from the objects just built, and the constants compiled into the
/// agent match the BTF that clang wrote into the real objects (offsets, sizes, enums, limits, maps, programs).</summary>
public class LayoutTests
{
    private static readonly Dictionary<string, Btf> Objects = new();

    private static Btf Object(string file)
    {
        lock (Objects)
        {
            if (!Objects.TryGetValue(file, out var btf))
                Objects[file] = btf = Btf.Read(file.StartsWith("contract") ? Repo.File_("build", "bpf-contract", file) : Repo.File_("build", "bpf", file));
            return btf;
        }
    }

    private static string Snake(string pascal) =>
        string.Concat(pascal.Select((c, i) => char.IsUpper(c) && i > 0 && !char.IsDigit(pascal[i - 1]) ? "_" + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString()));

    [Fact]
    public void The_committed_contract_is_what_the_generator_emits_from_the_objects_just_built()
    {
        var objects = Directory.GetFiles(Repo.File_("build", "bpf"), "*.bpf.o").Select(f => (Path.GetFileName(f), Btf.Read(f)));
        var generated = ContractGenerator.Generate(Object("contract.bpf.o"), objects);
        var committed = File.ReadAllText(Repo.File_("src", "SecurityAgent", "Events", "Contract.g.cs"));
        Assert.True(generated == committed, "src/SecurityAgent/Events/Contract.g.cs drifted from bpf/include/contract.h: run `make bpf` and commit it");
    }

    [Theory]
    [InlineData("process.bpf.o", "exec_event", typeof(Wire.Exec))]
    [InlineData("process.bpf.o", "fork_event", typeof(Wire.Fork))]
    [InlineData("process.bpf.o", "exit_event", typeof(Wire.Exit))]
    [InlineData("process.bpf.o", "event_header", typeof(Wire.Header))]
    [InlineData("process.bpf.o", "sa_settings", typeof(Wire.Settings))]
    [InlineData("process.bpf.o", "sa_reader", typeof(Wire.Reader))]
    [InlineData("process.bpf.o", "sa_binary", typeof(PolicyWire.Binary))]
    [InlineData("tracepoint.bpf.o", "policy_event", typeof(PolicyWire.Event))]
    [InlineData("tracepoint.bpf.o", "sa_point", typeof(PolicyWire.Point))]
    [InlineData("tracepoint.bpf.o", "sa_point_arg", typeof(PolicyWire.PointArg))]
    [InlineData("tracepoint.bpf.o", "sa_dim", typeof(PolicyWire.Dim))]
    [InlineData("tracepoint.bpf.o", "sa_selector_key", typeof(PolicyWire.SelectorKey))]
    [InlineData("tracepoint.bpf.o", "sa_selector", typeof(PolicyWire.Selector))]
    [InlineData("tracepoint.bpf.o", "sa_int_cmp", typeof(PolicyWire.IntCmp))]
    [InlineData("tracepoint.bpf.o", "sa_value_hdr", typeof(PolicyWire.ValueHeader))]
    [InlineData("tracepoint.bpf.o", "sa_bitmap", typeof(PolicyWire.Bitmap))]
    [InlineData("tracepoint.bpf.o", "sa_str_key", typeof(PolicyWire.StrKey))]
    [InlineData("tracepoint.bpf.o", "sa_lpm_key", typeof(PolicyWire.LpmKey))]
    [InlineData("tracepoint.bpf.o", "sa_int_key", typeof(PolicyWire.IntKey))]
    [InlineData("tracepoint.bpf.o", "sa_addr_key", typeof(PolicyWire.AddrKey))]
    [InlineData("tracepoint.bpf.o", "sa_scope_key", typeof(PolicyWire.ScopeKey))]
    [InlineData("tracepoint.bpf.o", "sa_deny_key", typeof(PolicyWire.DenyKey))]
    [InlineData("tracepoint.bpf.o", "sa_rate_key", typeof(PolicyWire.RateKey))]
    [InlineData("tracepoint.bpf.o", "sa_hook_stats", typeof(PolicyWire.HookStats))]
    [InlineData("tracepoint.bpf.o", "sa_point_stats", typeof(PolicyWire.PointStats))]
    [InlineData("sock.bpf.o", "sa_selector", typeof(PolicyWire.Selector))]
    [InlineData("lsm.bpf.o", "sa_point", typeof(PolicyWire.Point))]
    public void Every_field_of_a_kernel_record_has_the_same_offset_in_csharp(string obj, string structName, Type wire)
    {
        var st = Object(obj).Structs[structName];
        var consts = wire.GetFields(BindingFlags.Public | BindingFlags.Static).Where(f => f.IsLiteral)
            .ToDictionary(f => Snake(f.Name), f => (int)f.GetRawConstantValue()!);

        foreach (var m in st.Members)
        {
            if (m.Name.StartsWith("pad")) continue;
            Assert.True(consts.ContainsKey(m.Name), $"{structName}.{m.Name} (offset {m.Offset}) has no constant in {wire.Name}");
            Assert.True(consts[m.Name] == m.Offset, $"{structName}.{m.Name}: C offset {m.Offset}, C# {consts[m.Name]}");
        }
        Assert.Equal(st.Size, consts["length"]);
    }

    [Theory]
    [InlineData("sa_op", typeof(Op))]
    [InlineData("sa_exec_flags", typeof(Wire.ExecFlags))]
    [InlineData("sa_lost_reason", typeof(Wire.LostReason))]
    [InlineData("sa_arg_type", typeof(ArgType))]
    [InlineData("sa_cmp", typeof(Cmp))]
    [InlineData("sa_action", typeof(Actions))]
    [InlineData("sa_policy_event_flags", typeof(PolicyWire.EventFlags))]
    [InlineData("sa_fixed_point", typeof(PolicyWire.FixedPoint))]
    [InlineData("sa_dim_kind", typeof(PolicyWire.DimKind))]
    [InlineData("sa_selector_flags", typeof(PolicyWire.SelectorFlags))]
    public void Every_enumerator_of_the_contract_has_the_same_value_in_csharp(string cEnum, Type csharp)
    {
        var c = ContractGenerator.Names(Object("contract.bpf.o").Enums[cEnum]).ToList();
        var cs = Enum.GetNames(csharp).ToDictionary(n => n, n => Convert.ToInt64(Enum.Parse(csharp, n)));
        Assert.Equal(c.Count, cs.Count);
        foreach (var (name, value) in c)
            Assert.True(cs.TryGetValue(name, out var v) && v == value, $"enum {cEnum}: {name} = {value} in C, {(cs.TryGetValue(name, out var x) ? x : "missing")} in {csharp.Name}");
    }

    [Fact]
    public void Every_limit_and_size_of_the_contract_is_the_same_constant_in_csharp()
    {
        var consts = typeof(Contract).GetFields(BindingFlags.Public | BindingFlags.Static).Where(f => f.IsLiteral)
            .ToDictionary(f => "SA_" + Snake(f.Name).ToUpperInvariant(), f => Convert.ToInt64(f.GetRawConstantValue()));
        var limits = Object("contract.bpf.o").Enums["sa_limit"].Values;
        Assert.Equal(limits.Count, consts.Count);
        foreach (var v in limits)
            Assert.True(consts.TryGetValue(v.Name, out var cs) && cs == v.Value, $"{v.Name} = {v.Value} in C, {(consts.TryGetValue(v.Name, out var x) ? x : "missing")} in C#");
        // The sizes the kernel programs rely on, as the compiled objects see them.
        Assert.Equal(Contract.SelBits, Contract.SelWords * 64);
        Assert.Equal(Contract.SelWords * 8, Object("tracepoint.bpf.o").Structs["sa_bitmap"].Size);
        Assert.True(PolicyWire.LpmKey.Length - PolicyWire.LpmKey.Hdr <= 256, "an LPM trie key holds at most 256 data bytes");
    }

    [Fact]
    public void Every_map_and_program_the_agent_names_exists_in_its_object()
    {
        foreach (var (file, maps, programs) in new[]
        {
            (BpfNames.Shared.File, BpfNames.Shared.Maps, BpfNames.Shared.Programs),
            (BpfNames.Process.File, BpfNames.Process.Maps, BpfNames.Process.Programs),
            (BpfNames.Tracepoint.File, BpfNames.Tracepoint.Maps, BpfNames.Tracepoint.Programs),
            (BpfNames.Lsm.File, BpfNames.Lsm.Maps, BpfNames.Lsm.Programs),
            (BpfNames.Kprobe.File, BpfNames.Kprobe.Maps, BpfNames.Kprobe.Programs),
            (BpfNames.Sock.File, BpfNames.Sock.Maps, BpfNames.Sock.Programs),
        })
        {
            Assert.Equal(Object(file).Maps, maps);
            Assert.Equal(Object(file).Programs, programs);
        }
        // Shared maps are declared, exist in both the owner and the sharer, and the owner creates them (or has them from
        // its own owner).
        var specs = new[]
        {
            ObjectSpecs.Shared(1 << 20, 32768), ObjectSpecs.PolicyMaps, ObjectSpecs.Process, ObjectSpecs.PolicyTracepoint, ObjectSpecs.PolicyTracepointExit,
            ObjectSpecs.PolicyTracepointReturn, ObjectSpecs.PolicyLsm, ObjectSpecs.PolicyKprobe, ObjectSpecs.PolicySock, ObjectSpecs.Loader, ObjectSpecs.Enforcer,
        };
        foreach (var spec in specs)
            foreach (var share in spec.Shares)
            {
                Assert.Contains(share.Map, Object(spec.File).Maps);
                var owner = specs.Single(s => s.Name == share.Owner);
                Assert.Contains(share.Map, Object(owner.File).Maps);
                Assert.True(owner.Creates is null || owner.Creates.Contains(share.Map) || owner.Shares.Any(s => s.Map == share.Map),
                    $"{spec.Name} shares {share.Map} from {owner.Name}, which does not create it");
            }
        Assert.Equal(["file_open", "bprm_check_security", "socket_connect", "file_permission"], Sensors.PolicySensor.LsmHooks);
        Assert.All(Sensors.PolicySensor.LsmHooks, h => Assert.Contains("sa_lsm_" + h, BpfNames.Lsm.Programs));
    }
}
