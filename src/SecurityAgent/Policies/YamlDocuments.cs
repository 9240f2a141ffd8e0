using System.Text;
using System.Text.Json;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace SecurityAgent.Policies;

/// <summary>A YAML node with the position it starts at. Aliases are the node they name (shared, never copied);
/// <see cref="Size"/> counts a node with everything under it, aliases expanded.</summary>
public abstract class YNode(SourcePos pos)
{
    public SourcePos Pos { get; } = pos;
    public int Size { get; private protected set; } = 1;
    /// <summary>Levels of nesting from this node down, aliases expanded (a scalar is 1).</summary>
    public int Height { get; private protected set; } = 1;
    public abstract string Describe { get; }
}

public enum ScalarKind { Null, Bool, Integer, String }

public sealed class YScalar(SourcePos pos, string value, bool quoted) : YNode(pos)
{
    public string Value { get; } = value;
    /// <summary>Quoted (or a block scalar, or tagged !!str): always a string.</summary>
    public bool Quoted { get; } = quoted;

    /// <summary>YAML's core schema for plain scalars: null, true/false, integers (decimal, 0x, 0o); the rest are strings.</summary>
    public ScalarKind Kind => Quoted ? ScalarKind.String
        : Value is "" or "~" or "null" or "Null" or "NULL" ? ScalarKind.Null
        : Value is "true" or "True" or "TRUE" or "false" or "False" or "FALSE" ? ScalarKind.Bool
        : PolicyValues.LooksLikeInteger(Value) ? ScalarKind.Integer
        : ScalarKind.String;

    public bool IsNull => Kind == ScalarKind.Null;
    public override string Describe => Kind switch { ScalarKind.Null => "null", _ => $"'{PolicyValues.Shorten(Value)}'" };
}

public sealed class YSequence(SourcePos pos, List<YNode> items) : YNode(pos)
{
    public IReadOnlyList<YNode> Items { get; } = items;
    public override string Describe => "a list";
    internal void Seal()
    {
        Size = 1 + Items.Sum(i => i.Size);
        Height = 1 + Items.Select(i => i.Height).DefaultIfEmpty(0).Max();
    }
}

public sealed class YMapping(SourcePos pos, List<KeyValuePair<YScalar, YNode>> entries) : YNode(pos)
{
    public IReadOnlyList<KeyValuePair<YScalar, YNode>> Entries { get; } = entries;
    public override string Describe => "a mapping";
    internal void Seal()
    {
        Size = 1 + Entries.Sum(e => 1 + e.Value.Size);
        Height = 1 + Entries.Select(e => e.Value.Height).DefaultIfEmpty(0).Max();
    }

    public KeyValuePair<YScalar, YNode>? Entry(string key)
    {
        foreach (var e in Entries)
            if (e.Key.Value == key) return e;
        return null;
    }
}

/// <summary>One YAML document of a policy source.</summary>
public sealed class YamlDocument(YNode root)
{
    public YNode Root { get; } = root;

    /// <summary>The document as JSON (what kubectl sends for a YAML manifest).</summary>
    public string ToJson()
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { MaxDepth = PolicyLimits.MaxDepth + 1 }))
            Write(w, Root);
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>The content as canonical JSON (not its layout or comments): an unchanged policy is not reloaded. Kept and
    /// compared whole rather than hashed: SHA-256 would load System.Security.Cryptography and OpenSSL (~5 MB resident)
    /// into an agent that needs them for nothing else.</summary>
    public string Content => ToJson();

    private static void Write(Utf8JsonWriter w, YNode n)
    {
        switch (n)
        {
            case YMapping m:
                w.WriteStartObject();
                foreach (var (k, v) in m.Entries)
                {
                    w.WritePropertyName(k.Value);
                    Write(w, v);
                }
                w.WriteEndObject();
                break;
            case YSequence s:
                w.WriteStartArray();
                foreach (var i in s.Items) Write(w, i);
                w.WriteEndArray();
                break;
            case YScalar s:
                switch (s.Kind)
                {
                    case ScalarKind.Null: w.WriteNullValue(); break;
                    case ScalarKind.Bool: w.WriteBooleanValue(s.Value[0] is 't' or 'T'); break;
                    case ScalarKind.Integer when PolicyValues.TryParseInteger(s.Value, out var v, out var negative):
                        if (negative) w.WriteNumberValue((long)v); else w.WriteNumberValue(v);
                        break;
                    default: w.WriteStringValue(s.Value); break;
                }
                break;
        }
    }
}

