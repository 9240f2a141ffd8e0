using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using SecurityAgent.Cli;
using SecurityAgent.Hosting;

namespace SecurityAgent;

public static class Program
{
    private const string Usage = """
        usage: secagent <command> [options]

        commands:
          run      run the agent   [--policy-dir DIR] [--export-file PATH|-] [--node-name NAME]
                                   [--process-cache-size N] [--exit-grace-seconds S]
          probe    show what this kernel supports   [--json]
          policy validate FILE...   check tracing policies (file:line:column for every problem)
          policy compile FILE... --explain   show the plan: hooks, mechanism on this kernel, map entries
          version  print the version
        """;

    public static async Task<int> Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            Console.Error.WriteLine(Usage);
            return args.Length == 0 ? 2 : 0;
        }
        try
        {
            return args[0] switch
            {
                "run" => await RunAgent(args[1..]),
                "probe" => ProbeCommand.Run(args[1..]),
                "policy" => PolicyCommand.Run(args[1..]),
                "version" => Version(),
                _ => Fail($"unknown command '{args[0]}'\n{Usage}"),
            };
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return Fail(e.Message);
        }
    }

    private static int Version()
    {
        Console.WriteLine(typeof(Program).Assembly.GetName().Version);
        return 0;
    }

    private static int Fail(string message)
    {
        Console.Error.WriteLine("secagent: " + message);
        return 2;
    }

    private static async Task<int> RunAgent(string[] args)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
        {
            ContentRootPath = AppContext.BaseDirectory,
            Args = [],
        });
        builder.Configuration.AddEnvironmentVariables("SECAGENT_");
        builder.Configuration.AddCommandLine(args, AgentOptions.Switches);
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; });
        builder.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.Services.Configure<AgentOptions>(builder.Configuration.GetSection("Agent"));
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(10));
        builder.Services.AddHostedService<AgentService>();
        using var host = builder.Build();
        await host.RunAsync();
        return Environment.ExitCode;
    }
}
