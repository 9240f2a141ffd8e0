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

    /// <summary>A C macro SA_USDT2(provider, name, a1, a2) placing a USDT probe with two arguments, its note written as
    /// &lt;sys/sdt.h&gt; writes it (no systemtap headers needed): <paramref name="args"/> is the note's argument spec
    /// ("-4@%[x] -8@%[y]"), <paramref name="x"/> and <paramref name="y"/> the asm constraints ("r": a register, "m": memory).</summary>
    public static string Usdt2Macro(string args, string x, string y) => $$"""
        #define SA_USDT2(provider, name, a1, a2) \
            __asm__ __volatile__("990: nop\n" \
                ".pushsection .note.stapsdt,\"?\",\"note\"\n" \
                ".balign 4\n" \
                ".4byte 992f-991f, 994f-993f, 3\n" \
                "991: .asciz \"stapsdt\"\n" \
                "992: .balign 4\n" \
                "993: .8byte 990b\n" \
                ".8byte _.stapsdt.base\n" \
                ".8byte 0\n" \
                ".asciz \"" #provider "\"\n" \
                ".asciz \"" #name "\"\n" \
                ".asciz \"{{args}}\"\n" \
                "994: .balign 4\n" \
                ".popsection\n" \
                ".ifndef _.stapsdt.base\n" \
                ".pushsection .stapsdt.base,\"aG\",\"progbits\",.stapsdt.base,comdat\n" \
                ".weak _.stapsdt.base\n" \
                ".hidden _.stapsdt.base\n" \
                "_.stapsdt.base: .space 1\n" \
                ".size _.stapsdt.base, 1\n" \
                ".popsection\n" \
                ".endif\n" :: [x] "{{x}}"(a1), [y] "{{y}}"(a2))
        """;
}