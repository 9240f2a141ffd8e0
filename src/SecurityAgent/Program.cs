using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using SecurityAgent.Api;
using SecurityAgent.Cli;
using SecurityAgent.Hosting;

namespace SecurityAgent;

public static class Program
{
    private const string Usage = """
        usage: secagent <command> [options]

        commands:
          run      run the agent   [--policy-dir DIR] [--export-file PATH|-] [--node-name NAME] [--api-socket PATH]
                                   [--export-file-max-size BYTES] [--export-file-max-backups N] [--stats-file PATH]
                                   [--process-cache-size N] [--exit-grace-seconds S]
          probe    show what this kernel supports   [--json]
          policy validate FILE...   check tracing policies (file:line:column for every problem)
          policy compile FILE... --explain   show the plan: hooks, mechanism on this kernel, map entries
          policy list|add FILE|delete NAME|enable NAME|disable NAME|mode NAME enforce|monitor   (running agent)
          status   the running agent: kernel features, hooks and their kernel counters, losses, exporters
          events   stream the running agent's events   [-o json|compact] [--type T] [--binary-regex R] [--policy NAME]
                   [--allow FILTER] [--deny FILTER]   (Tetragon export-filter JSON, as --export-allowlist)
          (commands that talk to the agent take --api-socket PATH; default /var/run/securityagent/agent.sock)
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
                "policy" when args.Length > 1 && args[1] is "validate" or "compile" => PolicyCommand.Run(args[1..]),
                "policy" => await AgentCommands.Policy(args[1..]),
                "status" => await AgentCommands.Status(args[1..]),
                "events" => await AgentCommands.Events(args[1..]),
                "version" => Version(),
                "crds" => Crds(args[1..]),
                _ => Fail($"unknown command '{args[0]}'\n{Usage}"),
            };
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return Fail(e.Message);
        }
    }

    /// <summary>`secagent crds SCHEMA`: the CRDs generated from the policy schema (make crds).</summary>
    private static int Crds(string[] args)
    {
        Console.Write(SecurityAgent.Deploy.CrdGenerator.Generate(File.ReadAllText(args.Length > 0 ? args[0] : "schemas/tracingpolicy.schema.json")));
        return 0;
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
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
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
        var state = new AgentState();
        builder.Services.AddSingleton(state);
        var socket = builder.Configuration["Agent:ApiSocket"] ?? AgentOptions.DefaultApiSocket;
        if (socket.Length == 0)
            return Fail("--api-socket needs a path (the API listens on a Unix socket only, never on TCP)");
        var metricsAddress = builder.Configuration["Agent:MetricsAddress"];
        System.Net.IPEndPoint? metrics = null;
        if (!string.IsNullOrEmpty(metricsAddress) && !System.Net.IPEndPoint.TryParse(metricsAddress, out metrics))
            return Fail($"--metrics-address '{metricsAddress}' is not an address:port");
        builder.WebHost.ConfigureKestrel(k =>
        {
            Directory.CreateDirectory(Path.GetDirectoryName(socket)!);
            File.Delete(socket); // a stale socket of an earlier run
            k.ListenUnixSocket(socket);
            if (metrics is not null)
                k.Listen(metrics);
        });
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        await using var app = builder.Build();
        LocalApi.Map(app, state);
        if (metrics is not null)
        {
            // Over TCP only /metrics answers; everything else stays on the root-only socket.
            app.Use(async (ctx, next) =>
            {
                if (ctx.Connection.LocalPort == metrics.Port && ctx.Request.Path != "/metrics")
                {
                    ctx.Response.StatusCode = 404;
                    return;
                }
                await next();
            });
        }
        // The API is root only: the socket is 0600 before anyone can use it for anything.
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            File.SetUnixFileMode(socket, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        });
        await app.RunAsync();
        return Environment.ExitCode;
    }
}
