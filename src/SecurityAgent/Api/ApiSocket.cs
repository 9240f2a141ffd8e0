using System.Net.Sockets;
using System.Text;
using Microsoft.Win32.SafeHandles;
using SecurityAgent.Interop;

namespace SecurityAgent.Api;

/// <summary>The local API's Unix socket, born private. One agent owns a socket path at a time: it holds an exclusive
/// lock on PATH.lock for its whole life (the kernel releases it however the agent dies), so a second agent on the
/// same path refuses to start, and a socket left at the path is provably stale once the lock is ours. The socket is
/// bound under umask 0177 (mode 0600 from birth: nobody but root can connect, not even between bind and chmod) in a
/// directory created 0700 when missing and refused when others can write to it.</summary>
public sealed class ApiSocket : IDisposable
{
    public string Path { get; }
    private readonly SafeFileHandle _lock;
    private readonly ulong _inode;

    /// <summary>The bound socket's file descriptor, for the API server, which owns and closes it.</summary>
    public ulong Handle { get; }

    private ApiSocket(string path, SafeFileHandle lockFile, int fd, ulong inode) =>
        (Path, _lock, Handle, _inode) = (path, lockFile, (ulong)fd, inode);

    /// <summary>Claims <paramref name="path"/> for this agent and binds it; throws <see cref="ApiSocketException"/>
    /// saying why not (another agent owns it, something else is there, an unsafe directory).</summary>
    public static ApiSocket Claim(string path)
    {
        path = System.IO.Path.GetFullPath(path);
        var dir = System.IO.Path.GetDirectoryName(path)!;
        PrepareDirectory(dir);
        var lockPath = path + ".lock";
        var lockFile = Libc.TryLockFile(lockPath)
            ?? throw new ApiSocketException($"another agent{Owner(lockPath)} is running with --api-socket {path}; stop it first, or give this one its own --api-socket");
        try
        {
            Libc.Rewrite(lockFile, Encoding.ASCII.GetBytes($"{Environment.ProcessId}\n"));
            RemoveStale(path);
            uint old = Libc.umask(0b001_111_111);
            int fd;
            try { fd = Libc.BindUnixSocket(path); }
            catch (IOException e) { throw new ApiSocketException($"cannot bind {path}: {e.Message}"); }
            finally { Libc.umask(old); }
            return new ApiSocket(path, lockFile, fd, Libc.LStat(path)!.Value.Inode);
        }
        catch
        {
            lockFile.Dispose();
            throw;
        }
    }

    private static void PrepareDirectory(string dir)
    {
        var st = Libc.LStat(dir);
        if (st is null)
        {
            Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            return;
        }
        var (mode, uid, _) = st.Value;
        if ((mode & Libc.S_IFMT) != Libc.S_IFDIR)
            throw new ApiSocketException($"{dir} is not a directory (a symlink is not accepted for the API socket's directory)");
        if (uid != Libc.geteuid())
            throw new ApiSocketException($"{dir} belongs to uid {uid}: the API socket's directory must belong to the agent's user (root)");
        if ((mode & 0b000_010_010) != 0)
            throw new ApiSocketException($"{dir} is writable by group or others (mode {Convert.ToString(mode & 0xFFF, 8)}): choose a directory only root can write, e.g. /var/run/securityagent");
    }

    /// <summary>With the lock held, what is at the path is stale: a socket is removed; anything else is left alone.</summary>
    private static void RemoveStale(string path)
    {
        if (Libc.LStat(path) is not { } st) return;
        if ((st.Mode & Libc.S_IFMT) != Libc.S_IFSOCK)
            throw new ApiSocketException($"{path} exists and is not a socket: not removing it");
        using (var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            try
            {
                probe.Connect(new UnixDomainSocketEndPoint(path));
                throw new ApiSocketException($"a process without the lock answers on {path} (an agent of an older version?); stop it first");
            }
            catch (SocketException) { } // nobody listens: stale
        }
        File.Delete(path);
    }

    private static string Owner(string lockPath)
    {
        try { return Libc.ReadUnlocked(lockPath).Trim() is { Length: > 0 } pid ? $" (pid {pid})" : ""; }
        catch (IOException) { return ""; }
    }

    /// <summary>The API server closed the listening socket; the path and the lock are released here. The socket file is
    /// removed only if it is still the one this agent bound.</summary>
    public void Dispose()
    {
        if (Libc.LStat(Path) is { } st && st.Inode == _inode)
            File.Delete(Path);
        _lock.Dispose();
    }
}

public sealed class ApiSocketException(string message) : Exception(message);
