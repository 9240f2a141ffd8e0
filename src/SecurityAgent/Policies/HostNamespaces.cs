using SecurityAgent.Processes;

namespace SecurityAgent.Policies;

/// <summary>matchNamespaces' host_ns and isNamespaceCapability: the namespaces of the host's init (pid 1; the
/// agent's own where pid 1's cannot be read), as the inode numbers the kernel compares. Read once.</summary>
public static class HostNamespaces
{
    private static readonly Lazy<Events.NamespaceInums> Host = new(() => ProcFsScanner.ReadHostNamespaces());

    public static uint Inode(Events.Wire.Namespace ns) => Host.Value[(int)ns] is var inode and not 0
        ? inode
        : throw new PolicyLimitException($"host_ns: the host's {ns} namespace cannot be read from /proc/1/ns or /proc/self/ns");
}
