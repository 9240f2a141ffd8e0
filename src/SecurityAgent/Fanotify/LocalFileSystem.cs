using System.Text;
using SecurityAgent.Interop;

namespace SecurityAgent.Fanotify;

/// <summary>The <see cref="IFileSystemView"/> of this machine, as the agent's mount namespace sees it.</summary>
internal sealed class LocalFileSystem : IFileSystemView
{
    private static readonly EnumerationOptions Subdirectories = new()
    {
        AttributesToSkip = FileAttributes.ReparsePoint, // never descend through a symlink
        IgnoreInaccessible = true,
        RecurseSubdirectories = false,
        ReturnSpecialDirectories = false,
    };

    public string? RealPath(string path) => Libc.RealPath(path);

    public bool IsDirectory(string canonicalPath) => Directory.Exists(canonicalPath);

    public IEnumerable<string> SubdirectoryNames(string canonicalDirectory)
    {
        try
        {
            return new DirectoryInfo(canonicalDirectory).EnumerateDirectories("*", Subdirectories).Select(d => d.Name).ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return []; // removed while we looked
        }
    }

    public IEnumerable<string> MountPoints() =>
        File.ReadLines("/proc/self/mountinfo").Select(l => Unescape(l.Split(' ')[4])).Distinct().ToList();

    /// <summary>mountinfo escapes space, tab, newline and backslash as \ooo.</summary>
    internal static string Unescape(string field)
    {
        if (!field.Contains('\\')) return field;
        var sb = new StringBuilder(field.Length);
        for (int i = 0; i < field.Length; i++)
        {
            if (field[i] == '\\' && IsOctal(field, i + 1))
            {
                sb.Append((char)Convert.ToInt32(field.Substring(i + 1, 3), 8));
                i += 3;
            }
            else sb.Append(field[i]);
        }
        return sb.ToString();
    }

    private static bool IsOctal(string s, int at) => at + 3 <= s.Length && s.AsSpan(at, 3).IndexOfAnyExcept("01234567") < 0;
}
