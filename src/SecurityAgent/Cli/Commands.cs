using System.CommandLine;
using System.CommandLine.Parsing;
using SecurityAgent.Hosting;

namespace SecurityAgent.Cli;

/// <summary>The command line (System.CommandLine): every command with generated help, defaults shown, unknown options
/// and values refused with a suggestion, --version, and shell completion through the [suggest] directive.</summary>
public static class Commands
{
    public const int UsageError = 2;

    /// <summary>The subcommands by name, made only when needed: `secagent run` builds its own and no other (the others'
    /// options and help would be the agent's start-up time, for nothing).</summary>
    private static readonly (string Name, Func<Command> Create)[] Subcommands =
    [
        ("run", RunCommand.Create), ("probe", ProbeCommand.Create), ("status", AgentCommands.Status), ("events", EventsCommand.Create),
        ("policy", PolicyCommand.Create), ("version", VersionCommand), ("completion", CompletionCommand), ("crds", CrdsCommand),
    ];

    /// <summary>The command line; with <paramref name="only"/> naming a subcommand, with that one alone (parsing
    /// `secagent NAME ...` needs no other), else with all of them.</summary>
    public static RootCommand Root(string? only = null)
    {
        var root = new RootCommand("SecurityAgent: a runtime security agent for Linux (BPF; Tetragon-compatible policies and events).");
        root.Options.Remove(root.Options.OfType<VersionOption>().Single());
        var version = new Option<bool>("--version") { Description = "Show the version, git commit and build date" };
        root.Options.Add(version);
        root.SetAction(pr =>
        {
            if (pr.GetValue(version))
            {
                Console.WriteLine(BuildInfo.Text);
                return 0;
            }
            WriteHelp(root, Console.Error);
            return UsageError;
        });
        bool known = Subcommands.Any(c => c.Name == only);
        foreach (var (name, create) in Subcommands)
            if (!known || name == only)
                root.Subcommands.Add(create());
        return root;
    }

