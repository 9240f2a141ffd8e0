using System.Text;
using Microsoft.Win32.SafeHandles;
using SecurityAgent.Interop;

namespace SecurityAgent.Policies;

/// <summary>A policy file as read from disk: its text, or why it was refused.</summary>
public sealed record PolicyFileRead(string Path, string? Text, string? Refusal);

/// <summary>Reading policy files within the limits: never blocking (a FIFO is refused, not opened for a writer), only
/// regular files, at most <see cref="PolicyLimits.MaxBytes"/>, strict UTF-8. The policy directory is a trust boundary
/// (as sshd and sudo treat their configuration): it and its files must belong to root (or the agent's own user) and
/// not be writable by group or others (a sticky directory of root's, as Kubernetes mounts a ConfigMap, is fine: no one
/// else can replace root's entries there), and a symlink must be root's and point at a file inside it (a ConfigMap's
/// links do).</summary>
public static class PolicyFiles
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static bool IsPolicyFile(string name) =>
        (name.EndsWith(".yaml", StringComparison.Ordinal) || name.EndsWith(".yml", StringComparison.Ordinal)) && !Path.GetFileName(name).StartsWith('.');

    /// <summary>Why the policy directory cannot be trusted, or null when it can.</summary>
    public static string? DirectoryProblem(string dir)
    {
        try
        {
            using var h = PosixFiles.OpenRead(dir, noFollow: false, directory: true);
            var st = PosixFiles.Stat(h);
            return st.Sticky && st.Uid == 0 ? null : OwnershipProblem(st, "directory " + dir, "chmod go-w");
        }
        catch (IOException e)
        {
            return $"cannot open the policy directory {dir}: {e.Message}";
        }
    }

    private static string? OwnershipProblem(FileStatus st, string what, string fix)
    {
        uint self = PosixFiles.EffectiveUid;
        if (st.Uid != 0 && st.Uid != self)
            return $"{what} belongs to uid {st.Uid}, not root: refused (only root may define policies; chown root)";
        if (st.SharedWritable)
            return $"{what} is writable by group or others (mode {st.Permissions}): refused ({fix})";
        return null;
    }

    /// <summary>A file of the trusted policy directory <paramref name="realDir"/> (its canonical path).</summary>
    public static PolicyFileRead ReadTrusted(string realDir, string path)
    {
        try
        {
            SafeFileHandle h;
            try
            {
                h = PosixFiles.OpenRead(path, noFollow: true);
            }
            catch (IOException e) when (e.HResult == PosixFiles.ELOOP)
            {
                if (OwnershipProblem(PosixFiles.LinkStatus(path) with { Mode = 0 }, "the symlink", "chown -h root") is { } linkProblem)
                    return new(path, null, linkProblem);
                var target = PosixFiles.RealPath(path);
                if (target is null)
                    return new(path, null, "a symlink to nothing: skipped");
                if (!target.StartsWith(realDir + "/", StringComparison.Ordinal))
                    return new(path, null, $"a symlink out of the policy directory (to {target}): refused");
                if (Path.GetDirectoryName(target) is { } parent && parent != realDir && DirectoryProblem(parent) is { } p)
                    return new(path, null, p);
                h = PosixFiles.OpenRead(target, noFollow: true);
            }
            using (h)
            {
                var st = PosixFiles.Stat(h);
                if (!st.IsRegular)
                    return new(path, null, $"{st.Type}, not a regular file: skipped");
                if (OwnershipProblem(st, "the file", "chmod go-w") is { } problem)
                    return new(path, null, problem);
                return Read(path, h, st);
            }
        }
        catch (IOException e)
        {
            return new(path, null, "cannot read: " + e.Message);
        }
        catch (UnauthorizedAccessException e)
        {
            return new(path, null, "cannot read: " + e.Message);
        }
    }

    /// <summary>A file named by a user (e.g. `policy validate`): symlinks followed, but still only a regular file within the size limit.</summary>
    public static PolicyFileRead ReadAny(string path)
    {
        try
        {
            using var h = PosixFiles.OpenRead(path, noFollow: false);
            var st = PosixFiles.Stat(h);
            return st.IsRegular ? Read(path, h, st) : new(path, null, $"{st.Type}, not a regular file");
        }
        catch (IOException e)
        {
            return new(path, null, e.Message);
        }
    }

    private static PolicyFileRead Read(string path, SafeFileHandle h, FileStatus st)
    {
        if (st.Size > PolicyLimits.MaxBytes)
            return new(path, null, $"{st.Size} bytes, more than the limit of {PolicyLimits.MaxBytes}: refused");
        // Pseudo files (tracefs) say size 0: read to the end, never past the limit.
        var buffer = new byte[Math.Min(st.Size > 0 ? st.Size : 64 * 1024, PolicyLimits.MaxBytes) + 1];
        int n = 0, r;
        while ((r = RandomAccess.Read(h, buffer.AsSpan(n), n)) > 0)
        {
            n += r;
            if (n < buffer.Length) continue;
            if (buffer.Length > PolicyLimits.MaxBytes) break;
            Array.Resize(ref buffer, Math.Min(buffer.Length * 2, PolicyLimits.MaxBytes + 1));
        }
        if (n > PolicyLimits.MaxBytes)
            return new(path, null, $"more than the limit of {PolicyLimits.MaxBytes} bytes: refused");
        try
        {
            var text = StrictUtf8.GetString(buffer, 0, n);
            return new(path, text.Length > 0 && text[0] == '\uFEFF' ? text[1..] : text, null);
        }
        catch (DecoderFallbackException)
        {
            return new(path, null, "not UTF-8 text: refused");
        }
    }

    /// <summary>The policy files named by paths: a directory stands for its *.yaml and *.yml files (sorted).</summary>
    public static List<string> Expand(IEnumerable<string> paths)
    {
        var files = new List<string>();
        foreach (var p in paths)
        {
            if (Directory.Exists(p))
                files.AddRange(Directory.EnumerateFiles(p).Where(IsPolicyFile).Order(StringComparer.Ordinal));
            else
                files.Add(p);
        }
        return files;
    }
}
