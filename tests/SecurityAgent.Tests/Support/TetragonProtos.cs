using System.Text.Json.Nodes;

namespace SecurityAgent.Tests.Support;

/// <summary>Tetragon's event definitions from the shared folder (peer-formats/tetragon-api), compiled into the tests by
/// the project file when the folder is there at build time. <see cref="AssertTetragonLine"/> parses a line as Tetragon
/// consumers do (a GetEventsResponse, unknown fields refused) and checks that the line is exactly what protojson writes
/// for the parsed message: the same JSON type for every field (64-bit integers as strings, enums by name, bytes as
/// base64, timestamps with protojson's digits), and nothing but default values where protojson writes nothing.</summary>
public static class TetragonProtos
{
    public static string Dir => Path.Combine(Repo.Shared, "peer-formats", "tetragon-api");

#if TETRAGON_PROTOS
    public static string? SkipReason => null;

    private static readonly Google.Protobuf.JsonParser Strict = new(Google.Protobuf.JsonParser.Settings.Default.WithIgnoreUnknownFields(false));
    private static readonly Google.Protobuf.JsonFormatter Protojson = new(Google.Protobuf.JsonFormatter.Settings.Default.WithPreserveProtoFieldNames(true));

    /// <summary>The line as Tetragon's GetEventsResponse, unknown fields refused.</summary>
    public static Google.Protobuf.IMessage Parse(string line) => Strict.Parse<Tetragon.GetEventsResponse>(line);

    public static Google.Protobuf.IMessage AssertTetragonLine(string line)
    {
        Google.Protobuf.IMessage parsed;
        try { parsed = Parse(line); }
        catch (Exception e) when (e is Google.Protobuf.InvalidProtocolBufferException or InvalidOperationException or FormatException)
        {
            throw new Xunit.Sdk.XunitException($"Tetragon's GetEventsResponse refuses the line: {e.Message}\n{line}");
        }
        var ours = JsonNode.Parse(line)!;
        var theirs = JsonNode.Parse(Protojson.Format(parsed))!;
        Compare(ours, theirs, "$", line);
        return parsed;
    }

    private static void Compare(JsonNode ours, JsonNode theirs, string path, string line)
    {
        switch (theirs)
        {
            case JsonObject t:
                if (ours is not JsonObject o) throw Fail(path, "an object", ours, line);
                foreach (var (key, value) in t)
                    Compare(o[key] ?? throw Fail($"{path}.{key}", value!.ToJsonString(), null, line), value!, $"{path}.{key}", line);
                foreach (var (key, value) in o)
                    if (!t.ContainsKey(key) && !IsDefault(value))
                        throw Fail($"{path}.{key}", "absent (protojson writes nothing for it)", value, line);
                break;
            case JsonArray t:
                if (ours is not JsonArray a || a.Count != t.Count) throw Fail(path, t.ToJsonString(), ours, line);
                for (int i = 0; i < t.Count; i++) Compare(a[i]!, t[i]!, $"{path}[{i}]", line);
                break;
            default:
                if (ours.ToJsonString() != theirs.ToJsonString()) throw Fail(path, theirs.ToJsonString(), ours, line);
                break;
        }
    }

    private static bool IsDefault(JsonNode? v) => v switch
    {
        null => true,
        JsonObject o => o.Count == 0,
        JsonArray a => a.Count == 0,
        _ => v.ToJsonString() is "0" or "\"\"" or "false" or "\"0\"",
    };

    private static Xunit.Sdk.XunitException Fail(string path, string expected, JsonNode? actual, string line) =>
        new($"{path}: protojson writes {expected}, the agent wrote {actual?.ToJsonString() ?? "nothing"}\n{line}");
#else
    public static Google.Protobuf.IMessage Parse(string line) => throw new InvalidOperationException(SkipReason);

    public static Google.Protobuf.IMessage AssertTetragonLine(string line) => throw new InvalidOperationException(SkipReason);

    public static string? SkipReason =>
        $"Tetragon's .proto files were not there when the tests were built ({Dir}): set SECAGENT_SHARED_DIR (or put the team's shared folder beside the clone) and rebuild";
#endif
}

/// <summary>A fact that parses with Tetragon's definitions: skipped, with the reason, where they are absent.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class TetragonProtoFactAttribute : FactAttribute
{
    public TetragonProtoFactAttribute() => Skip = TetragonProtos.SkipReason;
}