    /// <summary>Parses and runs. Parse errors are reported here (exit 2); errors of a command as "secagent: message" (exit 1).</summary>
    public static async Task<int> Invoke(string[] args)
    {
        var root = Root(args.Length > 0 ? args[0] : null);
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
            return ReportErrors(parsed, Console.Error);
        try
        {
            return await parsed.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null, EnableDefaultExceptionHandler = false });
        }
        catch (CliException e)
        {
            Console.Error.WriteLine("secagent: " + e.Message);
            return e.ExitCode;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Console.Error.WriteLine("secagent: " + e.Message);
            return 1;
        }
    }

    /// <summary>Each problem once, with a suggestion for a mistyped option, command or value, then where help is.</summary>
    public static int ReportErrors(ParseResult parsed, TextWriter error)
    {
        var command = parsed.CommandResult.Command;
        var path = CommandPath(parsed.CommandResult);
        if (command is RootCommand root && parsed.UnmatchedTokens.Count == 0)
        {
            WriteHelp(root, error);
            return UsageError;
        }
        var unmatched = parsed.UnmatchedTokens;
        bool afterUnknownOption = false;
        foreach (var token in unmatched)
        {
            if (token.StartsWith('-'))
            {
                error.WriteLine($"{path}: unknown option '{token}'{DidYouMean(token, OptionNames(command))}");
                afterUnknownOption = !token.Contains('=');
            }
            else if (!afterUnknownOption)
                error.WriteLine(command.Subcommands.Count > 0
                    ? $"{path}: unknown command '{token}'{DidYouMean(token, command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name))}"
                    : $"{path}: unexpected argument '{token}'");
            else
                afterUnknownOption = false; // the value of the unknown option before it
        }
        foreach (var e in parsed.Errors.Where(e => !unmatched.Any(t => e.Message.Contains($"'{t}'", StringComparison.Ordinal))))
            error.WriteLine($"{path}: {e.Message}");
        error.WriteLine($"Run '{path} --help' for usage.");
        return UsageError;
    }

    private static string CommandPath(CommandResult r)
    {
        var names = new List<string>();
        for (SymbolResult? s = r; s is CommandResult c; s = c.Parent)
            names.Add(c.Command is RootCommand ? "secagent" : c.Command.Name);
        names.Reverse();
        return string.Join(' ', names);
    }

    private static IEnumerable<string> OptionNames(Command command)
    {
        for (Symbol? c = command; c is Command cmd; c = cmd.Parents.FirstOrDefault())
            foreach (var o in cmd.Options.Where(o => ReferenceEquals(cmd, command) || o.Recursive))
            {
                yield return o.Name;
                foreach (var a in o.Aliases) yield return a;
            }
    }

    public static void WriteHelp(RootCommand root, TextWriter output) =>
        root.Parse("--help").Invoke(new InvocationConfiguration { Output = output });

    /// <summary>" (did you mean 'x'?)" for the closest known word, or nothing when none is close.</summary>
    public static string DidYouMean(string word, IEnumerable<string> known)
    {
        if (word.TrimStart('-').Length < 2) return ""; // "-p": too short to guess from
        var best = known.Distinct()
            .Select(k => (k, d: k.StartsWith(word, StringComparison.Ordinal) && word.Length >= 3 ? 0 : Distance(word, k)))
            .Where(x => x.d <= Math.Max(2, word.Length / 3))
            .OrderBy(x => x.d).ThenBy(x => x.k.Length).Select(x => x.k).FirstOrDefault();
        return best is null ? "" : $" (did you mean '{best}'?)";
    }

    private static int Distance(string a, string b)
    {
        var prev = new int[b.Length + 1];
        var cur = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) prev[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            cur[0] = i;
            for (int j = 1; j <= b.Length; j++)
                cur[j] = Math.Min(Math.Min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (prev, cur) = (cur, prev);
        }
        return prev[b.Length];
    }

    /// <summary>Restricts an option to a set of values: others are refused with a suggestion; completion offers them.</summary>
    public static T Choices<T>(this T option, params string[] values) where T : Option
    {
        option.HelpName ??= string.Join('|', values);
        option.CompletionSources.Add(values);
        option.Validators.Add(r => RefuseOthers(r, r.IdentifierToken?.Value ?? option.Name, values));
        return option;
    }

    /// <summary>The same for an argument.</summary>
    public static Argument<string> Choices(this Argument<string> argument, params string[] values)
    {
        argument.HelpName ??= string.Join('|', values);
        argument.CompletionSources.Add(values);
        argument.Validators.Add(r => RefuseOthers(r, argument.Name, values));
        return argument;
    }

    private static void RefuseOthers(SymbolResult r, string name, string[] values)
    {
        foreach (var t in r.Tokens.Where(t => !values.Contains(t.Value)))
            r.AddError($"{name} '{t.Value}' is not one of {string.Join(", ", values)}{DidYouMean(t.Value, values)}");
    }

    /// <summary>--api-socket, for the commands that talk to a running agent.</summary>
    public static Option<string> ApiSocketOption() => new("--api-socket")
    {
        Description = "The running agent's API socket",
        HelpName = "PATH",
        DefaultValueFactory = _ => AgentOptions.DefaultApiSocket,
    };

    /// <summary>-o table|json for commands that show the agent's state.</summary>
    public static Option<string> TableOrJson() =>
        new Option<string>("--output", "-o") { Description = "table for people, json for scripts", DefaultValueFactory = _ => "table" }.Choices("table", "json");

    private static Command VersionCommand()
    {
        var c = new Command("version", "Show the version, git commit and build date (as --version)");
        c.SetAction(_ => Console.WriteLine(BuildInfo.Text));
        return c;
    }

    private static Command CompletionCommand()
    {
        var shell = new Argument<string>("shell") { Description = "The shell to complete in" }.Choices("bash", "zsh");
        var c = new Command("completion", "Print a shell completion script: source <(secagent completion bash)") { shell };
        c.SetAction(pr => Console.Write(pr.GetValue(shell) == "zsh" ? ZshCompletion : BashCompletion));
        return c;
    }

    private const string BashCompletion = """
        # secagent completion for bash: source <(secagent completion bash)
        _secagent_complete() {
            local IFS=$'\n'
            COMPREPLY=($(secagent "[suggest:${COMP_POINT}]" "${COMP_LINE}" 2>/dev/null))
        }
        complete -o default -F _secagent_complete secagent

        """;

    private const string ZshCompletion = """
        # secagent completion for zsh: source <(secagent completion zsh)
        _secagent_complete() {
            local -a candidates
            candidates=(${(f)"$(secagent "[suggest:${CURSOR}]" "${BUFFER}" 2>/dev/null)"})
            compadd -a candidates
        }
        compdef _secagent_complete secagent

        """;

    /// <summary>`secagent crds SCHEMA`: the CRDs generated from the policy schema (make crds).</summary>
    private static Command CrdsCommand()
    {
        var schema = new Argument<string>("schema") { DefaultValueFactory = _ => "schemas/tracingpolicy.schema.json" };
        var c = new Command("crds", "Print the CRDs generated from the policy schema (make crds)") { schema };
        c.Hidden = true;
        c.SetAction(pr => Console.Write(Deploy.CrdGenerator.Generate(File.ReadAllText(pr.GetValue(schema)!))));
        return c;
    }
}

/// <summary>A command's failure, said to the user as is (no stack trace), with its exit code.</summary>
public sealed class CliException(string message, int exitCode = 1) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}
