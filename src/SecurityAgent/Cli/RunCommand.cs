using System.CommandLine;
using System.Reflection;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using SecurityAgent.Api;
using SecurityAgent.Hosting;

namespace SecurityAgent.Cli;

/// <summary>`secagent run`: one option per <see cref="AgentOptions"/> property marked [Option]. Options given on the
/// command line override SECAGENT_Agent__* environment variables, which override appsettings.json; the result is
/// validated before anything is loaded, and the API socket is claimed (or refused) before the kernel is touched.</summary>
public static class RunCommand
{
    public static Command Create()
    {
        var command = new Command("run", "Run the agent: load the BPF programs and policies, export events until SIGTERM or Ctrl-C.\n" +
            "Options also come from appsettings.json beside the binary (section Agent) and SECAGENT_Agent__<Option> variables.");
        var defaults = new AgentOptions();
        foreach (var p in Properties)
            command.Options.Add(MakeOption(p, p.GetCustomAttribute<OptionAttribute>()!, p.GetValue(defaults)));
        command.SetAction((parsed, _) => Run(Given(parsed, command)));
        return command;
    }

    private static readonly PropertyInfo[] Properties =
        typeof(AgentOptions).GetProperties().Where(p => p.GetCustomAttribute<OptionAttribute>() is not null).ToArray();

    /// <summary>--export-file-max-size for ExportFileMaxSize.</summary>
    public static string OptionName(string property) =>
        "--" + string.Concat(property.Select((c, i) => char.IsUpper(c) ? (i > 0 ? "-" : "") + char.ToLowerInvariant(c) : c.ToString()));

    private static Option MakeOption(PropertyInfo p, OptionAttribute a, object? defaultValue)
    {
        var name = OptionName(p.Name);
        Option o = p.PropertyType switch
        {
            var t when t == typeof(string) => new Option<string>(name) { DefaultValueFactory = defaultValue is null ? null : _ => (string)defaultValue },
            var t when t == typeof(bool) => new Option<bool>(name),
            var t when t == typeof(int) => new Option<int>(name) { DefaultValueFactory = _ => (int)defaultValue! },
            var t when t == typeof(uint) => new Option<uint>(name) { DefaultValueFactory = _ => (uint)defaultValue! },
            var t when t == typeof(long) => new Option<long>(name) { DefaultValueFactory = _ => (long)defaultValue! },
            var t when t == typeof(double) => new Option<double>(name) { DefaultValueFactory = _ => (double)defaultValue! },
            var t => throw new NotSupportedException($"AgentOptions.{p.Name}: no command-line option for {t}"),
        };
        o.Description = a.Description;
        o.HelpName = a.HelpName;
        if (a.Values is { } values)
            o.Choices(values);
        return o;
    }

    /// <summary>The options the user gave (not their defaults), as configuration keys Agent:Property.</summary>
    public static Dictionary<string, string?> Given(ParseResult parsed, Command run)
    {
        var given = new Dictionary<string, string?>();
        foreach (var p in Properties)
            if (parsed.GetResult(run.Options.Single(o => o.Name == OptionName(p.Name))) is { Implicit: false } r)
                given["Agent:" + p.Name] = r.Tokens.Count > 0 ? r.Tokens[^1].Value : "true";
        return given;
    }

    /// <summary>The agent's configuration: appsettings.json in <paramref name="directory"/>, then SECAGENT_ variables, then
    /// the command line (<paramref name="given"/>); the later wins. The host is built on it (the Logging section too).
    /// Only these sources: no other environment variables, no appsettings.{Environment}.json.</summary>
    public static ConfigurationManager Configuration(string directory, Dictionary<string, string?> given)
    {
        var configuration = new ConfigurationManager();
        configuration.AddJsonFile(Path.Combine(directory, "appsettings.json"), optional: true, reloadOnChange: false);
        configuration.AddEnvironmentVariables("SECAGENT_");
        configuration.AddInMemoryCollection(given);
        return configuration;
    }

    /// <summary>appsettings.json, then SECAGENT_ variables, then the command line, bound strictly (an unknown key in
    /// the Agent section is an error) and validated.</summary>
    public static AgentOptions Bind(IConfiguration configuration)
    {
        AgentOptions options;
        try
        {
            options = configuration.GetSection("Agent").Get<AgentOptions>(b => b.ErrorOnUnknownConfiguration = true) ?? new AgentOptions();
        }
        catch (InvalidOperationException e)
        {
            throw new CliException("configuration (appsettings.json or SECAGENT_Agent__*): " + e.Message, Commands.UsageError);
        }
        var errors = options.Validate();
        if (errors.Count > 0)
            throw new CliException("cannot start:\n  " + string.Join("\n  ", errors) + "\nRun 'secagent run --help' for the options.", Commands.UsageError);
        return options;
    }

    private static async Task<int> Run(Dictionary<string, string?> given)
    {
        var phases = new StartupPhases();
        phases.Mark("main");
        // One malloc arena for the threads started from here on (the host's, the ring reader's, the pool's): a node
        // agent's native allocations are few and an arena per thread costs megabytes of RSS each.
        Interop.Libc.LimitMallocArenas(1);
        var configuration = Configuration(AppContext.BaseDirectory, given);
        var options = Bind(configuration);
        AgentOptions.TryParseAddress(options.MetricsAddress ?? "", out var metrics);
        using var socket = ApiSocket.Claim(options.ApiSocket);
        phases.Mark("options");
        using var kernel = KernelStart.Begin(options, phases); // loads while the host is built

        // The generic host without its defaults (they would read the configuration's sources again, and more of them)
        // and without a web stack: the API is the agent's own small HTTP server (ApiServer), not ASP.NET Core.
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
        {
            DisableDefaults = true, Configuration = configuration, ContentRootPath = AppContext.BaseDirectory,
        });
        builder.Logging.AddConfiguration(configuration.GetSection("Logging"));
        builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; });
        builder.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.Services.AddSingleton(Microsoft.Extensions.Options.Options.Create(options));
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(10));
        var state = new AgentState { EventMetrics = EventMetrics.FromFilter(options.MetricsLabelFilter) };
        // The API listens before the agent starts (answering /readyz with 503 until it is ready) and stops after it.
        builder.Services.AddHostedService(sp => new ApiServer(socket, options.MetricsAddress is null ? null : metrics, state, sp.GetRequiredService<ILoggerFactory>()));
        builder.Services.AddHostedService<AgentService>();
        builder.Services.AddSingleton(state);
        builder.Services.AddSingleton(phases);
        builder.Services.AddSingleton(kernel);
        using var host = builder.Build();
        phases.Mark("host");
        await host.RunAsync();
        return Environment.ExitCode;
    }
}
