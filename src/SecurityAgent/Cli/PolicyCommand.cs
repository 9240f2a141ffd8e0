using System.CommandLine;
using SecurityAgent.Interop;
using SecurityAgent.Kernel;
using SecurityAgent.Policies;

namespace SecurityAgent.Cli;

/// <summary>`secagent policy`: validate and compile policy files here (no agent needed), and the running agent's
/// policies (list, add, delete, enable, disable, mode).</summary>
public static class PolicyCommand
{
    public static Command Create()
    {
        var c = new Command("policy", "Check tracing policies, and manage the running agent's policies");
        c.Subcommands.Add(Check("validate", "Check policies against the schema and this kernel: every problem as file:line:column: field: message"));
        c.Subcommands.Add(Check("compile", "Show what policies compile to on this kernel: hooks and mechanisms (--explain: every map entry)"));
        foreach (var sub in AgentCommands.PolicyCommands()) c.Subcommands.Add(sub);
        return c;
    }

    private static Command Check(string name, string description)
    {
        var paths = new Argument<string[]>("paths") { Description = "Policy files, or directories of them (*.yaml, *.yml)", HelpName = "FILE|DIR", Arity = ArgumentArity.OneOrMore };
        var c = new Command(name, description) { paths };
        Option<bool>? explain = null;
        if (name == "compile")
        {
            explain = new Option<bool>("--explain") { Description = "Every hook with why this mechanism, and every map entry" };
            c.Options.Add(explain);
        }
        c.SetAction(pr => Run(pr.GetValue(paths)!, compile: explain is not null, explain is not null && pr.GetValue(explain)));
        return c;
    }

    private static int Run(string[] paths, bool compile, bool explain)
    {
        var named = PolicyFiles.Expand(paths);
        var missing = named.Where(f => !File.Exists(f)).ToList();
        var files = named.Except(missing).ToList();
        foreach (var m in missing) Console.Error.WriteLine($"{m}: no such file or directory");
        int errors = missing.Count;
        var features = KernelFor(out var note);
        if (note is not null) Console.Error.WriteLine(note);
        KernelMounts.TryEnsureTraceFs();
        var validator = new PolicyValidator(features);
        var compiler = new PolicyCompiler(features, PolicyCompiler.TraceFsFormats());
        foreach (var file in files)
        {
            foreach (var p in validator.ValidateFile(file))
            {
                foreach (var w in p.Warnings) Console.WriteLine(w);
                if (p.Ok)
                {
                    try
                    {
                        var plan = compiler.Compile(p); // "valid" means: loads on this kernel
                        Console.Write(explain ? PlanExplainer.Explain(plan)
                            : compile ? $"{file}: {p.Kind} {p.Name}: {string.Join(", ", plan.Hooks.Select(h => $"{h.Name} via {KernelFeatures.MechanismName(h.Mechanism)}"))}\n"
                            : $"{file}: {p.Kind} {p.Name}: ok\n");
                    }
                    catch (PolicyCompileException e)
                    {
                        foreach (var d in e.Diagnostics) Console.WriteLine(d);
                        errors += e.Diagnostics.Count;
                    }
                }
                foreach (var d in p.Diagnostics)
                {
                    Console.WriteLine(d);
                    errors++;
                }
            }
        }
        if (files.Count == 0 && missing.Count == 0)
            Console.Error.WriteLine($"no policy files (*.yaml, *.yml) in {string.Join(", ", paths)}");
        return errors == 0 && files.Count > 0 ? 0 : 1;
    }

    /// <summary>The real kernel's features when we may probe it (root); otherwise everything is assumed.</summary>
    private static KernelFeatures KernelFor(out string? note)
    {
        if (Libc.geteuid() == 0)
        {
            note = null;
            return FeatureProbe.Run();
        }
        note = "not root: cannot probe the kernel, so hooks are checked as if every mechanism were available";
        return KernelFeatures.Everything;
    }
}
