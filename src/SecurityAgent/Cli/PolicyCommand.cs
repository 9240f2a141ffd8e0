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
        var forKernel = new Option<string?>("--for-kernel")
        {
            Description = "Judge the policies for another kernel: the JSON `secagent probe --json` wrote on that node, or 'all' (every mechanism). "
                + "Exit 3 when they are valid there but this build's engine does not carry a feature yet",
            HelpName = "node.json|all",
        };
        var c = new Command(name, description) { paths, forKernel };
        Option<bool>? explain = null;
        if (name == "compile")
        {
            explain = new Option<bool>("--explain") { Description = "Every hook with why this mechanism, and every map entry" };
            c.Options.Add(explain);
        }
        c.SetAction(pr => Run(pr.GetValue(paths)!, compile: explain is not null, explain is not null && pr.GetValue(explain), pr.GetValue(forKernel)));
        return c;
    }

    /// <summary>Exit codes: 0 valid (loads), 1 errors, 3 valid for the target kernel but this build's engine lacks a feature.</summary>
    private static int Run(string[] paths, bool compile, bool explain, string? forKernel)
    {
        var named = PolicyFiles.Expand(paths);
        var missing = named.Where(f => !File.Exists(f)).ToList();
        var files = named.Except(missing).ToList();
        foreach (var m in missing) Console.Error.WriteLine($"{m}: no such file or directory");
        int errors = missing.Count, gaps = 0;
        string? note;
        KernelFeatures features;
        try { features = forKernel is null ? KernelFor(out note) : TargetKernel(forKernel, out note); }
        catch (FormatException e)
        {
            Console.Error.WriteLine($"{forKernel}: {e.Message}");
            return 1;
        }
        if (note is not null) Console.Error.WriteLine(note);
        KernelMounts.TryEnsureTraceFs();
        var validator = new PolicyValidator(features) { ForOtherKernel = forKernel is not null };
        var compiler = new PolicyCompiler(features, PolicyCompiler.TraceFsFormats());
        foreach (var file in files)
        {
            foreach (var p in validator.ValidateFile(file))
            {
                foreach (var w in p.Warnings.Concat(p.Notes)) Console.WriteLine(w);
                int pending = p.Notes.Count(n => n.Message.StartsWith("unsupported:"));
                gaps += pending;
                if (p.Ok)
                {
                    try
                    {
                        // "valid" means: loads on this kernel; for another kernel, the validator's plan (this machine's tracepoint layouts).
                        var plan = forKernel is null ? compiler.Compile(p) : p.Plan;
                        var what = pending > 0 ? $"valid for kernel {features.KernelRelease}; this build's engine does not carry {pending} noted feature(s) yet, so it would refuse the policy"
                            : forKernel is null ? "ok" : $"ok for kernel {features.KernelRelease}";
                        Console.Write(plan is null ? $"{file}: {p.Kind} {p.Name}: {what} (tracepoint layouts not checked: no tracefs here)\n"
                            : explain ? PlanExplainer.Explain(plan)
                            : compile ? $"{file}: {p.Kind} {p.Name}: {string.Join(", ", plan.Hooks.Take(8).Select(h => $"{h.Name} via {KernelFeatures.MechanismName(h.Mechanism)}")
                                .Concat(plan.FtraceLists.Where(l => l.Functions is null).Select(l => $"list:{l.Name} via kprobe (functions resolved on the node)")))}"
                                + (plan.Hooks.Count > 8 ? $" (+{plan.Hooks.Count - 8} more)" : "") + (pending > 0 ? $": {what}" : "") + "\n"
                            : $"{file}: {p.Kind} {p.Name}: {what}\n");
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
        return errors > 0 || files.Count == 0 ? 1 : gaps > 0 ? 3 : 0;
    }

    /// <summary>--for-kernel: 'all' (every mechanism) or a node's `secagent probe --json`.</summary>
    private static KernelFeatures TargetKernel(string spec, out string? note)
    {
        note = $"judging for {(spec == "all" ? "a kernel with every mechanism" : spec)}; tracepoint layouts from this machine's tracefs where it has one";
        if (spec == "all") return KernelFeatures.Everything;
        var read = PolicyFiles.ReadAny(spec);
        return read.Text is null ? throw new FormatException(read.Refusal!) : KernelFeaturesJson.FromJson(read.Text);
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
