namespace SecurityAgent.Tests.Support;

/// <summary>Test programs written in C, compiled in the test's temp dir with the clang `make deps` installs (or cc).</summary>
public static class CProgram
{
    /// <summary>Writes <paramref name="source"/> to NAME.c in <paramref name="dir"/> and compiles it to NAME.</summary>
    public static string Build(TempDir dir, string name, string source, params string[] flags)
    {
        var src = dir.File(name + ".c");
        File.WriteAllText(src, source);
        var bin = dir.File(name);
        Compile(src, bin, flags);
        return bin;
    }

    public static void Compile(string source, string output, params string[] flags)
    {
        string? error = null;
        foreach (var cc in (string[])["clang-19", "cc", "clang"])
        {
            try
            {
                var r = Run.Wait(cc, [.. flags, "-o", output, source]);
                if (r.Code == 0) return;
                error = $"{cc}: {r.Stderr}";
            }
            catch (System.ComponentModel.Win32Exception) { error ??= $"{cc}: not found"; }
        }
        Assert.Fail("cannot compile the test program: " + error);
    }
}
