using System.Reflection;
using System.Text.Json;
using SecurityAgent.Events;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Unit;

/// <summary>The C structs in bpf/include/common.h and the offsets in Wire.cs must agree: both are
/// compared with the BTF that clang wrote into the compiled objects.</summary>
public class LayoutTests
{
    private static Dictionary<string, (int Size, Dictionary<string, int> Members)> Structs(string obj)
    {
        var json = Run.Bpftool("btf", "dump", "file", Repo.File_("build", "bpf", obj), "-j");
        var result = new Dictionary<string, (int, Dictionary<string, int>)>();
        foreach (var t in JsonDocument.Parse(json).RootElement.GetProperty("types").EnumerateArray())
        {
            if (t.GetProperty("kind").GetString() != "STRUCT" || !t.TryGetProperty("name", out var n) || n.GetString() == "(anon)") continue;
            var members = t.GetProperty("members").EnumerateArray()
                .Where(m => m.GetProperty("name").GetString() != "(anon)")
                .ToDictionary(m => m.GetProperty("name").GetString()!, m => m.GetProperty("bits_offset").GetInt32() / 8);
            result[n.GetString()!] = (t.GetProperty("size").GetInt32(), members);
        }
        return result;
    }

    private static string Snake(string pascal) =>
        string.Concat(pascal.Select((c, i) => char.IsUpper(c) && i > 0 ? "_" + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString()));

    [Theory]
    [InlineData("process.bpf.o", "exec_event", typeof(Wire.Exec))]
    [InlineData("process.bpf.o", "fork_event", typeof(Wire.Fork))]
    [InlineData("process.bpf.o", "exit_event", typeof(Wire.Exit))]
    [InlineData("process.bpf.o", "event_header", typeof(Wire.Header))]
    [InlineData("tracepoint.bpf.o", "sa_hook", typeof(PolicyWire.Hook))]
    [InlineData("tracepoint.bpf.o", "sa_hook_arg", typeof(PolicyWire.HookArg))]
    [InlineData("tracepoint.bpf.o", "sa_selector", typeof(PolicyWire.Selector))]
    [InlineData("tracepoint.bpf.o", "sa_arg_filter", typeof(PolicyWire.ArgFilter))]
    [InlineData("tracepoint.bpf.o", "sa_hook_stats", typeof(PolicyWire.HookStats))]
    [InlineData("tracepoint.bpf.o", "sa_str_key", typeof(PolicyWire.StrKey))]
    [InlineData("tracepoint.bpf.o", "sa_lpm_key", typeof(PolicyWire.LpmKey))]
    [InlineData("tracepoint.bpf.o", "sa_int_key", typeof(PolicyWire.IntKey))]
    [InlineData("tracepoint.bpf.o", "sa_addr_key", typeof(PolicyWire.AddrKey))]
    [InlineData("tracepoint.bpf.o", "sa_binary", typeof(PolicyWire.Binary))]
    [InlineData("tracepoint.bpf.o", "sa_deny_key", typeof(PolicyWire.DenyKey))]
    [InlineData("tracepoint.bpf.o", "sa_scope_key", typeof(PolicyWire.ScopeKey))]
    [InlineData("tracepoint.bpf.o", "policy_event", typeof(PolicyWire.Event))]
    public void Every_field_of_a_kernel_record_has_the_same_offset_in_csharp(string obj, string structName, Type wire)
    {
        var (size, members) = Structs(obj)[structName];
        var consts = wire.GetFields(BindingFlags.Public | BindingFlags.Static).Where(f => f.IsLiteral)
            .ToDictionary(f => Snake(f.Name), f => (int)f.GetRawConstantValue()!);

        foreach (var (name, offset) in members)
        {
            if (name.StartsWith("pad") || name == "hdr") continue;
            Assert.True(consts.ContainsKey(name), $"{structName}.{name} (offset {offset}) has no constant in {wire.Name}");
            Assert.True(consts[name] == offset, $"{structName}.{name}: C offset {offset}, C# {consts[name]}");
        }
        if (consts.TryGetValue("length", out var length))
            Assert.Equal(size, length);
    }
}
