using SecurityAgent.Events;

namespace SecurityAgent.Policies;

/// <summary>The file-name arguments of syscalls. Read at a syscall's entry tracepoint, such an argument is the
/// string the process passed ("shadow", "/etc//shadow", "../etc/./shadow"); for Equal/Prefix/Postfix selectors
/// on it the kernel matches the path instead: joined to the cwd or to the dirfd's directory and normalised at
/// enter (so Sigkill lands before the syscall runs), and, for opens and execs, the path of what the kernel
/// actually opened or executed at exit (symlinks, bind mounts, hard links, /proc/self/fd/N).</summary>
public static class PathArguments
{
    /// <summary>How a file-name argument is resolved.</summary>
    /// <param name="DirFd">It is relative to the directory fd passed as the argument before it (the *at calls).</param>
    public readonly record struct PathArg(int Index, bool DirFd);

    private sealed record Syscall(PathArg[] Args, PolicyWire.PointFlags Exit = 0);

    private static Syscall Cwd(params int[] idx) => new(idx.Select(i => new PathArg(i, false)).ToArray());
    private static Syscall At(params int[] idx) => new(idx.Select(i => new PathArg(i, true)).ToArray());

    // Argument numbers are the syscall's (0-based). symlink's first argument is the link's content, not a name
    // looked up now: it stays as passed.
    private static readonly Dictionary<string, Syscall> Table = new()
    {
        ["open"] = Cwd(0) with { Exit = PolicyWire.PointFlags.Fd },
        ["creat"] = Cwd(0) with { Exit = PolicyWire.PointFlags.Fd },
        ["openat"] = At(1) with { Exit = PolicyWire.PointFlags.Fd },
        ["openat2"] = At(1) with { Exit = PolicyWire.PointFlags.Fd },
        ["execve"] = Cwd(0) with { Exit = PolicyWire.PointFlags.Exe },
        ["execveat"] = At(1) with { Exit = PolicyWire.PointFlags.Exe },
        ["truncate"] = Cwd(0),
        ["unlink"] = Cwd(0), ["unlinkat"] = At(1), ["rmdir"] = Cwd(0),
        ["rename"] = Cwd(0, 1), ["renameat"] = At(1, 3), ["renameat2"] = At(1, 3),
        ["link"] = Cwd(0, 1), ["linkat"] = At(1, 3),
        ["symlink"] = Cwd(1), ["symlinkat"] = At(2),
        ["chmod"] = Cwd(0), ["fchmodat"] = At(1), ["fchmodat2"] = At(1),
        ["chown"] = Cwd(0), ["lchown"] = Cwd(0), ["fchownat"] = At(1),
        ["mkdir"] = Cwd(0), ["mkdirat"] = At(1), ["mknod"] = Cwd(0), ["mknodat"] = At(1),
        ["mount"] = Cwd(1), ["umount"] = Cwd(0), ["chdir"] = Cwd(0), ["chroot"] = Cwd(0),
        ["access"] = Cwd(0), ["faccessat"] = At(1), ["faccessat2"] = At(1),
        ["newstat"] = Cwd(0), ["newlstat"] = Cwd(0), ["newfstatat"] = At(1), ["statx"] = At(1),
        ["readlink"] = Cwd(0), ["readlinkat"] = At(1), ["utimes"] = Cwd(0), ["utimensat"] = At(1), ["futimesat"] = At(1),
        ["setxattr"] = Cwd(0), ["lsetxattr"] = Cwd(0), ["getxattr"] = Cwd(0), ["lgetxattr"] = Cwd(0),
        ["removexattr"] = Cwd(0), ["lremovexattr"] = Cwd(0), ["listxattr"] = Cwd(0), ["llistxattr"] = Cwd(0),
        ["inotify_add_watch"] = Cwd(1), ["name_to_handle_at"] = At(1), ["swapon"] = Cwd(0), ["acct"] = Cwd(0),
    };

    /// <summary>A syscall entry tracepoint's record: header and syscall number, then the arguments, 8 bytes each.</summary>
    private const int FirstArgOffset = 16;

