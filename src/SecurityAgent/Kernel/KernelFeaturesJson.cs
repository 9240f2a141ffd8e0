using System.Text.Json;
using System.Text.Json.Nodes;

namespace SecurityAgent.Kernel;

/// <summary>The JSON form of <see cref="KernelFeatures"/>: what `secagent probe --json` writes on a node and
/// `secagent policy validate|compile --for-kernel node.json` reads elsewhere (a laptop, CI).</summary>
public static class KernelFeaturesJson
{
    public static string ToJson(KernelFeatures f) => JsonSerializer.Serialize(new
    {
        kernel = f.KernelRelease,
        mechanisms = f.Mechanisms.ToDictionary(m => KernelFeatures.MechanismName(m.Key), m => new { available = m.Value.Available, detail = m.Value.Detail }),
        helpers = new
        {
            send_signal = f.SendSignal.Available, override_return = f.OverrideReturn.Available, fmod_ret = f.FmodRet.Available,
            fexit = f.Fexit.Available, ringbuf_query = f.RingBufferQuery.Available, probe_write_user = f.ProbeWriteUser.Available,
            ima_file_hash = f.ImaFileHash.Available,
        },
        maps = new { ringbuf = f.RingBuffer.Available },
        btf = f.Btf,
        active_lsms = f.ActiveLsms,
        bpf_lsm = f.BpfLsmActive,
        cgroup2 = f.Cgroup2Path,
    }, new JsonSerializerOptions { WriteIndented = true });

    /// <summary>Features from a probe's JSON; a mechanism the file does not name is unavailable ("not in the probe").
    /// Throws <see cref="FormatException"/> naming what is wrong.</summary>
    public static KernelFeatures FromJson(string json)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { MaxDepth = 8 }); }
        catch (JsonException e) { throw new FormatException($"not JSON: {e.Message}"); }
        if (root is not JsonObject o || o["mechanisms"] is not JsonObject mechanisms)
            throw new FormatException("not the output of `secagent probe --json` (no \"mechanisms\" object)");
        var byName = Enum.GetValues<Mechanism>().ToDictionary(KernelFeatures.MechanismName);
        var result = new Dictionary<Mechanism, Availability>();
        foreach (var (name, value) in mechanisms)
        {
            if (!byName.TryGetValue(name, out var m)) continue; // a newer probe's mechanism this build does not know
            bool available = Bool(value?["available"], $"mechanisms.{name}.available");
            var detail = value?["detail"]?.GetValueKind() == JsonValueKind.String ? value["detail"]!.GetValue<string>() : "";
            result[m] = new Availability(available, detail);
        }
        foreach (var m in byName.Values.Where(m => !result.ContainsKey(m)))
            result[m] = Availability.No("not in the probe");
        var lsms = o["active_lsms"] is JsonArray a ? a.Select(x => x?.GetValueKind() == JsonValueKind.String ? x.GetValue<string>() : "").Where(x => x.Length > 0).ToList() : [];
        return new KernelFeatures(
            o["kernel"]?.GetValueKind() == JsonValueKind.String ? o["kernel"]!.GetValue<string>() : "unknown",
            result,
            Flag(o["helpers"]?["send_signal"]), Flag(o["maps"]?["ringbuf"]),
            o["btf"]?.GetValueKind() == JsonValueKind.True, lsms,
            o["cgroup2"]?.GetValueKind() == JsonValueKind.String ? o["cgroup2"]!.GetValue<string>() : null)
        {
            OverrideReturn = Flag(o["helpers"]?["override_return"]),
            FmodRet = Flag(o["helpers"]?["fmod_ret"]),
            Fexit = Flag(o["helpers"]?["fexit"]),
            RingBufferQuery = Flag(o["helpers"]?["ringbuf_query"]),
            ProbeWriteUser = Flag(o["helpers"]?["probe_write_user"]),
            ImaFileHash = Flag(o["helpers"]?["ima_file_hash"]),
        };
    }

    private static Availability Flag(JsonNode? n) => n?.GetValueKind() switch
    {
        JsonValueKind.True => Availability.Yes("from the probe"),
        null => Availability.No("not in the probe (an older `secagent probe --json`)"),
        _ => Availability.No("from the probe"),
    };

    private static bool Bool(JsonNode? n, string what) => n?.GetValueKind() switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => throw new FormatException($"{what} is not true or false"),
    };
}
