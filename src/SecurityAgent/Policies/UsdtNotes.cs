using System.Globalization;
using System.Text;

namespace SecurityAgent.Policies;

/// <summary>Where a USDT argument is, as the probe's note says (x86-64 operands): a constant ("$5"), a register
/// ("%eax"), memory at a register plus an offset ("-20(%rbp)", the only kind usdt Set writes, as in Tetragon),
/// memory at base + index * scale ("-8(%rbp,%rax,8)"), or something else ("sym(%rip)").</summary>
public enum UsdtOperand { Constant, Register, Memory, Indexed, Other }

/// <summary>One argument of a USDT probe site: "-4@-20(%rbp)" is a signed 4-byte value in memory.</summary>
public sealed record UsdtArg(int Size, bool Signed, UsdtOperand Operand, string Text)
{
    public static UsdtArg Parse(string spec)
    {
        int at = spec.IndexOf('@');
        if (at <= 0 || !int.TryParse(spec.AsSpan(0, at), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int n))
            return new UsdtArg(0, false, UsdtOperand.Other, spec);
        var op = spec[(at + 1)..];
        var kind = op switch
        {
            ['$', ..] => UsdtOperand.Constant,
            ['%', ..] => UsdtOperand.Register,
            _ when op.EndsWith(')') && op.IndexOf('(') is var p and >= 0 && op[(p + 1)..].StartsWith('%') =>
                op.Contains(',') ? UsdtOperand.Indexed
                : p == 0 || long.TryParse(op.AsSpan(0, p), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _) ? UsdtOperand.Memory
                : UsdtOperand.Other,
            _ => UsdtOperand.Other,
        };
        return new UsdtArg(Math.Abs(n), n < 0, kind, spec);
    }
}

/// <summary>The probes of an ELF64 file's .note.stapsdt section, as &lt;sys/sdt.h&gt; writes them: per site, the
/// provider, the name and the argument specs. Only the section headers and that section are read.</summary>
public static class UsdtNotes
{
    private const int MaxNoteBytes = 16 << 20;

    /// <summary>The argument specs of every site of provider:name (a probe the compiler placed in several places has
    /// one note per place, each with its own operands).</summary>
    public static IReadOnlyList<IReadOnlyList<UsdtArg>> Sites(string path, string provider, string name)
    {
        using var h = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        var elf = new Elf.ElfFile(h, MaxNoteBytes);
        var sections = elf.Sections();
        if (sections.Count == 0)
            throw new FormatException("no section headers");
        var sites = new List<IReadOnlyList<UsdtArg>>();
        foreach (var section in sections.Where(s => s.Name == ".note.stapsdt"))
        {
            var notes = new Elf.ElfNotes(elf.Read(section.Offset, section.Size));
            while (notes.Next(out uint type, out var noteName, out var desc))
            {
                if (type != 3 || !noteName.SequenceEqual("stapsdt\0"u8) || desc.Length < 3 * 8) continue;
                var fields = Encoding.UTF8.GetString(desc[24..]).Split('\0');
                if (fields.Length < 3 || fields[0] != provider || fields[1] != name) continue;
                sites.Add(fields[2].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(UsdtArg.Parse).ToList());
            }
        }
        return sites;
    }

    /// <summary>usdt Set on note argument <paramref name="arg"/>: the size every site gives it, or why it cannot be
    /// written (Set writes only a memory operand, at the note's size; a register or constant is refused, as by Tetragon).</summary>
    public static (int Size, string? Error) SetTarget(string path, string provider, string name, int arg)
    {
        var sites = Sites(path, provider, name);
        if (sites.Count == 0)
            return (0, $"'{path}' has no USDT probe {provider}:{name}");
        int size = 0;
        foreach (var args in sites)
        {
            if (arg >= args.Count)
                return (0, $"USDT probe {provider}:{name} of '{path}' has {args.Count} argument(s), no argument {arg}");
            var a = args[arg];
            if (a.Operand != UsdtOperand.Memory)
                return (0, $"action Set writes a USDT argument in the process's memory, and the note of {provider}:{name} in '{path}' gives argument {arg} as '{a.Text}', "
                    + a.Operand switch
                    {
                        UsdtOperand.Register => "a register, which Set cannot change (as in Tetragon: declare the variable volatile so the compiler passes it in memory)",
                        UsdtOperand.Constant => "a constant",
                        UsdtOperand.Indexed => "memory at base + index * scale, which Set does not write (as in Tetragon)",
                        _ => "an operand Set does not write",
                    });
            if (a.Size is not (1 or 2 or 4 or 8))
                return (0, $"the note of {provider}:{name} in '{path}' gives argument {arg} a size of {a.Size} bytes ('{a.Text}'): Set writes 1, 2, 4 or 8");
            if (size != 0 && size != a.Size)
                return (0, $"the sites of {provider}:{name} in '{path}' give argument {arg} different sizes ({size} and {a.Size} bytes)");
            size = a.Size;
        }
        return (size, null);
    }

    /// <summary>At load: every usdt Set's note read again (the binary may have changed since the policy was compiled,
    /// or was not there), its size taken from it. Throws <see cref="PolicyLimitException"/> when Set cannot write there.</summary>
    public static PolicyPlan ResolveSets(PolicyPlan plan)
    {
        if (!plan.Hooks.Any(h => h.Selectors.Any(s => s.Set is not null)))
            return plan;
        int Size(UserProbeSite site, int arg)
        {
            (int size, string? error) = (0, null);
            try
            {
                (size, error) = SetTarget(site.Binary, site.Provider!, site.Probe!, arg);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
            {
                error = $"cannot read the USDT note of '{site.Binary}': {e.Message}";
            }
            return error is null ? size : throw new PolicyLimitException($"policy {plan.Name}: {error}");
        }
        return plan with
        {
            Hooks = plan.Hooks.Select(h => h.Selectors.All(s => s.Set is null) ? h : h with
            {
                Selectors = h.Selectors.Select(s => s.Set is { } set ? s with { Set = set with { Size = Size(h.Site!, set.NoteArg) } } : s).ToList(),
            }).ToList(),
        };
    }
}