/// <summary>Reads policy YAML within <see cref="PolicyLimits"/>: size, nesting depth (checked on the raw text before
/// YamlDotNet sees it, and again on its events), nodes including alias expansion, scalar length, duplicate keys.
/// Documents are split at `---` lines and parsed one by one, so a broken document is reported and the others load.
/// Nothing here throws: every problem is a diagnostic with file:line:column.</summary>
public static class YamlDocuments
{
    public static (List<YamlDocument> Documents, List<PolicyDiagnostic> Errors) Parse(string file, string text)
    {
        var docs = new List<YamlDocument>();
        var errors = new List<PolicyDiagnostic>();
        if (text.Length > PolicyLimits.MaxBytes)
        {
            errors.Add(new(file, SourcePos.Start, "", $"the policy is {text.Length} characters long, more than the limit of {PolicyLimits.MaxBytes} bytes"));
            return (docs, errors);
        }
        foreach (var (chunk, firstLine) in Split(text))
        {
            if (TooDeep(chunk) is { } deep)
            {
                errors.Add(new(file, deep.Line + firstLine, deep.Column, "", $"nesting deeper than {PolicyLimits.MaxDepth} levels (limit)"));
                continue;
            }
            Build(file, chunk, firstLine, docs, errors);
        }
        return (docs, errors);
    }

    private static IEnumerable<(string Chunk, int FirstLine)> Split(string text)
    {
        int chunkStart = 0, chunkLine = 0, line = 0, pos = 0;
        while (true)
        {
            int end = text.IndexOf('\n', pos);
            int lineEnd = end < 0 ? text.Length : end;
            if (lineEnd - pos >= 3 && string.CompareOrdinal(text, pos, "---", 0, 3) == 0 && (lineEnd - pos == 3 || char.IsWhiteSpace(text[pos + 3])))
            {
                if (pos > chunkStart)
                    yield return (text[chunkStart..pos], chunkLine);
                chunkStart = Math.Min(lineEnd + 1, text.Length);
                chunkLine = line + 1;
            }
            if (end < 0) break;
            pos = end + 1;
            line++;
        }
        if (chunkStart < text.Length)
            yield return (text[chunkStart..], chunkLine);
    }

