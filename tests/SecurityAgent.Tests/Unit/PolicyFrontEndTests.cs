using System.Diagnostics;
using System.Text.Json.Nodes;
using SecurityAgent.Kernel;
using SecurityAgent.Policies;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Unit;

/// <summary>The bounded front end: the inputs that took the agent down (issue 12), the limits, positions on the typed
/// model, and the schema kept in step with the typed reader.</summary>
public class PolicyFrontEndTests
{
    private static PolicyValidator Validator(KernelFeatures? f = null) => new(f ?? PolicyValidatorTests.OurKernel, PolicyCompilerTests.Formats);

    private static PolicyDiagnostic Only(string yaml, string file = "p.yaml")
    {
        var diags = Validator().ValidateText(file, yaml).SelectMany(r => r.Diagnostics).ToList();
        return Assert.Single(diags);
    }

    private static string Policy(string selector = "", string args = "    - index: 6\n      type: string\n") => $"""
        apiVersion: cilium.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: p
        spec:
          tracepoints:
          - subsystem: syscalls
            event: sys_enter_openat
            args:
        {args}    selectors:
        {selector}
        """;

    [Fact]
    public void An_unfilled_tetragon_template_is_a_yaml_error_at_the_placeholder_not_a_crash()
    {
        var yaml = Policy("    - matchPIDs:\n      - operator: In\n        values: [{{.MatchedPID}}]\n");
        var d = Only(yaml);
        Assert.Equal((15, 19), (d.Line, d.Column));
        Assert.Contains("unfilled {{.Template}} placeholder", d.Message);
    }

    [Fact]
    public void An_argument_index_beyond_32_bits_is_out_of_range_at_the_index()
    {
        var d = Only(Policy("    - matchActions:\n      - action: Post\n", "    - index: 4294967296\n      type: string\n"));
        Assert.Equal(("spec.tracepoints[0].args[0].index", 10, 14), (d.Field, d.Line, d.Column));
        Assert.Contains("out of range (0..255)", d.Message);
    }