    private static Syscall? Of(string target) =>
        target.StartsWith("syscalls/sys_enter_", StringComparison.Ordinal) && Table.TryGetValue(target["syscalls/sys_enter_".Length..], out var s) ? s : null;

    /// <summary>The resolving read of the record field at <paramref name="offset"/> of attach point
    /// <paramref name="target"/>, when it is a file-name argument read as a string; null otherwise.</summary>
    public static ArgType? Resolved(string target, int offset, ArgType type)
    {
        if (type != ArgType.String || offset < FirstArgOffset || (offset - FirstArgOffset) % 8 != 0 || Of(target) is not { } s)
            return null;
        int index = (offset - FirstArgOffset) / 8;
        foreach (var a in s.Args)
            if (a.Index == index)
                return a.DirFd ? ArgType.UserPathAt : ArgType.UserPath;
        return null;
    }

    /// <summary>Which of the syscall's file names (0: the first, 1: the second, as rename's old and new) the record field
    /// at <paramref name="offset"/> of attach point <paramref name="target"/> is; -1 when it is none.</summary>
    public static int NamePosition(string target, int offset)
    {
        if (offset < FirstArgOffset || (offset - FirstArgOffset) % 8 != 0 || Of(target) is not { } s)
            return -1;
        return Array.FindIndex(s.Args, a => a.Index == (offset - FirstArgOffset) / 8);
    }

    /// <summary>What the exit of the syscall at <paramref name="target"/> looks up again (0: nothing).</summary>
    public static PolicyWire.PointFlags Exit(string target) => Of(target)?.Exit ?? 0;

    /// <summary>The exit tracepoint ("syscalls/sys_exit_X") where the object is looked up again, or null.</summary>
    public static string? ExitTracepoint(string target) =>
        Exit(target) != 0 ? "syscalls/sys_exit_" + target["syscalls/sys_enter_".Length..] : null;

    /// <summary>Where an exec's executed file is looked up again: every successful exec passes this tracepoint with
    /// the new program's mm (sys_exit_execveat does not fire after a successful execveat on 6.18).</summary>
    public const string ExecTracepoint = "sched/sched_process_exec";

    /// <summary>What a hook at an open may do when it matches at the exit alone: nothing that has to happen before the call
    /// (a user stack is the same at exit; a kernel stack, a signal, an override or an enforcer's notification are not).</summary>
    private const Actions AfterCallActions = Actions.Post | Actions.UserStack | Actions.MaxData;

    /// <summary>Why <paramref name="hook"/>, at an open whose exit sees the file opened, needs the open's enter: null when
    /// it can match at the exit alone (what it does may as well happen after the call).</summary>
    public static string? EnterNeeded(HookPlan hook)
    {
        if (hook.Return is not null)
            return "a return probe";
        foreach (var s in hook.Selectors)
            if ((s.Actions & ~AfterCallActions) is var before and not 0)
                return $"{before} must come before the call";
        return null;
    }

    /// <summary>For --explain: where the hooks of an open are matched (null: not an open with a resolved path).</summary>
    public static string? MatchedWhere(HookPlan hook)
    {
        if (hook.Mechanism != Kernel.Mechanism.Tracepoint || Exit(hook.Target) != PolicyWire.PointFlags.Fd)
            return null;
        var exit = ExitTracepoint(hook.Target);
        return EnterNeeded(hook) is { } why
            ? $"matched: at enter and again at {exit} on the file opened ({why})"
            : $"matched: at {exit} alone (every selector only posts, nothing has to happen before the call): the arguments from the task's saved "
                + "registers, the path of the file opened (a failed call: the name passed, resolved as at enter); selectors with a Prefix or Equal on "
                + "the path first compare the opened file's first path component, selectors with a Postfix whose values end in \"/name\" "
                + "its own name (no path built for a call that cannot match); events say "
                + "matched_at_exit. A hook of another policy here that must act before the call brings the enter back for all of them, "
                + "as does a kernel that refuses the exit-only program (logged once; status: exit_only_matching)";
    }

    /// <summary>A regular file as the kernel identifies it.</summary>
    public readonly record struct FileId(string Path, uint Dev, ulong Ino);

    /// <summary>Files of one Prefix value whose other names are recognised (the rest: by path only).</summary>
    private const int MaxFilesPerValue = 1024;