    /// <summary>The position where flow collections ([ {) nest deeper than the limit, outside quotes and comments; a
    /// conservative bound taken before the parser runs (YamlDotNet's scanner is quadratic in flow depth).</summary>
    internal static SourcePos? TooDeep(string text)
    {
        int depth = 0, line = 1, col = 0;
        char quote = '\0';
        bool comment = false, tokenStart = true;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            col++;
            if (c == '\n')
            {
                line++;
                col = 0;
                comment = false;
                tokenStart = true;
                continue;
            }
            if (comment) continue;
            if (quote == '"')
            {
                if (c == '\\') { i++; col++; }
                else if (c == '"') quote = '\0';
                continue;
            }
            if (quote == '\'')
            {
                if (c == '\'' && i + 1 < text.Length && text[i + 1] == '\'') { i++; col++; }
                else if (c == '\'') quote = '\0';
                continue;
            }
            if (tokenStart && c == '#') { comment = true; continue; }
            if (tokenStart && c is '"' or '\'') { quote = c; continue; }
            if (c is '[' or '{' && ++depth > PolicyLimits.MaxDepth)
                return new SourcePos(line, col);
            if (c is ']' or '}' && depth > 0) depth--;
            tokenStart = c is ' ' or '\t' or '[' or '{' or ',' or ':' or '-' or '?';
        }
        return null;
    }

    private sealed class Frame(YNode node, string? anchor)
    {
        public YNode Node { get; } = node;
        public string? Anchor { get; } = anchor;
        public YScalar? Key;
        public HashSet<string>? Keys;
    }

    private sealed class DocumentError(SourcePos pos, string message) : Exception(message)
    {
        public SourcePos Pos { get; } = pos;
    }

    private static void Build(string file, string chunk, int firstLine, List<YamlDocument> docs, List<PolicyDiagnostic> errors)
    {
        var parser = new Parser(new StringReader(chunk));
        var anchors = new Dictionary<string, YNode>();
        var stack = new List<Frame>();
        YNode? root = null;
        int nodes = 0;
        SourcePos last = SourcePos.Start;
        SourcePos At(Mark m) => new((int)Math.Min(m.Line, int.MaxValue / 2) + firstLine, (int)Math.Min(m.Column, int.MaxValue));

        void Count(SourcePos pos, int n)
        {
            nodes += n;
            if (nodes > PolicyLimits.MaxNodes)
                throw new DocumentError(pos, $"more than {PolicyLimits.MaxNodes} YAML nodes (limit; aliases count as the nodes they repeat)");
        }

        void Add(YNode node)
        {
            if (stack.Count == 0)
            {
                root = node;
                return;
            }
            var top = stack[^1];
            if (top.Node is YSequence seq)
            {
                ((List<YNode>)seq.Items).Add(node);
                return;
            }
            var map = (YMapping)top.Node;
            if (top.Key is null)
            {
                if (node is not YScalar key)
                    throw new DocumentError(node.Pos, "a mapping key must be a plain name, not " + node.Describe
                        + (node is YMapping { Entries: [{ Key.Value: var k }, ..] } && k.StartsWith('.') ? " (an unfilled {{.Template}} placeholder?)" : ""));
                if (!(top.Keys ??= []).Add(key.Value))
                    throw new DocumentError(key.Pos, $"duplicate key '{PolicyValues.Shorten(key.Value)}'");
                top.Key = key;
                return;
            }
            ((List<KeyValuePair<YScalar, YNode>>)map.Entries).Add(new(top.Key, node));
            top.Key = null;
        }

        void Anchor(string? name, YNode node)
        {
            if (!string.IsNullOrEmpty(name)) anchors[name] = node;
        }

        try
        {
            while (parser.MoveNext())
            {
                var ev = parser.Current!;
                last = At(ev.Start);
                switch (ev)
                {
                    case DocumentStart:
                        anchors.Clear();
                        stack.Clear();
                        root = null;
                        nodes = 0;
                        break;
                    case DocumentEnd:
                        if (root is not null and not YScalar { IsNull: true })
                            docs.Add(new YamlDocument(root));
                        root = null;
                        break;
                    case Scalar s:
                        if (s.Value.Length > PolicyLimits.MaxScalarLength)
                            throw new DocumentError(last, $"a value of {s.Value.Length} characters, more than the limit of {PolicyLimits.MaxScalarLength}");
                        Count(last, 1);
                        var scalar = new YScalar(last, s.Value, s.Style is not ScalarStyle.Plain || !s.Tag.IsEmpty && s.Tag.Value == "tag:yaml.org,2002:str");
                        Anchor(s.Anchor.IsEmpty ? null : s.Anchor.Value, scalar);
                        Add(scalar);
                        break;
                    case SequenceStart or MappingStart:
                        if (stack.Count >= PolicyLimits.MaxDepth)
                            throw new DocumentError(last, $"nesting deeper than {PolicyLimits.MaxDepth} levels (limit)");
                        Count(last, 1);
                        var start = (NodeEvent)ev;
                        stack.Add(new Frame(ev is SequenceStart ? new YSequence(last, []) : new YMapping(last, []), start.Anchor.IsEmpty ? null : start.Anchor.Value));
                        break;
                    case SequenceEnd or MappingEnd:
                        var frame = stack[^1];
                        stack.RemoveAt(stack.Count - 1);
                        if (frame.Node is YSequence q) q.Seal(); else ((YMapping)frame.Node).Seal();
                        Anchor(frame.Anchor, frame.Node);
                        Add(frame.Node);
                        break;
                    case AnchorAlias alias:
                        if (alias.Value.IsEmpty || !anchors.TryGetValue(alias.Value.Value, out var target))
                            throw new DocumentError(last, $"alias *{(alias.Value.IsEmpty ? "" : PolicyValues.Shorten(alias.Value.Value))} names no complete anchor before it");
                        if (stack.Count + target.Height > PolicyLimits.MaxDepth + 1)
                            throw new DocumentError(last, $"nesting deeper than {PolicyLimits.MaxDepth} levels (limit; an alias counts as the nodes it repeats)");
                        Count(last, target.Size);
                        Add(target);
                        break;
                }
            }
        }
        catch (DocumentError e)
        {
            errors.Add(new(file, e.Pos, "", e.Message));
        }
        catch (YamlException e)
        {
            var pos = e.Start.Line > 0 ? At(e.Start) : last;
            errors.Add(new(file, pos, "", "YAML syntax error: " + (e.InnerException?.Message ?? e.Message)));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // YamlDotNet throws other exception types on some malformed input: still a syntax error of this document.
            errors.Add(new(file, last, "", $"YAML syntax error: {e.Message}"));
        }
    }
}
