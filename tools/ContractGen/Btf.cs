using System.Diagnostics;
using System.Text.Json;

namespace SecurityAgent.ContractGen;

/// <summary>The BTF of a compiled BPF object, as `bpftool btf dump file OBJ -j` prints it.</summary>
public sealed class Btf
{
    public sealed record Member(string Name, int Offset);
    public sealed record Struct(string Name, int Size, IReadOnlyList<Member> Members);
    public sealed record Enumerator(string Name, long Value);
    public sealed record Enum(string Name, IReadOnlyList<Enumerator> Values);

    public Dictionary<string, Struct> Structs { get; } = new();
    public Dictionary<string, Enum> Enums { get; } = new();
    /// <summary>Variables of the ".maps" section: the object's maps.</summary>
    public List<string> Maps { get; } = [];
    /// <summary>Global functions: the object's programs.</summary>
    public List<string> Programs { get; } = [];

    public static Btf Read(string obj)
    {
        var psi = new ProcessStartInfo("bpftool") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "btf", "dump", "file", obj, "-j" }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("bpftool did not start");
        var json = p.StandardOutput.ReadToEnd();
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"bpftool btf dump file {obj}: {err}");
        return Parse(json);
    }

    public static Btf Parse(string json)
    {
        var btf = new Btf();
        var types = JsonDocument.Parse(json).RootElement.GetProperty("types").EnumerateArray().ToList();
        var byId = types.ToDictionary(t => t.GetProperty("id").GetInt32());
        string Name(JsonElement t) => t.TryGetProperty("name", out var n) ? n.GetString() ?? "" : "";
        foreach (var t in types)
        {
            var name = Name(t);
            switch (t.GetProperty("kind").GetString())
            {
                case "STRUCT" when name is not ("" or "(anon)"):
                    btf.Structs[name] = new Struct(name, t.GetProperty("size").GetInt32(), t.GetProperty("members").EnumerateArray()
                        .Where(m => Name(m) is not ("" or "(anon)"))
                        .Select(m => new Member(Name(m), m.GetProperty("bits_offset").GetInt32() / 8)).ToList());
                    break;
                case "ENUM" when name is not ("" or "(anon)"):
                    btf.Enums[name] = new Enum(name, t.GetProperty("values").EnumerateArray()
                        .Select(v => new Enumerator(Name(v), v.GetProperty("val").GetInt64())).ToList());
                    break;
                case "DATASEC" when name == ".maps":
                    btf.Maps.AddRange(t.GetProperty("vars").EnumerateArray().Select(v => Name(byId[v.GetProperty("type_id").GetInt32()])));
                    break;
                case "FUNC" when t.GetProperty("linkage").GetString() == "global":
                    btf.Programs.Add(name);
                    break;
            }
        }
        return btf;
    }
}
