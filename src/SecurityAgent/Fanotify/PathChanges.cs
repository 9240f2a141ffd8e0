using SecurityAgent.Kernel;
using SecurityAgent.Policies;

namespace SecurityAgent.Fanotify;

/// <summary>The change a fanotify notification reports, as it stands for a syscall that only takes a name (unlink, rename,
/// chmod, ...): what the call did to which entry, whatever name the process used.</summary>
[Flags]
public enum PathChange
{
    None = 0,
    /// <summary>FAN_DELETE: an entry was removed (unlink, unlinkat, rmdir).</summary>
    Delete = 1,
    /// <summary>FAN_RENAME (old and new name), or FAN_MOVE_SELF of a watched file (renamed under one of its hard links).</summary>
    Rename = 2,
    /// <summary>FAN_ATTRIB with a name: the mode changed (chmod), as the call's note says; without one, as a stat before
    /// and after tells, and when it cannot (no earlier stat, times or xattrs, the same mode again), both
    /// <see cref="Mode"/> and <see cref="Owner"/>.</summary>
    Mode = 4,
    /// <summary>FAN_ATTRIB with a name: the owner or group changed (chown).</summary>
    Owner = 8,
    /// <summary>FAN_CREATE with FAN_ONDIR (mkdir).</summary>
    Directory = 16,
    /// <summary>FAN_CREATE of a symlink, a device/FIFO/socket, or a second name of a file (looked up once created).</summary>
    Symlink = 32,
    Node = 64,
    /// <summary>FAN_CREATE of a second name of a file, or FAN_ATTRIB without a name on a watched file whose link count grew.</summary>
    Link = 128,
    /// <summary>FAN_ATTRIB without a name on a watched file whose link count fell (a hard link to it removed).</summary>
    Unlink = 256,
    /// <summary>FAN_MODIFY of a truncate call (its note); without one, a FAN_MODIFY that left the file shorter than it was (a
    /// write(2) is FAN_MODIFY too, and does not).</summary>
    Shortened = 512,
}

/// <summary>Syscalls that take a path and leave nothing to read at their exit, matched a second time after the call on
/// the path fanotify reports (the real directory's handle and the entry's name, or a watched file's handle): a symlinked
/// parent directory or a hard link does not hide the file. Which hooks this covers, and what --explain says.</summary>
public static class PathChanges
{
    private static readonly Dictionary<string, PathChange> Syscalls = new()
    {
        ["unlink"] = PathChange.Delete | PathChange.Unlink,
        ["unlinkat"] = PathChange.Delete | PathChange.Unlink,
        ["rmdir"] = PathChange.Delete,
        ["rename"] = PathChange.Rename,
        ["renameat"] = PathChange.Rename,
        ["renameat2"] = PathChange.Rename,
        ["chmod"] = PathChange.Mode,
        ["fchmodat"] = PathChange.Mode,
        ["fchmodat2"] = PathChange.Mode,
        ["chown"] = PathChange.Owner,
        ["lchown"] = PathChange.Owner,
        ["fchownat"] = PathChange.Owner,
        ["mkdir"] = PathChange.Directory,
        ["mkdirat"] = PathChange.Directory,
        ["mknod"] = PathChange.Node,
        ["mknodat"] = PathChange.Node,
        ["link"] = PathChange.Link,
        ["linkat"] = PathChange.Link,
        ["symlink"] = PathChange.Symlink,
        ["symlinkat"] = PathChange.Symlink,
        ["truncate"] = PathChange.Shortened,
    };

    private const string EnterPrefix = "syscalls/sys_enter_";

    /// <summary>The changes that stand for the hook's syscall; None when it is not one of these syscalls.</summary>
    public static PathChange ChangesOf(HookPlan hook) =>
        hook.Mechanism == Mechanism.Tracepoint && hook.Target.StartsWith(EnterPrefix, StringComparison.Ordinal)
            ? Syscalls.GetValueOrDefault(hook.Target[EnterPrefix.Length..]) : PathChange.None;

    private static readonly Dictionary<int, PathChange> ByNumber = Syscalls
        .Where(s => SyscallTable.X86_64.Number(s.Key) is not null)
        .ToDictionary(s => (int)SyscallTable.X86_64.Number(s.Key)!.Value, s => s.Value);

