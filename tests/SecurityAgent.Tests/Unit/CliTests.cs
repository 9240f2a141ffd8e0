using System.CommandLine;
using System.CommandLine.Help;
using Microsoft.Extensions.Configuration;
using SecurityAgent.Cli;
using SecurityAgent.Hosting;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Unit;

/// <summary>The command line as System.CommandLine parses it: help never runs a command, every mistake is refused
/// with a suggestion, and run's options combine with appsettings.json and environment variables.</summary>
public class CliTests
{
    /// <summary>As `secagent` parses: with the named subcommand alone when the first argument names one.</summary>
    private static ParseResult Parse(params string[] args) => Commands.Root(args.Length > 0 ? args[0] : null).Parse(args);

    [Fact]
    public void A_command_line_naming_a_subcommand_gets_that_subcommand_alone_with_the_same_options_and_any_other_gets_all()
    {
        var full = Commands.Root();
        Assert.True(full.Subcommands.Count >= 8);
        foreach (var command in full.Subcommands)
        {
            var alone = Assert.Single(Commands.Root(command.Name).Subcommands);
            Assert.Equal(command.Name, alone.Name);
            Assert.Equal(command.Options.Select(o => o.Name), alone.Options.Select(o => o.Name));
            Assert.Equal(command.Subcommands.Select(c => c.Name), alone.Subcommands.Select(c => c.Name));
        }
        Assert.Equal(full.Subcommands.Select(c => c.Name), Commands.Root("rn").Subcommands.Select(c => c.Name));
        Assert.Contains("'run'", Errors("rn")); // a mistyped command is still told the one it may mean
    }

    private static string Errors(params string[] args)
    {
        var parsed = Parse(args);
        Assert.NotEmpty(parsed.Errors);
        using var w = new StringWriter();
        Assert.Equal(2, Commands.ReportErrors(parsed, w));
        return w.ToString();
    }

    private static string Help(params string[] args)
    {
        var parsed = Parse([.. args, "--help"]);
        Assert.IsType<HelpAction>(parsed.Action);
        using var w = new StringWriter();
        parsed.Invoke(new InvocationConfiguration { Output = w });
        return w.ToString();
    }

    [Theory]
    [InlineData("run")]
    [InlineData("status")]
    [InlineData("events")]
    [InlineData("probe")]
    [InlineData("policy", "list")]
    [InlineData("policy", "validate")]
    public void Asking_any_command_for_help_runs_the_help_and_nothing_else(params string[] command) =>
        Assert.IsType<HelpAction>(Parse([.. command, "--help"]).Action);

    [Fact]
    public void Run_help_lists_every_agent_option_with_its_default()
    {
        var help = Help("run");
        var defaults = new AgentOptions();
        foreach (var p in typeof(AgentOptions).GetProperties().Where(p => p.GetCustomAttributes(typeof(OptionAttribute), false).Length > 0))
        {
            var line = help.Split('\n').SingleOrDefault(l => l.TrimStart().StartsWith(RunCommand.OptionName(p.Name) + " ", StringComparison.Ordinal));
            Assert.True(line is not null, $"{RunCommand.OptionName(p.Name)} missing from run --help");
            if (p.GetValue(defaults) is { } value and not false)
                Assert.Contains($"[default: {Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture)}]", line);
        }
        Assert.Contains("--policy-dir <DIR>", help);
        Assert.Contains("[default: /etc/secagent/policies]", help);
    }

    [Theory]
    [InlineData("'--export-fle'", "'--export-file'", "run", "--export-fle", "x")]
    [InlineData("'--jsn'", "'--json'", "probe", "--jsn")]
    [InlineData("'rn'", "'run'", "rn")]
    [InlineData("'--polcy-dir'", "'--policy-dir'", "run", "--polcy-dir", "/x")]
    [InlineData("'yaml'", "", "events", "-o", "yaml")]
    [InlineData("'process_kprob'", "'process_kprobe'", "events", "--type", "process_kprob")]
    [InlineData("'enforc'", "'enforce'", "policy", "mode", "p", "enforc")]
    [InlineData("'compactt'", "'compact'", "run", "--output", "compactt")]
    public void A_mistyped_option_command_or_value_is_refused_naming_it_with_a_suggestion(string named, string suggestion, params string[] args)
    {
        var text = Errors(args);
        Assert.Contains(named, text);
        if (suggestion.Length > 0) Assert.Contains($"did you mean {suggestion}?", text);
        Assert.Contains("--help' for usage", text);
    }

