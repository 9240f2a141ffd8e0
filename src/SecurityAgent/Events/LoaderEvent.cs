namespace SecurityAgent.Events;

/// <summary>spec.loader: a process mapped a file executable (struct loader_event). Dev (the kernel's encoding), Ino and
/// Mtime name the file for the build-id cache; Path is the file as the process sees it. A view over the record.</summary>
public readonly ref struct LoaderEvent(ulong ktime, int pid, int tid, ulong dev, ulong ino, long mtime, ReadOnlySpan<byte> path, bool truncated)
{
    public ulong Ktime { get; } = ktime;
    public int Pid { get; } = pid;
    public int Tid { get; } = tid;
    public ulong Dev { get; } = dev;
    public ulong Ino { get; } = ino;
    public long Mtime { get; } = mtime;
    public ReadOnlySpan<byte> Path { get; } = path;
    public bool Truncated { get; } = truncated;
}
