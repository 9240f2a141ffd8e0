using System.Text.RegularExpressions;
using SecurityAgent.Kernel;

namespace SecurityAgent.Policies;

/// <summary>A generated_ftrace list: the kernel functions of tracefs available_filter_functions whose name the list's
/// pattern matches, as Tetragon's pkg/ftrace reads them (an unanchored regular expression; functions of modules, listed
/// as "name [module]", are left out; names are sorted and listed once). Resolved on the node when its policy loads.</summary>
internal static class FtraceFunctions
{
    public const string FileName = "available_filter_functions";

    /// <summary>Kprobes one list may attach: each is a perf event and a link of its own.</summary>
    public const int MaxFunctions = 256;

    public static string DefaultPath => Path.Combine(KernelMounts.TraceFs, FileName);

    /// <summary>The pattern as a regular expression (RE2-like: no backtracking), or the reason it is not one.</summary>
    public static Regex? Compile(string pattern, out string? error)
    {
        try
        {
            error = null;
            return new Regex(pattern, RegexOptions.NonBacktracking | RegexOptions.CultureInvariant);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException)
        {
            error = e.Message;
            return null;
        }
    }

    /// <summary>The matching functions, sorted, or why there are none to hook (no match, more than <paramref name="max"/>).</summary>
    public static IReadOnlyList<string>? Match(IEnumerable<string> lines, Regex pattern, int max, out string? error)
    {
        var names = new SortedSet<string>(StringComparer.Ordinal);
        int matched = 0;
        foreach (var line in lines)
        {
            var name = line.Trim();
            if (name.Length == 0 || name.Contains(' ') || name.Contains("__ftrace_invalid_address__") || !pattern.IsMatch(name) || !names.Add(name))
                continue;
            matched++;
        }
        error = matched == 0 ? "no kernel function matches it"
            : matched > max ? $"{matched} kernel functions match it, more than the {max} one list may hook (narrow the pattern)"
            : null;
        return error is null ? names.ToList() : null;
    }

    public static IEnumerable<string> Read(string path) => File.ReadLines(path);
}
