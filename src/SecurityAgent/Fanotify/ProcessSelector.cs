namespace SecurityAgent.Fanotify;

/// <summary>The process that caused a permission event, as the decision sees it. Every value is read on first use
/// (most rules never need most of them) and only from /proc or the agent's own maps: never from a file a rule could
/// mark, so a decision cannot wait on itself. The process is blocked in the open or exec being decided, so its
/// binary, credentials and namespaces cannot change while they are read.</summary>
public interface IProcessView
{
    /// <summary>The thread group id (fanotify reports the tgid; the agent's own pid is a plain comparison).</summary>
    int Pid { get; }

    /// <summary>The executable's path (the pre-exec binary for an exec), empty when unknown.</summary>
    ReadOnlySpan<byte> Binary { get; }

    /// <summary>Credentials, capabilities, parent and namespace pid; null when the process is gone.</summary>
    ProcessStatus? Status { get; }

    /// <summary>The inode of a namespace (/proc/PID/ns/NAME: mnt, pid, net, uts, ipc, user, cgroup, time), or null.</summary>
    ulong? Namespace(string name);

    /// <summary>The cgroup v2 id (the inode of its cgroup directory), or null.</summary>
    ulong? CgroupId { get; }

    /// <summary>The parent of any process (for followForks), 0 when unknown.</summary>
    int ParentOf(int pid);
}

public readonly record struct ProcessStatus(int Ppid, int NsPid, uint Uid, uint Euid, uint Gid, uint Egid,
    ulong CapInheritable, ulong CapPermitted, ulong CapEffective);

/// <summary>Decides whether a rule applies to a process. Called on the decision thread: it must not block on
/// anything but the view's reads (no locks another agent thread may hold while opening a file).</summary>
public interface IProcessPredicate
{
    bool Matches(IProcessView process);
}

public enum CapabilitySet { Effective, Permitted, Inheritable }

/// <summary>matchPIDs: the process (or, with <paramref name="FollowForks"/>, one of its ancestors) is one of
/// <paramref name="Pids"/> (In) or none of them (NotIn); <paramref name="NamespacePids"/> compares the pid as its own
/// pid namespace numbers it.</summary>
public sealed record PidFilter(bool In, IReadOnlyList<int> Pids, bool FollowForks = false, bool NamespacePids = false);

/// <summary>matchCapabilities: In when the set holds any capability of the mask, NotIn when it holds none.</summary>
public sealed record CapabilityFilter(bool In, CapabilitySet Set, ulong Mask);

/// <summary>matchNamespaces: the process's namespace NAME is (In) or is not (NotIn) one of the inodes.</summary>
public sealed record NamespaceFilter(string Namespace, bool In, IReadOnlyList<ulong> Inodes);

/// <summary>The process part of a selector as plain data, evaluated like the kernel evaluates it (all present parts
/// must hold). <paramref name="CgroupInScope"/> is the pod scope: whether a cgroup id belongs to the policy's pods.</summary>
public sealed record ProcessSelector(
    PathFilter? Binary = null,
    PidFilter? Pids = null,
    CapabilityFilter? Capabilities = null,
    IReadOnlyList<NamespaceFilter>? Namespaces = null,
    Func<ulong, bool>? CgroupInScope = null) : IProcessPredicate
{
    private readonly PathMatcher? _binary = Binary is null ? null : new PathMatcher([Binary]);

    /// <summary>How many ancestors followForks looks at before giving up (a cycle in a racing /proc read).</summary>
    private const int MaxDepth = 64;

    public bool Matches(IProcessView p)
    {
        if (CgroupInScope is not null && !(p.CgroupId is { } cg && CgroupInScope(cg)))
            return false;
        if (Pids is not null && PidIn(p) != Pids.In)
            return false;
        if (_binary is not null && !_binary.Matches(p.Binary))
            return false;
        if (Capabilities is { } c)
        {
            if (p.Status is not { } st) return false;
            ulong caps = c.Set switch
            {
                CapabilitySet.Permitted => st.CapPermitted,
                CapabilitySet.Inheritable => st.CapInheritable,
                _ => st.CapEffective,
            };
            if (((caps & c.Mask) != 0) != c.In) return false;
        }
        foreach (var ns in Namespaces ?? [])
            if ((p.Namespace(ns.Namespace) is { } ino && ns.Inodes.Contains(ino)) != ns.In)
                return false;
        return true;
    }

    private bool PidIn(IProcessView p)
    {
        var f = Pids!;
        int self = f.NamespacePids ? p.Status?.NsPid ?? 0 : p.Pid;
        if (f.Pids.Contains(self)) return true;
        if (!f.FollowForks) return false;
        int pid = p.Status?.Ppid ?? 0;
        for (int depth = 0; pid > 1 && depth < MaxDepth; depth++, pid = p.ParentOf(pid))
            if (f.Pids.Contains(pid))
                return true;
        return false;
    }
}
