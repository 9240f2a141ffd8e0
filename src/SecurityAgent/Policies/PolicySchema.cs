using System.Text.Json;
using System.Text.RegularExpressions;

namespace SecurityAgent.Policies;

/// <summary>One node of the policy schema: the subset of JSON Schema that schemas/tracingpolicy.schema.json uses.</summary>
internal sealed class SchemaNode
{
    public HashSet<string>? Types;
    public Dictionary<string, SchemaNode>? Properties;
    public bool AdditionalAllowed = true;
    public SchemaNode? AdditionalSchema;
    public List<string> Required = [];
    public List<string>? Enum;
    public SchemaNode? Items;
    public long? Minimum, Maximum;
    public int? MinLength, MaxLength;
    public Regex? Pattern;
    public string? Description;
}

/// <summary>The shape of a tracing policy, checked on the YAML tree against the embedded
/// schemas/tracingpolicy.schema.json: the schema is the single source of the shape for the agent and for the CRDs
/// (deploy/crds.yaml is generated from it). Every problem names the field and its position.</summary>
public static class PolicySchema
{
    /// <summary>schemas/tracingpolicy.schema.json, embedded in the agent.</summary>
    public static string Text => TextLazy.Value;

    private static readonly Lazy<string> TextLazy = new(() =>
    {
        using var s = typeof(PolicySchema).Assembly.GetManifestResourceStream("schemas/tracingpolicy.schema.json")
            ?? throw new InvalidOperationException("tracingpolicy.schema.json is not embedded");
        return new StreamReader(s).ReadToEnd();
    });

    private static readonly Lazy<(SchemaNode Root, string[] Names)> Compiled = new(() =>
    {
        using var doc = JsonDocument.Parse(Text);
        var defs = doc.RootElement.GetProperty("definitions");
        var cache = new Dictionary<string, SchemaNode>();
        var names = new HashSet<string>();
        var root = Compile(doc.RootElement, defs, cache, names);
        return (root, names.ToArray());
    });

    internal static SchemaNode Root => Compiled.Value.Root;

    private static readonly HashSet<string> Ignored = ["$schema", "$id", "title", "definitions"];

    private static SchemaNode Compile(JsonElement e, JsonElement defs, Dictionary<string, SchemaNode> cache, HashSet<string> names)
    {
        if (e.TryGetProperty("$ref", out var r))
        {
            var name = r.GetString()!.Split('/')[^1];
            if (!cache.TryGetValue(name, out var n))
            {
                n = cache[name] = new SchemaNode();
                Fill(n, defs.GetProperty(name), defs, cache, names);
            }
            return n;
        }
        var node = new SchemaNode();
        Fill(node, e, defs, cache, names);
        return node;
    }

