using System.Runtime.InteropServices;
using SecurityAgent.Interop;
using Microsoft.Win32.SafeHandles;

namespace SecurityAgent.Export;

/// <summary>Where JSON lines go: whole lines in, the number of bytes of whole lines that landed out.</summary>
public interface ILineSink : IDisposable
{
    /// <summary>Writes <paramref name="lines"/> (each ending in '\n'); returns how many leading bytes are in the sink,
    /// always ending at a line end. A failure is returned in <paramref name="error"/>, never thrown.</summary>
    long Write(ReadOnlySpan<byte> lines, out string? error);
}

/// <summary>A stream (stdout) as a line sink: a failed write counts its whole batch as lost.</summary>
public sealed class StreamSink(Stream stream) : ILineSink
{
    public long Write(ReadOnlySpan<byte> lines, out string? error)
    {
        try
        {
            stream.Write(lines);
            stream.Flush();
            error = null;
            return lines.Length;
        }
        catch (IOException e)
        {
            error = e.Message;
            return 0;
        }
    }

    public void Dispose() => stream.Dispose();
}

/// <summary>The export file: created private (0600, or 0640 with a group for a log shipper), opened with O_NOFOLLOW,
/// only in a directory no one else can write. A write that fails part-way is cut back to its last whole line. The
/// file deleted or renamed away by someone else is noticed before the next write and created again. Rotation by
/// size renames PATH → PATH.1 → ... PATH.N (never copies or truncates), between lines, so a reader that follows the
/// file by name, as `tail -F` does, loses no line.</summary>
public sealed class ExportFile : ILineSink
{
    private readonly string _path;
    private readonly long _maxBytes;
    private readonly int _maxBackups;
    private readonly int? _group;
    private SafeFileHandle? _fd;
    private ulong _inode;
    private long _size;

    public long Rotations { get; private set; }
    public long Reopens { get; private set; }

    /// <summary>Opens (creates) the file now: an unsafe path is refused here, with the reason.</summary>
    public ExportFile(string path, long maxBytes = 0, int maxBackups = 5, int? group = null)
    {
        (_path, _maxBytes, _maxBackups, _group) = (Path.GetFullPath(path), maxBytes, maxBackups, group);
        PrivateFiles.CheckDirectory(Path.GetDirectoryName(_path)!);
        Open();
    }

    private void Open()
    {
        _fd?.Dispose();
        _fd = null;
        var fd = PrivateFiles.Open(_path, Libc.O_WRONLY | Libc.O_APPEND, _group);
        var st = Libc.Fstat(fd, out _)!.Value;
        (_fd, _inode, _size) = (fd, st.Inode, st.Size);
    }

    /// <summary>Deleted (no links left) or replaced at its path (renamed away by a rotation of someone else's).</summary>
    private bool Moved()
    {
        if (_fd is null) return true;
        if (Libc.Fstat(_fd, out _) is not { Links: > 0 }) return true;
        return Libc.Lstat(_path) is not { } now || now.Inode != _inode;
    }

    public long Write(ReadOnlySpan<byte> lines, out string? error)
    {
        error = null;
        try
        {
            if (Moved())
            {
                if (_fd is not null) Reopens++;
                Open();
            }
        }
        catch (IOException e)
        {
            error = e.Message;
            return 0;
        }
        long done = 0;
        while (done < lines.Length)
        {
            var rest = lines[(int)done..];
            var chunk = rest;
            if (_maxBytes > 0 && _size > 0 && _size + rest.Length > _maxBytes)
            {
                // The lines that still fit (at least one into an empty file), then rotate.
                int fit = (int)Math.Max(0, _maxBytes - _size);
                int cut = fit >= rest.Length ? rest.Length : rest[..fit].LastIndexOf((byte)'\n') + 1;
                if (cut == 0)
                {
                    try { Rotate(); }
                    catch (IOException e) { error = e.Message; return done; }
                    continue;
                }
                chunk = rest[..cut];
            }
            long n = Libc.WriteAll(_fd!, chunk, out int errno);
            if (errno != 0)
            {
                long whole = chunk[..(int)n].LastIndexOf((byte)'\n') + 1;
                if (whole != n)
                {
                    try { Libc.Ftruncate(_fd!, _size + whole); }
                    catch (IOException) { } // the partial line stays; the next write starts a new one after it
                }
                _size += whole;
                error = Errno.Name(errno) == "ENOSPC" ? "no space left on device" : Marshal.GetPInvokeErrorMessage(errno);
                return done + whole;
            }
            _size += n;
            done += n;
        }
        return done;
    }