    /// <summary>The existing files a file-name value names: the file itself (Equal), or for a Prefix every
    /// regular file whose path starts with it (at most <see cref="MaxFilesPerValue"/>, symlinks not followed).
    /// Their inodes let a syscall's exit recognise them under another name (a hard link).</summary>
    public static IEnumerable<FileId> Files(string value, bool prefix)
    {
        if (Interop.Libc.TryFileId(value, out var dev, out var ino))
            yield return new FileId(value, dev, ino);
        int slash = value.LastIndexOf('/');
        if (!prefix || slash < 0)
            yield break;
        var dir = value[..(slash + 1)];
        var rest = value[(slash + 1)..];
        if (!Directory.Exists(dir))
            yield break;
        var options = new EnumerationOptions { RecurseSubdirectories = false, IgnoreInaccessible = true, AttributesToSkip = FileAttributes.ReparsePoint };
        var deep = new EnumerationOptions { RecurseSubdirectories = true, MaxRecursionDepth = 8, IgnoreInaccessible = true, AttributesToSkip = FileAttributes.ReparsePoint };
        int n = 0;
        IEnumerable<string> Under(string d)
        {
            try { return Directory.EnumerateFiles(d, "*", deep); } catch (IOException) { return []; } catch (UnauthorizedAccessException) { return []; }
        }
        IEnumerable<string> top;
        try { top = Directory.EnumerateFileSystemEntries(dir, rest + "*", options).ToList(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { yield break; }
        foreach (var entry in top)
            foreach (var f in Directory.Exists(entry) && !File.GetAttributes(entry).HasFlag(FileAttributes.ReparsePoint) ? Under(entry) : [entry])
            {
                if (f == value || !Interop.Libc.TryFileId(f, out dev, out ino)) continue;
                if (++n > MaxFilesPerValue) yield break;
                yield return new FileId(f, dev, ino);
            }
    }

    private static string HardLinks(Cmp cmp) => cmp is Cmp.Postfix or Cmp.NotPostfix
        ? "; a hard link under another name is not recognised by a Postfix"
        : "; hard links by inode: the files the values name when loaded, not files created since";

    private static string HostView(Cmp cmp) => cmp is Cmp.Postfix or Cmp.NotPostfix
        ? ""
        : "; in a chroot or another mount namespace, the host's path of the file as well";

    /// <summary>For --explain: what a string filter on argument <paramref name="arg"/> of <paramref name="hook"/> matches.</summary>
    public static string? Explain(HookPlan hook, ArgPlan arg, Cmp cmp)
    {
        if (hook.Mechanism != Kernel.Mechanism.Tracepoint || Resolved(hook.Target, arg.Offset, arg.KernelType) is not { } how)
            return null;
        var enter = how == ArgType.UserPathAt
            ? "the resolved path (relative names joined to the dirfd's directory or the cwd, '.', '..' and '//' folded, at enter)"
            : "the resolved path (relative names joined to the cwd, '.', '..' and '//' folded, at enter)";
        return Exit(hook.Target) switch
        {
            PolicyWire.PointFlags.Fd when EnterNeeded(hook) is null => "at sys_exit alone (every selector only posts: no program at the enter), "
                + "the path of the file the kernel opened (symlinks, bind mounts, /proc/self/fd" + HardLinks(cmp) + "); for a failed call " + enter
                + " from the name read again at exit" + HostView(cmp),
            PolicyWire.PointFlags.Fd => enter + ", and again at sys_exit the path of the file the kernel opened (symlinks, bind mounts, /proc/self/fd" + HardLinks(cmp) + ")" + HostView(cmp),
            PolicyWire.PointFlags.Exe => enter + ", and again once the exec succeeded (sched_process_exec) the path of the file the kernel executed (symlinks, bind mounts" + HardLinks(cmp) + ")" + HostView(cmp),
            _ => enter + (Fanotify.PathChanges.Explain(hook, cmp) ?? " only: this syscall's object is not looked up again at exit, so a symlink, bind mount, hard link or /proc/self/fd name in the path is matched as spelled") + HostView(cmp),
        };
    }
}
