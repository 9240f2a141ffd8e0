using SecurityAgent.Interop;
using SecurityAgent.Kernel;
using SecurityAgent.Policies;

namespace SecurityAgent.Cli;

/// <summary>`secagent policy validate FILE|DIR...`: checks policies against the schema and this kernel (warnings too).</summary>
public static class PolicyCommand
{
    public static int Run(string[] args)
    {
        if (args.Length < 2 || args[0] is not ("validate" or "compile"))
        {
            Console.Error.WriteLine("usage: secagent policy validate FILE...\n       secagent policy compile FILE... [--explain]");
            return 2;
        }
        bool compile = args[0] == "compile";
        var files = PolicyFiles.Expand(args[1..].Where(a => a != "--explain"));
        var features = KernelFor(out var note);
        if (note is not null) Console.Error.WriteLine(note);
        KernelMounts.TryEnsureTraceFs();
        var validator = new PolicyValidator(features);
        int errors = 0;
        var compiler = new PolicyCompiler(features, PolicyCompiler.TraceFsFormats());
        foreach (var file in files)
        {
            if (!File.Exists(file))
            {
                Console.Error.WriteLine($"{file}: no such file or directory");
                errors++;
                continue;
            }
            foreach (var p in validator.ValidateFile(file))
            {
                foreach (var w in p.Warnings) Console.WriteLine(w);
                if (p.Ok)
                {
                    try
                    {
                        var plan = compiler.Compile(p); // "valid" means: loads on this kernel
                        Console.Write(compile ? PlanExplainer.Explain(plan) : $"{file}: {p.Kind} {p.Name}: ok\n");
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
        return errors == 0 ? 0 : 1;
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