    private static void Fill(SchemaNode n, JsonElement e, JsonElement defs, Dictionary<string, SchemaNode> cache, HashSet<string> names)
    {
        foreach (var p in e.EnumerateObject())
        {
            switch (p.Name)
            {
                case "type":
                    n.Types = p.Value.ValueKind == JsonValueKind.Array ? p.Value.EnumerateArray().Select(t => t.GetString()!).ToHashSet() : [p.Value.GetString()!];
                    break;
                case "properties":
                    n.Properties = p.Value.EnumerateObject().ToDictionary(x => x.Name, x => { names.Add(x.Name); return Compile(x.Value, defs, cache, names); });
                    break;
                case "additionalProperties" when p.Value.ValueKind is JsonValueKind.False or JsonValueKind.True:
                    n.AdditionalAllowed = p.Value.GetBoolean();
                    break;
                case "additionalProperties":
                    n.AdditionalSchema = Compile(p.Value, defs, cache, names);
                    break;
                case "required": n.Required = p.Value.EnumerateArray().Select(x => x.GetString()!).ToList(); break;
                case "enum": n.Enum = p.Value.EnumerateArray().Select(x => x.GetString()!).ToList(); break;
                case "items": n.Items = Compile(p.Value, defs, cache, names); break;
                case "minimum": n.Minimum = p.Value.GetInt64(); break;
                case "maximum": n.Maximum = p.Value.GetInt64(); break;
                case "minLength": n.MinLength = p.Value.GetInt32(); break;
                case "maxLength": n.MaxLength = p.Value.GetInt32(); break;
                case "description": n.Description = p.Value.GetString(); break;
                // The schema's own patterns (anchored character classes, one loop each: linear in the interpreter), so the
                // interpreter: NonBacktracking's construction JIT-compiles ~75 generic methods the precompiled framework
                // lacks, on the first policy's check (issue 10). The timeout bounds a pattern added later that is not.
                case "pattern": n.Pattern = new Regex(p.Value.GetString()!, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)); break;
                case var k when Ignored.Contains(k): break;
                default: throw new InvalidOperationException($"tracingpolicy.schema.json uses '{p.Name}', which the policy shape check does not implement");
            }
        }
    }

    /// <summary>Checks one document against the schema (into its own bag); true when it has the policy's shape.</summary>
    public static bool Check(YNode root, DiagnosticBag diags)
    {
        Check(root, Root, "", diags);
        return !diags.HasErrors;
    }

    internal static string Child(string path, string key) => path.Length == 0 ? key : path + "." + key;

    private static string JsonType(YNode n) => n switch
    {
        YMapping => "object",
        YSequence => "array",
        YScalar s => s.Kind switch { ScalarKind.Null => "null", ScalarKind.Bool => "boolean", ScalarKind.Integer => "integer", _ => "string" },
        _ => "unknown",
    };

    private static string Expected(HashSet<string> types) => string.Join(" or ", types.Order().Select(t => t switch
    {
        "object" => "a mapping", "array" => "a list", "integer" => "an integer", "boolean" => "true or false", _ => "a " + t,
    }));

    private static void Check(YNode node, SchemaNode schema, string path, DiagnosticBag diags)
    {
        var type = JsonType(node);
        if (schema.Types is { } types && !types.Contains(type))
        {
            diags.Error(node.Pos, path, $"{Expected(types)} is expected, not {node.Describe}");
            return;
        }
        if (schema.Enum is { } allowed)
        {
            if (node is not YScalar { Kind: not ScalarKind.Null } e || !allowed.Contains(e.Value))
                diags.Error(node.Pos, path, $"{node.Describe} is not one of the allowed values ({string.Join(", ", allowed.Take(20))}{(allowed.Count > 20 ? ", ..." : "")})");
            return;
        }
        switch (node)
        {
            case YScalar s when type == "integer":
                if (!PolicyValues.TryParseYamlInteger(s.Value, out var v))
                    diags.Error(s.Pos, path, $"{s.Describe} is not a 64-bit integer");
                else if (v < (schema.Minimum ?? long.MinValue) || v > (schema.Maximum ?? long.MaxValue))
                    diags.Error(s.Pos, path, $"{s.Describe} is out of range ({(schema.Minimum is { } min ? min.ToString() : "")}..{(schema.Maximum is { } max ? max.ToString() : "")})");
                break;
            case YScalar s when type == "string":
                if (s.Value.Length < (schema.MinLength ?? 0))
                    diags.Error(s.Pos, path, schema.MinLength == 1 ? "must not be empty" : $"shorter than {schema.MinLength} characters");
                else if (s.Value.Length > (schema.MaxLength ?? int.MaxValue))
                    diags.Error(s.Pos, path, $"longer than {schema.MaxLength} characters");
                else if (schema.Pattern is { } re && !re.IsMatch(s.Value))
                    diags.Error(s.Pos, path, schema.Description is { } what ? $"{s.Describe} is not {what} ({re})" : $"{s.Describe} does not match the expected form {re}");
                break;
            case YSequence seq when schema.Items is { } items:
                for (int i = 0; i < seq.Items.Count; i++)
                    Check(seq.Items[i], items, $"{path}[{i}]", diags);
                break;
            case YMapping map:
                foreach (var (key, value) in map.Entries)
                {
                    var child = Child(path, key.Value);
                    if (schema.Properties?.TryGetValue(key.Value, out var ps) == true)
                    {
                        if (value is YScalar { IsNull: true } && !schema.Required.Contains(key.Value))
                            continue; // an empty optional field is an absent one (as Kubernetes prunes it)
                        Check(value, ps, child, diags);
                    }
                    else if (schema.AdditionalSchema is { } extra)
                        Check(value, extra, child, diags);
                    else if (!schema.AdditionalAllowed)
                        diags.Error(key.Pos, child, $"unknown field '{PolicyValues.Shorten(key.Value)}'" + (Closest(key.Value) is { } s ? $" (did you mean '{s}'?)" : ""));
                }
                foreach (var required in schema.Required)
                    if (map.Entry(required) is null)
                        diags.Error(map.Pos, path, $"required field '{required}' is missing");
                break;
        }
    }

    /// <summary>The schema's field name closest to a misspelled one (edit distance at most 2).</summary>
    internal static string? Closest(string name)
    {
        if (name.Length > PolicyLimits.MaxSuggestedNameLength) return null;
        var lower = name.ToLowerInvariant();
        return Compiled.Value.Names.Select(n => (n, d: Distance(n.ToLowerInvariant(), lower))).Where(x => x.d <= 2)
            .OrderBy(x => x.d).ThenBy(x => x.n, StringComparer.Ordinal).Select(x => x.n).FirstOrDefault();
    }

    private static int Distance(string a, string b)
    {
        if (Math.Abs(a.Length - b.Length) > 2) return 3;
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
            for (int j = 1; j <= b.Length; j++)
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
        return d[a.Length, b.Length];
    }
}
