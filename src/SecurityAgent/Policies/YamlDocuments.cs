using System.Globalization;
using Newtonsoft.Json.Linq;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace SecurityAgent.Policies;

/// <summary>A YAML document as JSON (for schema validation) plus the position of every node, keyed by
/// its field path ("spec.kprobes[0].args[1].type"), so every later error can point at file:line:column.</summary>
public sealed class YamlDocument
{
    public required JToken Json { get; init; }
    public required IReadOnlyDictionary<string, Mark> Positions { get; init; }
    public required Mark Start { get; init; }

    /// <summary>The position of a field path, or of its nearest ancestor that has one.</summary>
    public Mark PositionOf(string path)
    {
        for (var p = path; ; p = Parent(p))
        {
            if (Positions.TryGetValue(p, out var m)) return m;
            if (p.Length == 0) return Start;
        }
    }

    private static string Parent(string path)
    {
        int i = Math.Max(path.LastIndexOf('.'), path.LastIndexOf('['));
        return i <= 0 ? "" : path[..i];
    }
}

public static class YamlDocuments
{
    /// <summary>Parses every document of a multi-document YAML text. Documents are split at `---` lines and
    /// parsed one by one, so a syntax error in one is reported (as a diagnostic) and the others still load.</summary>
    public static (List<YamlDocument> Documents, List<PolicyDiagnostic> Errors) Parse(string file, string text)
    {
        var docs = new List<YamlDocument>();
        var errors = new List<PolicyDiagnostic>();
        foreach (var (chunk, firstLine) in Split(text))
        {
            try
            {
                var stream = new YamlStream();
                stream.Load(new StringReader(chunk));
                foreach (var d in stream.Documents)
                {
                    if (d.RootNode is YamlScalarNode { Value: null or "" })
                        continue;
                    var positions = new Dictionary<string, Mark>();
                    var json = ToJson(d.RootNode, "", positions, firstLine);
                    docs.Add(new YamlDocument { Json = json, Positions = positions, Start = Shift(d.RootNode.Start, firstLine) });
                }
            }
            catch (YamlException e)
            {
                errors.Add(new PolicyDiagnostic(file, (int)e.Start.Line + firstLine, (int)e.Start.Column, "", "YAML syntax error: " + (e.InnerException?.Message ?? e.Message)));
            }
        }
        return (docs, errors);
    }

    private static IEnumerable<(string Chunk, int FirstLine)> Split(string text)
    {
        var lines = text.Replace("\r\n", "\n").Split('\n');
        int start = 0;
        for (int i = 0; i <= lines.Length; i++)
        {
            if (i == lines.Length || (lines[i].StartsWith("---") && (lines[i].Length == 3 || char.IsWhiteSpace(lines[i][3]))))
            {
                if (i > start)
                    yield return (string.Join('\n', lines[start..i]), start);
                start = i + 1;
            }
        }
    }

    private static Mark Shift(Mark m, int lines) => new(m.Index, m.Line + lines, m.Column);

    private static JToken ToJson(YamlNode node, string path, Dictionary<string, Mark> positions, int lineOffset)
    {
        positions.TryAdd(path, Shift(node.Start, lineOffset));
        switch (node)
        {
            case YamlMappingNode map:
                var obj = new JObject();
                foreach (var (k, v) in map.Children)
                {
                    var key = ((YamlScalarNode)k).Value ?? "";
                    var child = path.Length == 0 ? key : path + "." + key;
                    positions[child] = Shift(k.Start, lineOffset);
                    obj[key] = ToJson(v, child, positions, lineOffset);
                }
                return obj;
            case YamlSequenceNode seq:
                var arr = new JArray();
                int i = 0;
                foreach (var item in seq.Children)
                    arr.Add(ToJson(item, $"{path}[{i++}]", positions, lineOffset));
                return arr;
            case YamlScalarNode s:
                return Scalar(s);
            default:
                return JValue.CreateNull();
        }
    }

    /// <summary>Plain scalars get YAML's core types (int, bool, null); quoted ones stay strings.</summary>
    private static JToken Scalar(YamlScalarNode s)
    {
        var v = s.Value ?? "";
        if (s.Style is ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted or ScalarStyle.Literal or ScalarStyle.Folded)
            return new JValue(v);
        if (v is "true" or "True" or "TRUE") return new JValue(true);
        if (v is "false" or "False" or "FALSE") return new JValue(false);
        if (v is "" or "~" or "null" or "Null" or "NULL") return JValue.CreateNull();
        if (long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n)) return new JValue(n);
        if (v.StartsWith("0x") && long.TryParse(v[2..], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var h)) return new JValue(h);
        return new JValue(v);
    }
}
