using System.Diagnostics;
using System.Reflection;

namespace SecurityAgent.Tests.Support;

/// <summary>The VM lane's in-process runner (`dotnet SecurityAgent.Tests.dll --vm-lane [filter]`): runs every
/// [RequiresKernel] test of this assembly in one process (vstest costs ~30 s per call under emulation),
/// prints each result and closes with "N passed, N failed".</summary>
public static class VmLane
{
    public static int Main(string[] args)
    {
        if (args is ["--fanotify-child", var prefix])
            return FanotifyChild.Run(prefix);
        if (args.Length == 0 || args[0] != "--vm-lane")
        {
            Console.Error.WriteLine("usage: SecurityAgent.Tests.dll --vm-lane [name filter]   (run the tests with `dotnet test`)");
            return 2;
        }
        var filter = args.Length > 1 ? args[1] : "";
        var tests = typeof(VmLane).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods().Select(m => (Type: t, Method: m, Attr: m.GetCustomAttribute<RequiresKernelAttribute>())))
            .Where(x => x.Attr is not null && $"{x.Type.Name}.{x.Method.Name}".Contains(filter))
            .OrderBy(x => x.Type.Name).ThenBy(x => x.Method.Name)
            .ToList();
        int passed = 0, failed = 0;
        foreach (var (type, method, attr) in tests)
        {
            var name = $"{type.Name}.{method.Name}";
            var sw = Stopwatch.StartNew();
            try
            {
                var missing = attr!.MissingHere();
                if (missing.Count > 0)
                    throw new InvalidOperationException("the VM lane kernel lacks " + string.Join(", ", missing));
                var instance = Activator.CreateInstance(type);
                try
                {
                    var result = method.Invoke(instance, null);
                    if (result is Task task) task.GetAwaiter().GetResult();
                }
                finally
                {
                    (instance as IDisposable)?.Dispose();
                }
                passed++;
                Console.WriteLine($"  Passed {name} [{sw.Elapsed.TotalSeconds:F1} s]");
            }
            catch (Exception e)
            {
                failed++;
                var inner = e is TargetInvocationException { InnerException: { } ie } ? ie : e;
                Console.WriteLine($"  Failed {name} [{sw.Elapsed.TotalSeconds:F1} s]\n    {inner.GetType().Name}: {inner.Message}\n{inner.StackTrace}");
            }
        }
        Console.WriteLine($"{passed} passed, {failed} failed");
        return failed == 0 && tests.Count > 0 ? 0 : 1;
    }
}
