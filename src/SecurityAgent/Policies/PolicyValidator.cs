using Newtonsoft.Json.Linq;
using NJsonSchema;
using NJsonSchema.Validation;
using SecurityAgent.Kernel;

namespace SecurityAgent.Policies;

/// <summary>The outcome for one policy document of a file.</summary>
public sealed record ValidatedPolicy(string File, string? Name, string? Kind, JToken? Json, IReadOnlyList<PolicyDiagnostic> Diagnostics, YamlDocument? Source = null)
{
    public bool Ok => Diagnostics.Count == 0;
}

/// <summary>Checks tracing policies: the JSON schema (schemas/tracingpolicy.schema.json, the single source
/// of the shape) first, then what a schema cannot say (operator vs argument type, limits, references,
/// what this kernel can hook). Every problem names file:line:column and the field.</summary>
public sealed class PolicyValidator(KernelFeatures features, string? tracefs = KernelMounts.TraceFs)
{
    public const int MaxSelectors = 5;

    /// <summary>schemas/tracingpolicy.schema.json, embedded in the agent.</summary>
    internal static readonly Lazy<string> SchemaText = new(() =>
    {
        using var s = typeof(PolicyValidator).Assembly.GetManifestResourceStream("schemas/tracingpolicy.schema.json")
            ?? throw new InvalidOperationException("tracingpolicy.schema.json is not embedded");
        return new StreamReader(s).ReadToEnd();
    });

    private static readonly Lazy<JsonSchema> Schema = new(() => JsonSchema.FromJsonAsync(SchemaText.Value).GetAwaiter().GetResult());

    public IReadOnlyList<ValidatedPolicy> ValidateFile(string path) => ValidateText(path, File.ReadAllText(path));

    public IReadOnlyList<ValidatedPolicy> ValidateText(string file, string text)
    {
        var (docs, syntax) = YamlDocuments.Parse(file, text);
        var results = syntax.Select(e => new ValidatedPolicy(file, null, null, null, [e])).ToList();
        foreach (var doc in docs)
        {
            var diags = new List<PolicyDiagnostic>();
            void Report(string field, string message)
            {
                var m = doc.PositionOf(field);
                diags.Add(new PolicyDiagnostic(file, (int)m.Line, (int)m.Column, field, message));
            }
            foreach (var e in Flatten(Schema.Value.Validate(doc.Json)))
                ReportSchemaError(e, doc.Json, Report);
            if (diags.Count == 0)
                new SemanticPass(doc.Json, features, tracefs, Report).Run();
            results.Add(new ValidatedPolicy(file, doc.Json.SelectToken("metadata.name")?.ToString(), doc.Json.SelectToken("kind")?.ToString(), doc.Json, diags, doc));
        }
        return results;
    }

    private static IEnumerable<ValidationError> Flatten(IEnumerable<ValidationError> errors)
    {
        foreach (var e in errors)
        {
            if (e is ChildSchemaValidationError child && child.Errors.Count > 0)
                foreach (var inner in Flatten(child.Errors.SelectMany(kv => kv.Value)))
                    yield return inner;
            else
                yield return e;
        }
    }

    private static void ReportSchemaError(ValidationError e, JToken json, Action<string, string> report)
    {
        // NJsonSchema paths look like "#/spec.kprobes[0].args[1].type"; ours drop the "#/".
        var path = (e.Path ?? "").TrimStart('#', '/');
        switch (e.Kind)
        {
            case ValidationErrorKind.NoAdditionalPropertiesAllowed:
                var hint = e.Property is not null && KnownFields.Closest(e.Property) is { } s ? $" (did you mean '{s}'?)" : "";
                report(path, $"unknown field '{e.Property}'{hint}");
                break;
            case ValidationErrorKind.PropertyRequired:
                // The path names the missing field; point at the mapping that lacks it.
                var owner = path == e.Property ? "" : path.EndsWith("." + e.Property) ? path[..^(e.Property!.Length + 1)] : path;
                report(owner, $"required field '{e.Property}' is missing");
                break;
            case ValidationErrorKind.NotInEnumeration:
                report(path, $"'{json.SelectToken(path)}' is not one of the allowed values");
                break;
            default:
                report(path, $"invalid value ({Humanize(e.Kind)})");
                break;
        }
    }

    private static string Humanize(ValidationErrorKind k) => k switch
    {
        ValidationErrorKind.IntegerExpected => "an integer is expected",
        ValidationErrorKind.StringExpected => "a string is expected",
        ValidationErrorKind.BooleanExpected => "true or false is expected",
        ValidationErrorKind.ArrayExpected => "a list is expected",
        ValidationErrorKind.ObjectExpected => "a mapping is expected",
        ValidationErrorKind.PatternMismatch => "does not match the expected pattern",
        ValidationErrorKind.NumberTooSmall => "too small",
        ValidationErrorKind.NumberTooBig => "too large",
        _ => k.ToString(),
    };
}

/// <summary>Field names the schema knows, for "did you mean" hints on typos.</summary>
internal static class KnownFields
{
    private static readonly Lazy<string[]> Names = new(() =>
    {
        var root = JObject.Parse(PolicyValidator.SchemaText.Value);
        return root.Descendants().OfType<JProperty>().Where(p => p.Name == "properties").SelectMany(p => ((JObject)p.Value).Properties().Select(x => x.Name)).Distinct().ToArray();
    });

    public static string? Closest(string name) =>
        Names.Value.Select(n => (n, d: Distance(n.ToLowerInvariant(), name.ToLowerInvariant()))).Where(x => x.d <= 2).OrderBy(x => x.d).Select(x => x.n).FirstOrDefault();

    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
            for (int j = 1; j <= b.Length; j++)
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
        return d[a.Length, b.Length];
    }
}
