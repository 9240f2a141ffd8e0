using System.Buffers.Text;
using System.Text.Unicode;
using SecurityAgent.Interop;

namespace SecurityAgent.Fanotify;

/// <summary>Writes a process's binary path into the buffer and returns its length (-1 when unknown): the agent's
/// kernel map of pid → binary (what matchBinaries reads in the kernel), when the agent runs the process sensor.</summary>
public delegate int BinarySource(int pid, Span<byte> buffer);

/// <summary>The <see cref="IProcessView"/> of the decision thread: reads /proc lazily into buffers it reuses, so a
/// decision allocates nothing. procfs is the one file system the kernel refuses permission marks on
/// (FS_DISALLOW_NOTIFY_PERM), so these reads can never wait for a fanotify answer. Not thread-safe: one per thread.</summary>
internal sealed class ProcProcessView(BinarySource? binarySource, string? cgroup2Mount) : IProcessView
{
    private readonly byte[] _binary = new byte[4096];
    private readonly byte[] _file = new byte[4096];
    private int _binaryLength;
    private bool _binaryRead, _statusRead, _cgroupRead, _exeChecked, _kernelThread;
    private ProcessStatus? _status;
    private ulong? _cgroup;

    public int Pid { get; private set; }

    public void Reset(int pid)
    {
        Pid = pid;
        _binaryRead = _statusRead = _cgroupRead = _exeChecked = false;
        _status = null;
        _cgroup = null;
    }

    public ReadOnlySpan<byte> Binary
    {
        get
        {
            if (!_binaryRead)
            {
                _binaryRead = true;
                _binaryLength = binarySource?.Invoke(Pid, _binary) ?? ReadExe(_binary);
            }
            return _binaryLength > 0 ? _binary.AsSpan(0, _binaryLength) : default;
        }
    }

    /// <summary>A kernel thread has no executable (and a process before its first exec, e.g. a usermode helper).</summary>
    public bool IsKernelThread
    {
        get
        {
            if (binarySource is null)
                return Binary.IsEmpty && _binaryLength == -Errno.ENOENT;
            if (!_exeChecked)
            {
                _exeChecked = true;
                _kernelThread = ReadExe(_file) == -Errno.ENOENT;
            }
            return _kernelThread;
        }
    }

    private int ReadExe(Span<byte> buffer)
    {
        Span<byte> path = stackalloc byte[32];
        int n = Libc.ReadLink(Format(path, $"/proc/{Pid}/exe\0"), buffer);
        const string deleted = " (deleted)";
        if (n > deleted.Length && buffer[..n].EndsWith(" (deleted)"u8)) n -= deleted.Length;
        return n;
    }

    public ProcessStatus? Status
    {
        get
        {
            if (!_statusRead)
            {
                _statusRead = true;
                _status = ReadStatus(Pid);
            }
            return _status;
        }
    }

    public int ParentOf(int pid) => ReadStatus(pid)?.Ppid ?? 0;

    public ulong? Namespace(string name)
    {
        Span<byte> path = stackalloc byte[48];
        int n = Libc.ReadLink(Format(path, $"/proc/{Pid}/ns/{name}\0"), _file);
        // "mnt:[4026531841]"
        if (n <= 0) return null;
        var link = _file.AsSpan(0, n);
        int open = link.IndexOf((byte)'[');
        return open >= 0 && Utf8Parser.TryParse(link[(open + 1)..], out ulong ino, out _) ? ino : null;
    }

    public ulong? CgroupId
    {
        get
        {
            if (_cgroupRead) return _cgroup;
            _cgroupRead = true;
            if (cgroup2Mount is null) return null;
            Span<byte> path = stackalloc byte[32];
            int n = Libc.ReadSmallFile(Format(path, $"/proc/{Pid}/cgroup\0"), _file);
            if (n <= 0) return null;
            foreach (var line in new SpanLines(_file.AsSpan(0, n)))
                if (line.StartsWith("0::"u8))
                    return _cgroup = Libc.Stat(cgroup2Mount + System.Text.Encoding.UTF8.GetString(line[3..]))?.Ino;
            return null;
        }
    }

    private ProcessStatus? ReadStatus(int pid)
    {
        Span<byte> path = stackalloc byte[32];
        int n = Libc.ReadSmallFile(Format(path, $"/proc/{pid}/status\0"), _file);
        return n > 0 ? ParseStatus(_file.AsSpan(0, n)) : null;
    }

    /// <summary>The fields of /proc/PID/status a selector reads.</summary>
    internal static ProcessStatus ParseStatus(ReadOnlySpan<byte> text)
    {
        int ppid = 0, nspid = 0;
        uint uid = 0, euid = 0, gid = 0, egid = 0;
        ulong inh = 0, prm = 0, eff = 0;
        foreach (var line in new SpanLines(text))
        {
            int tab = line.IndexOf((byte)'\t');
            if (tab < 0) continue;
            var key = line[..tab];
            var value = line[(tab + 1)..];
            if (key.SequenceEqual("PPid:"u8)) Utf8Parser.TryParse(value, out ppid, out _);
            else if (key.SequenceEqual("NSpid:"u8)) Utf8Parser.TryParse(value[(value.LastIndexOf((byte)'\t') + 1)..], out nspid, out _);
            else if (key.SequenceEqual("Uid:"u8)) (uid, euid) = TwoFields(value);
            else if (key.SequenceEqual("Gid:"u8)) (gid, egid) = TwoFields(value);
            else if (key.SequenceEqual("CapInh:"u8)) Utf8Parser.TryParse(value, out inh, out _, 'x');
            else if (key.SequenceEqual("CapPrm:"u8)) Utf8Parser.TryParse(value, out prm, out _, 'x');
            else if (key.SequenceEqual("CapEff:"u8)) Utf8Parser.TryParse(value, out eff, out _, 'x');
        }
        return new ProcessStatus(ppid, nspid, uid, euid, gid, egid, inh, prm, eff);
    }

    private static (uint, uint) TwoFields(ReadOnlySpan<byte> value)
    {
        Utf8Parser.TryParse(value, out uint first, out int used);
        Utf8Parser.TryParse(value[(used + 1)..], out uint second, out _);
        return (first, second);
    }

    internal static ReadOnlySpan<byte> Format(Span<byte> buffer, [System.Runtime.CompilerServices.InterpolatedStringHandlerArgument(nameof(buffer))] ref Utf8.TryWriteInterpolatedStringHandler text) =>
        Utf8.TryWrite(buffer, ref text, out int n) ? buffer[..n] : throw new InvalidOperationException("path buffer too small");

    /// <summary>Lines of a /proc file without allocating.</summary>
    private ref struct SpanLines(ReadOnlySpan<byte> text)
    {
        private ReadOnlySpan<byte> _rest = text;
        public ReadOnlySpan<byte> Current { get; private set; }

        public readonly SpanLines GetEnumerator() => this;

        public bool MoveNext()
        {
            if (_rest.IsEmpty) return false;
            int nl = _rest.IndexOf((byte)'\n');
            Current = nl < 0 ? _rest : _rest[..nl];
            _rest = nl < 0 ? default : _rest[(nl + 1)..];
            return true;
        }
    }
}