    [Fact]
    public void Each_unknown_token_is_reported_once_and_the_value_after_an_unknown_option_is_not_a_second_error()
    {
        var text = Errors("run", "--export-fle", "/tmp/x", "--metrics-adress", "1.2.3.4:5");
        Assert.Equal(3, text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.DoesNotContain("/tmp/x", text);
    }

    [Theory]
    [InlineData("events", "--binary-regex", "([")]
    [InlineData("events", "--pod", "*x")]
    [InlineData("run", "--process-cache-size", "lots")]
    [InlineData("policy", "validate")]
    public void A_value_that_cannot_work_is_refused_before_anything_runs(params string[] args) => Assert.NotEmpty(Parse(args).Errors);

    [Fact]
    public void Run_takes_the_command_line_over_environment_variables_over_appsettings_and_binds_strictly()
    {
        using var dir = new TempDir();
        var options = Bind(dir, """{"Agent":{"ExportRateLimit":3,"OtlpQueueSize":7}}""",
            new() { ["SECAGENT_Agent__ExportRateLimit"] = "5", ["SECAGENT_Agent__EnableProcessCred"] = "true" },
            "--export-rate-limit", "9", "--debug-userspace-filter", "true");
        Assert.Equal(9, options.ExportRateLimit);
        Assert.Equal(7, options.OtlpQueueSize);
        Assert.True(options.EnableProcessCred);
        Assert.True(options.DebugUserspaceFilter);
        Assert.Equal(5, Bind(dir, "{}", new() { ["SECAGENT_Agent__ExportRateLimit"] = "5" }).ExportRateLimit);

        var unknown = Assert.Throws<CliException>(() => Bind(dir, """{"Agent":{"PolicyDri":"/x"}}""", []));
        Assert.Contains("PolicyDri", unknown.Message);
        Assert.Equal(2, unknown.ExitCode);
    }

    [Fact]
    public void Run_reads_appsettings_json_beside_it_with_its_logging_section_and_the_command_line_wins_over_the_file()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("policies"));
        File.WriteAllText(dir.File("appsettings.json"), """{"Logging":{"LogLevel":{"Default":"Warning"}},"Agent":{"ExportRateLimit":3,"OtlpQueueSize":7}}""");
        var config = RunCommand.Configuration(dir.Path, new() { ["Agent:ExportRateLimit"] = "9", ["Agent:PolicyDir"] = dir.File("policies") });
        var options = RunCommand.Bind(config);
        Assert.Equal(9, options.ExportRateLimit);
        Assert.Equal(7, options.OtlpQueueSize);
        Assert.Equal("Warning", config["Logging:LogLevel:Default"]);

        File.Delete(dir.File("appsettings.json")); // optional: the defaults
        Assert.Equal(new AgentOptions().OtlpQueueSize, RunCommand.Bind(RunCommand.Configuration(dir.Path, new() { ["Agent:PolicyDir"] = dir.File("policies") })).OtlpQueueSize);
    }

    private static AgentOptions Bind(TempDir dir, string appsettings, Dictionary<string, string> env, params string[] args)
    {
        Directory.CreateDirectory(dir.File("policies"));
        File.WriteAllText(dir.File("appsettings.json"), appsettings);
        var command = RunCommand.Create();
        var parsed = command.Parse([.. args, "--policy-dir", dir.File("policies")]);
        Assert.Empty(parsed.Errors);
        var given = RunCommand.Given(parsed, command);
        var config = new ConfigurationBuilder()
            .AddJsonFile(dir.File("appsettings.json"))
            .AddInMemoryCollection(env.Where(kv => kv.Key.StartsWith("SECAGENT_")).Select(kv => KeyValuePair.Create(kv.Key["SECAGENT_".Length..].Replace("__", ":"), (string?)kv.Value)))
            .AddInMemoryCollection(given)
            .Build();
        return RunCommand.Bind(config);
    }

    [Theory]
    [InlineData("9090", false)]
    [InlineData("127.0.0.1:9567", true)]
    [InlineData(":2112", true)]
    [InlineData("localhost:2112", true)]
    [InlineData("[::1]:2112", true)]
    [InlineData("0.0.0.0:0", false)]
    [InlineData("host:99999", false)]
    [InlineData("somehost:80", false)]
    public void A_metrics_address_is_host_and_port(string address, bool ok) =>
        Assert.Equal(ok, AgentOptions.TryParseAddress(address, out _));

    [Fact]
    public void Validation_names_every_wrong_option_and_what_is_wrong_with_it()
    {
        var errors = new AgentOptions
        {
            PolicyDir = "/nonexistent-policies", MetricsAddress = "9090", OtlpEndpoint = "collector:4317", ApiSocket = "relative.sock",
            ExportAllowlist = """{"binary_regex":["(["]}""", MetricsLabelFilter = "namespace,node", RingBufferBytes = 5000,
        }.Validate();
        Assert.Contains(errors, e => e.StartsWith("--policy-dir '/nonexistent-policies': no such directory"));
        Assert.Contains(errors, e => e.StartsWith("--metrics-address '9090': expected HOST:PORT"));
        Assert.Contains(errors, e => e.StartsWith("--otlp-endpoint 'collector:4317'"));
        Assert.Contains(errors, e => e.StartsWith("--api-socket 'relative.sock': must be an absolute path"));
        Assert.Contains(errors, e => e.StartsWith("--export-allowlist:"));
        Assert.Contains(errors, e => e.Contains("unknown label node"));
        Assert.Contains(errors, e => e.StartsWith("--ring-buffer-bytes"));
        Assert.Equal(7, errors.Count);
    }

    [Fact]
    public void Compact_output_is_chosen_for_a_terminal_only_when_left_to_auto()
    {
        Assert.True(new AgentOptions().CompactOutput(stdoutIsTerminal: true));
        Assert.False(new AgentOptions().CompactOutput(stdoutIsTerminal: false));
        Assert.False(new AgentOptions { ExportFile = "/var/log/e.json" }.CompactOutput(stdoutIsTerminal: true));
        Assert.False(new AgentOptions { Output = "json" }.CompactOutput(stdoutIsTerminal: true));
        Assert.True(new AgentOptions { Output = "compact" }.CompactOutput(stdoutIsTerminal: false));
    }

    [Fact]
    public void Shell_completion_offers_options_and_allowed_values()
    {
        static List<string> Complete(string line) => Commands.Root().Parse(line).GetCompletions(line.Length).Select(c => c.Label).ToList();
        Assert.Contains("--export-file", Complete("run --exp"));
        Assert.Equal(["compact"], Complete("events -o c"));
        Assert.Contains("enforce", Complete("policy mode p enf"));
        Assert.Contains("process_kprobe", Complete("events --type process_k"));
    }
}