    /// <summary>The changes a syscall, by its number, stands for; None when it is not one of these syscalls.</summary>
    public static PathChange ChangesOfNumber(int nr) => ByNumber.GetValueOrDefault(nr);

    /// <summary>The number of the hook's syscall; -1 when unknown.</summary>
    public static int NumberOf(HookPlan hook) =>
        hook.Target.StartsWith(EnterPrefix, StringComparison.Ordinal) && SyscallTable.X86_64.Number(hook.Target[EnterPrefix.Length..]) is { } n ? (int)n : -1;

    /// <summary>The hook's file-name arguments: slot, which name of the call it is (0, or 1 for rename's and link's new
    /// name), and its offset in the syscall's record.</summary>
    public static IEnumerable<(int Slot, int Position, int Offset)> NameSlots(HookPlan hook) =>
        hook.Args.Where(a => PathArguments.Resolved(hook.Target, a.Offset, a.KernelType) is not null)
            .Select(a => (a.Slot, PathArguments.NamePosition(hook.Target, a.Offset), a.Offset));

    /// <summary>Whether a hook is matched again after the call; why not when it is one of these syscalls but cannot be.</summary>
    public static bool Covered(HookPlan hook, out string why)
    {
        why = "";
        if (ChangesOf(hook) == PathChange.None)
            return false;
        var names = NameSlots(hook).Select(n => n.Slot).ToHashSet();
        foreach (var s in hook.Selectors)
        {
            if (s.PidCmp != Cmp.None || s.CapCmp != Cmp.None || s.ParentBinaries.Count > 0 || s.Namespaces.Count > 0)
            {
                why = "a selector has matchPIDs, matchCapabilities, matchNamespaces or matchParentBinaries, which the after-the-call match does not evaluate";
                return false;
            }
            if (s.Args.Any(f => !names.Contains(f.Slot)))
            {
                why = "a selector matches an argument other than a file name (flags, mode), which fanotify does not report";
                return false;
            }
        }
        if (hook.Selectors.Count == 0 || hook.Selectors.Any(s => !s.Args.Any(f => f.Cmp is Cmp.In or Cmp.Prefix)))
        {
            why = "a selector names no Equal or Prefix path, so there is no directory to watch";
            return false;
        }
        return true;
    }

    /// <summary>For --explain, the after-the-call part of what a path filter on this hook matches; null when not covered.</summary>
    public static string? Explain(HookPlan hook, Cmp cmp)
    {
        if (ChangesOf(hook) is var changes && changes == PathChange.None)
            return null;
        if (!Covered(hook, out var why))
            return " only (not matched after the call: " + why + "), so a symlinked parent directory or a hard link in the path is matched as spelled";
        var what = changes switch
        {
            _ when changes.HasFlag(PathChange.Delete) => "FAN_DELETE: the real path of the removed entry; a watched file's link count falling: the file",
            PathChange.Rename => "FAN_RENAME: the real paths of the old and new name; FAN_MOVE_SELF of a watched file: the file",
            PathChange.Mode => "FAN_ATTRIB of a chmod call, joined to the kernel's note of the call: the real path of the file, and the string passed (a change no note stands for, as io_uring's, is told by the file's stat)",
            PathChange.Owner => "FAN_ATTRIB of a chown call, joined to the kernel's note of the call: the real path of the file, and the string passed (a change no note stands for, as io_uring's, is told by the file's stat)",
            PathChange.Directory => "FAN_CREATE of a directory: its real path",
            PathChange.Shortened => "FAN_MODIFY of a truncate call, joined to the kernel's note of the call: its real path, and the string passed (without a note, only a FAN_MODIFY that left the file shorter)",
            PathChange.Link => "FAN_CREATE of the new name: its real path; a watched file's link count growing: the file",
            _ => "FAN_CREATE: the real path of the new name",
        };
        var links = cmp is Cmp.Postfix or Cmp.NotPostfix ? "" : "; the files the values name when loaded are watched by inode, so a hard link to one is matched as the file";
        return ", and again after the call through fanotify (" + what + links + "); a match there is reported and enforced "
            + "after the syscall: Sigkill kills the process once the call has done its work";
    }
}