    [Fact]
    public void A_tracepoint_subsystem_that_is_a_path_is_refused_and_never_read_from_disk()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("evil/ev"));
        File.WriteAllText(dir.File("evil/ev/format"), "ID: notanumber\n");
        var yaml = Policy("").Replace("subsystem: syscalls", $"subsystem: {dir.File("evil")}").Replace("event: sys_enter_openat", "event: ev");
        var d = Only(yaml);
        Assert.Equal(("spec.tracepoints[0].subsystem", 7), (d.Field, d.Line));
        Assert.Contains("is not a tracefs subsystem name", d.Message);
        // The tracefs reader itself resolves names only inside tracefs/events.
        Assert.Null(TracepointFormat.TryRead(dir.Path, "../" + Path.GetFileName(dir.Path) + "/evil", "ev"));
        Assert.Null(TracepointFormat.TryRead("/", "..", "etc"));
    }

    [Fact]
    public void A_format_file_that_does_not_parse_is_no_tracepoint_rather_than_an_exception()
    {
        Assert.Null(TracepointFormat.TryParse("s", "e", "ID: notanumber\n"));
        Assert.Null(TracepointFormat.TryParse("s", "e", "field:int x;\toffset:abc;\tsize:4;\tsigned:1;\n"));
    }

    [Fact]
    public void A_symlink_to_dev_zero_and_a_fifo_are_refused_without_reading_or_blocking()
    {
        using var dir = new TempDir();
        File.CreateSymbolicLink(dir.File("zero.yaml"), "/dev/zero");
        Assert.Equal(0, Run.Wait("mkfifo", [dir.File("fifo.yaml")]).Code);
        var sw = Stopwatch.StartNew();
        Assert.Contains("a symlink out of the policy directory (to /dev/zero)", PolicyFiles.ReadTrusted(dir.Path, dir.File("zero.yaml")).Refusal);
        Assert.Contains("a FIFO, not a regular file", PolicyFiles.ReadTrusted(dir.Path, dir.File("fifo.yaml")).Refusal);
        Assert.Contains("a character device, not a regular file", PolicyFiles.ReadAny(dir.File("zero.yaml")).Refusal);
        var v = Assert.Single(Validator().ValidateFile(dir.File("fifo.yaml")));
        Assert.Equal((1, 1), (v.Diagnostics[0].Line, v.Diagnostics[0].Column));
        Assert.True(sw.ElapsedMilliseconds < 1000, $"took {sw.ElapsedMilliseconds} ms");
    }

    [Fact]
    public void A_policy_larger_than_the_limit_is_refused_by_size_before_it_is_parsed()
    {
        var big = Policy("") + "# " + new string('x', PolicyLimits.MaxBytes) + "\n";
        var d = Only(big);
        Assert.Equal((1, 1), (d.Line, d.Column));
        Assert.Contains($"more than the limit of {PolicyLimits.MaxBytes} bytes", d.Message);
        using var dir = new TempDir();
        File.WriteAllText(dir.File("big.yaml"), big);
        Assert.Contains("more than the limit", PolicyFiles.ReadTrusted(dir.Path, dir.File("big.yaml")).Refusal);
    }

    [Theory]
    [InlineData("key: ", "[", 1)]
    [InlineData("key: ", "{a: ", 1)]
    [InlineData("", "- ", 1)]
    public void Nesting_deeper_than_the_limit_is_refused_quickly_with_its_position(string prefix, string open, int line)
    {
        var text = prefix + string.Concat(Enumerable.Repeat(open, 500_000 / open.Length));
        var sw = Stopwatch.StartNew();
        var d = Only(text);
        Assert.True(sw.ElapsedMilliseconds < 1000, $"took {sw.ElapsedMilliseconds} ms");
        Assert.Equal(line, d.Line);
        Assert.True(d.Column > 1);
        Assert.Contains($"nesting deeper than {PolicyLimits.MaxDepth} levels (limit)", d.Message);
    }

    [Fact]
    public void Block_nesting_deeper_than_the_limit_is_refused_at_the_level_that_exceeds_it()
    {
        var text = string.Concat(Enumerable.Range(0, 100).Select(i => new string(' ', i) + "a:\n")) + new string(' ', 100) + "b";
        var d = Only(text);
        Assert.Equal(PolicyLimits.MaxDepth + 1, d.Line);
        Assert.Contains("nesting deeper than", d.Message);
    }

    [Fact]
    public void A_billion_laughs_alias_expansion_stops_at_the_node_limit_in_milliseconds()
    {
        var bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + string.Concat(Enumerable.Range(1, 12).Select(i =>
            $"a{i}: &a{i} [{string.Join(", ", Enumerable.Repeat($"*a{i - 1}", 10))}]\n"));
        var sw = Stopwatch.StartNew();
        var d = Only(bomb);
        Assert.True(sw.ElapsedMilliseconds < 1000, $"took {sw.ElapsedMilliseconds} ms");
        Assert.Contains($"more than {PolicyLimits.MaxNodes} YAML nodes (limit; aliases count as the nodes they repeat)", d.Message);
        Assert.True(d.Line >= 5);
    }

    [Fact]
    public void Nesting_reached_only_through_aliases_counts_against_the_depth_limit()
    {
        var chain = "d0: &d0 " + new string('[', 40) + "x" + new string(']', 40) + "\n"
            + "d1: &d1 " + new string('[', 40) + "*d0" + new string(']', 40) + "\n";
        var d = Only(chain);
        Assert.Equal((2, 49), (d.Line, d.Column));
        Assert.Contains($"nesting deeper than {PolicyLimits.MaxDepth} levels (limit; an alias counts as the nodes it repeats)", d.Message);
    }

    [Fact]
    public void Aliases_within_the_limit_mean_what_they_repeat()
    {
        var yaml = Policy("    - matchBinaries:\n      - operator: In\n        values: &bins [\"/usr/bin/cat\"]\n    - matchBinaries:\n      - operator: In\n        values: *bins\n");
        var r = Assert.Single(Validator().ValidateText("p.yaml", yaml));
        Assert.True(r.Ok, string.Join("\n", r.Diagnostics));
        Assert.All(r.Plan!.Hooks[0].Selectors, s => Assert.Equal(["/usr/bin/cat"], r.Plan.ValueSets[s.BinaryValueSet!.Value].Values));
    }

    [Theory]
    [InlineData("a: &x [*x]\n", "names no complete anchor")]
    [InlineData("a: *nothing\n", "names no complete anchor")]
    [InlineData("a: 1\na: 2\n", "duplicate key 'a'")]
    [InlineData("? [a]\n: 1\n", "a mapping key must be a plain name, not a list")]
    public void Cyclic_or_dangling_aliases_duplicate_and_complex_keys_are_yaml_errors_with_positions(string yaml, string message)
    {
        var d = Only(yaml);
        Assert.Contains(message, d.Message);
        Assert.True(d.Line >= 1 && d.Column >= 1);
    }

    [Fact]
    public void A_scalar_longer_than_the_limit_is_refused_at_its_position()
    {
        var d = Only(Policy("").Replace("name: p", "name: " + new string('p', PolicyLimits.MaxScalarLength + 1)));
        Assert.Equal(4, d.Line);
        Assert.Contains($"more than the limit of {PolicyLimits.MaxScalarLength}", d.Message);
    }

    [Fact]
    public void Every_node_of_the_typed_model_knows_its_line_column_and_field()
    {
        var r = Assert.Single(Validator().ValidateText("p.yaml", TestPolicies.OpenatKill("typed", "/tmp/x/cat", "/etc/shadow")));
        var p = r.Policy!;
        Assert.Equal(("typed", new SourcePos(4, 9), "metadata.name"), (p.Metadata.Name.Value, p.Metadata.Name.Pos, p.Metadata.Name.Path));
        var hook = Assert.IsType<TracepointSpec>(Assert.Single(p.Spec.Hooks));
        Assert.Equal((new SourcePos(10, 5), "spec.tracepoints[0]"), (hook.Pos, hook.Path));
        Assert.Equal((6, new SourcePos(13, 14)), (hook.Args[0].Index.Value, hook.Args[0].Index.Pos));
        var m = hook.Selectors[0].MatchArgs[0];
        Assert.Equal(("Prefix", new SourcePos(18, 19), "spec.tracepoints[0].selectors[0].matchArgs[0].operator"), (m.Operator.Value, m.Operator.Pos, m.Operator.Path));
        Assert.Equal(("/etc/shadow", "spec.tracepoints[0].selectors[0].matchArgs[0].values[0]"), (m.Values[0].Value, m.Values[0].Path));
        Assert.Equal(new SourcePos(24, 17), hook.Selectors[0].MatchActions[0].Action.Pos);
    }

    [Fact]
    public void Integer_values_are_parsed_once_into_the_plan_as_tetragon_reads_them()
    {
        var yaml = Policy("    - matchArgs:\n      - index: 7\n        operator: Equal\n        values: [\"0755\", \"0x10\", \"-1\", \"12\"]\n",
            "    - index: 7\n      type: int\n");
        var r = Assert.Single(Validator().ValidateText("p.yaml", yaml));
        Assert.True(r.Ok, string.Join("\n", r.Diagnostics));
        var set = r.Plan!.ValueSets[r.Plan.Hooks[0].Selectors[0].Args[0].ValueSet!.Value];
        Assert.Equal([493UL, 16UL, ulong.MaxValue, 12UL], set.Integers);
        Assert.Equal(["493", "16", "-1", "12"], set.Values);
        Assert.True(set.ContainsInteger(ulong.MaxValue));
        Assert.False(set.ContainsInteger(755));
    }

    [Theory]
    [InlineData("DPort", "44444444", "'44444444' is not a port (0..65535)")]
    [InlineData("DPort", "-1", "'-1' is not a port (0..65535)")]
    [InlineData("DAddr", "10.0.0.0/33", "is not an address or CIDR")]
    [InlineData("DAddr", "1", "is not an address or CIDR")]
    [InlineData("Family", "AF_BOGUS", "is not an address family")]
    public void Socket_values_out_of_range_are_refused_at_the_value(string op, string value, string message)
    {
        var yaml = ConnectPolicies.Deny("c", "/x", 1, -1).Replace("operator: DPort\n        values: [\"1\"]", $"operator: {op}\n        values: [\"{value}\"]");
        var d = Only(yaml);
        Assert.Contains(message, d.Message);
        Assert.EndsWith(".values[0]", d.Field);
    }

    [Theory]
    [InlineData("rateLimit: 99999999999h", "is not a duration of at most a day")]
    [InlineData("rateLimitScope: global", "unsupported: rateLimitScope global")]
    public void Rate_limits_beyond_a_day_or_of_an_unsupported_scope_are_refused(string field, string message)
    {
        var d = Only(TestPolicies.OpenatKill("r", "/x", "/y", action: "Post\n        " + field));
        Assert.Contains(message, d.Message);
    }

    [Fact]
    public void An_argerror_that_is_not_a_negative_errno_is_refused()
    {
        var d = Only(ConnectPolicies.Deny("c", "/x", 1, 1));
        Assert.Contains("argError 1: Override returns a negative errno here", d.Message);
    }

    [Fact]
    public void No_input_escapes_the_validator_as_an_exception_even_for_non_policy_documents()
    {
        foreach (var text in new[] { "", "[]", "42", "~", "- a\n- b", "apiVersion: [", "\t\t", "%YAML 1.2\n---\n", "---\n---\n...\n", "a: !!binary x", "\0\u0001" })
        {
            var results = Validator().ValidateText("x.yaml", text);
            Assert.All(results.SelectMany(r => r.Diagnostics.Concat(r.Warnings)), d => Assert.True(d.Line >= 1 && d.Column >= 1, d.ToString()));
        }
    }

    [Fact]
    public void Every_field_the_schema_allows_is_read_into_the_typed_model()
    {
        var doc = Assert.Single(YamlDocuments.Parse("max.yaml", Maximal(PolicySchema.Root).ToJsonString()).Documents);
        var bag = new DiagnosticBag("max.yaml");
        Assert.True(PolicySchema.Check(doc.Root, bag), string.Join("\n", bag.Errors));
        var (_, unread) = PolicyReader.ReadAll(doc);
        Assert.Empty(unread.Where(u => u.What is null).Select(u => u.Path)); // the others are refused as what they are
        Assert.Contains(unread, u => u.Path == "spec.nodeSelector" && u.What!.StartsWith("nodeSelector"));
    }

    [Fact]
    public void Every_integer_the_schema_allows_fits_the_32_bits_the_typed_model_holds()
    {
        foreach (var (path, n) in Walk(PolicySchema.Root, "", []))
            if (n.Types?.Contains("integer") == true && n.Types.Count == 1)
                Assert.True(n.Minimum >= int.MinValue && n.Maximum <= int.MaxValue, $"{path}: integer without 32-bit bounds in the schema");
    }

    [Fact]
    public void The_crd_schema_is_the_policy_schema_so_what_kubernetes_accepts_has_the_policys_shape()
    {
        var crd = SecurityAgent.Deploy.CrdGenerator.Generate(PolicySchema.Text);
        Assert.Contains("pattern: \"^[a-z0-9_]+$\"", crd); // tracepoint names: the same rule as the agent's
        Assert.Contains("maximum: 255", crd);             // argument indexes
    }

    private static IEnumerable<(string, SchemaNode)> Walk(SchemaNode n, string path, HashSet<SchemaNode> seen)
    {
        if (!seen.Add(n)) yield break;
        yield return (path, n);
        foreach (var (k, v) in n.Properties ?? [])
            foreach (var x in Walk(v, path + "." + k, seen)) yield return x;
        if (n.Items is { } items)
            foreach (var x in Walk(items, path + "[]", seen)) yield return x;
        seen.Remove(n);
    }

    /// <summary>A document with every field the schema defines, each with a value the schema accepts.</summary>
    private static JsonNode Maximal(SchemaNode n)
    {
        if (n.Enum is { } e) return e[0];
        var type = n.Types?.FirstOrDefault(t => t != "null") ?? (n.Properties is not null ? "object" : "array");
        switch (type)
        {
            case "object":
                var o = new JsonObject();
                foreach (var (k, v) in n.Properties ?? []) o[k] = Maximal(v);
                if (n.AdditionalSchema is { } extra) o["extra"] = Maximal(extra);
                return o;
            case "array":
                return new JsonArray(n.Items is { } items ? Maximal(items) : JsonValue.Create("x"));
            case "integer":
                return JsonValue.Create(Math.Max(n.Minimum ?? 0, Math.Min(n.Maximum ?? 1, 1)));
            case "boolean":
                return JsonValue.Create(true);
            default:
                return JsonValue.Create(new[] { "x", "1m", "syscalls" }.First(s => n.Pattern?.IsMatch(s) != false))!;
        }
    }
}