    private void Rotate()
    {
        if (_maxBackups <= 0)
            File.Delete(_path);
        else
        {
            File.Delete($"{_path}.{_maxBackups}");
            for (int i = _maxBackups - 1; i >= 1; i--)
                if (File.Exists($"{_path}.{i}"))
                    File.Move($"{_path}.{i}", $"{_path}.{i + 1}");
            File.Move(_path, _path + ".1");
        }
        Open();
        Rotations++;
    }

    public void Dispose() => _fd?.Dispose();
}

/// <summary>The rules for the files the agent writes (export, rotated and stats files).</summary>
public static class PrivateFiles
{
    private const uint GroupWrite = 0x10, OtherWrite = 0x2, Sticky = 0x200;

    /// <summary>The directory, and every directory on the way to it (symbolic links followed, the directories they
    /// lead through checked too), belongs to root (or the agent's user) and no one else can write it. Above the
    /// directory itself a sticky world-writable one (/tmp) is allowed: no one but an entry's owner can rename or
    /// delete it there.</summary>
    public static void CheckDirectory(string dir) => Resolve(Path.GetFullPath(dir), last: true, depth: 0);

    private static string Resolve(string path, bool last, int depth)
    {
        if (depth > 8) throw new IOException($"{path}: too many levels of symbolic links");
        var parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        var cur = "/";
        Check(cur, Libc.Lstat(cur)!.Value, last && parts.Length == 0);
        for (int i = 0; i < parts.Length; i++)
        {
            bool final = last && i == parts.Length - 1;
            var next = Path.Combine(cur, parts[i]);
            var st = Libc.Lstat(next) ?? throw new IOException($"{next} does not exist");
            if (st.IsSymlink)
                next = Resolve(Path.GetFullPath(new FileInfo(next).LinkTarget!, cur), final, depth + 1);
            else
                Check(next, st, final);
            cur = next;
        }
        return cur;
    }

    private static void Check(string d, Libc.FileStat st, bool final)
    {
        if (!st.IsDirectory) throw new IOException($"{d} is not a directory");
        uint me = Libc.geteuid();
        if (st.Uid != 0 && st.Uid != me)
            throw new IOException($"{d} belongs to uid {st.Uid}: the agent writes its files only in directories of root");
        if ((st.Mode & (GroupWrite | OtherWrite)) != 0 && (final || (st.Mode & Sticky) == 0))
            throw new IOException($"{d} is writable by others (mode {Convert.ToString(st.Mode & 0xfff, 8)}): choose a directory only root can write");
    }

    /// <summary>Opens (creating 0600, or 0640 and chown to <paramref name="group"/>) without following a symlink; refuses
    /// a file that is not a regular file of the agent's user.</summary>
    public static SafeFileHandle Open(string path, int flags, int? group)
    {
        var fd = Libc.OpenFile(path, flags | Libc.O_CREAT | Libc.O_NOFOLLOW, group is null ? 0x180u : 0x1a0u);
        try
        {
            var st = Libc.Fstat(fd, out _) ?? throw new IOException($"fstat({path}) failed");
            if (!st.IsRegular) throw new IOException($"{path} is not a regular file: refused");
            if (st.Uid != Libc.geteuid()) throw new IOException($"{path} belongs to uid {st.Uid}, not to the agent: refused");
            if (group is { } g && st.Gid != g) Libc.Fchown(fd, g);
            uint wanted = group is null ? 0x180u : 0x1a0u;
            if ((st.Mode & 0x1ff) != wanted) File.SetUnixFileMode(fd, (UnixFileMode)wanted);
            return fd;
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>Replaces <paramref name="path"/> atomically with <paramref name="content"/> (a temp file beside it, then rename).</summary>
    public static void Replace(string path, ReadOnlySpan<byte> content, int? group)
    {
        var tmp = path + ".tmp";
        using (var fd = Open(tmp, Libc.O_WRONLY | Libc.O_TRUNC, group))
        {
            Libc.WriteAll(fd, content, out int errno);
            if (errno != 0) throw new IOException($"{tmp}: {Marshal.GetPInvokeErrorMessage(errno)}");
        }
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>A group by name (from /etc/group) or number.</summary>
    public static int Gid(string group) =>
        int.TryParse(group, out var gid) ? gid
        : File.ReadLines("/etc/group").Select(l => l.Split(':')).FirstOrDefault(f => f.Length > 2 && f[0] == group) is { } e ? int.Parse(e[2])
        : throw new ArgumentException($"no group named {group} in /etc/group");
}
