using SecurityAgent.Events;

namespace SecurityAgent.Processes;

/// <summary>Reads the processes that exist before the agent's hooks saw them, from /proc.</summary>
public static class ProcFsScanner
{
    public static IEnumerable<ProcessInfo> Scan(string nodeName, long clockTickNs, string procRoot = "/proc")
    {
        foreach (var dir in Directory.EnumerateDirectories(procRoot))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid))
                continue;
            ProcessInfo? p = null;
            try
            {
                p = Read(dir, pid, nodeName, clockTickNs);
            }
            catch (IOException) { }             // exited while we read it
            catch (UnauthorizedAccessException) { }
            if (p is not null)
                yield return p;
        }
    }

    /// <summary>Every process of /proc, with in_init_tree as the kernel computes it at fork and exec (Tetragon's
    /// set_in_init_tree, as its /proc reader does): the process is its pid namespace's init (NSpid 1) or its parent is
    /// in the init tree.</summary>
    public static List<ProcessInfo> ScanTree(string nodeName, long clockTickNs, string procRoot = "/proc")
    {
        var all = Scan(nodeName, clockTickNs, procRoot).ToList();
        var byPid = all.ToDictionary(p => p.Pid);
        var memo = new Dictionary<int, bool>();
        bool InTree(ProcessInfo p)
        {
            // Iterative walk up to the first ancestor already decided (a /proc snapshot can hold a cycle of reused pids).
            var chain = new List<ProcessInfo>();
            bool result = false;
            for (var q = p; q is not null && chain.Count <= all.Count; q = byPid.GetValueOrDefault(q.Ppid))
            {
                if (memo.TryGetValue(q.Pid, out result)) break;
                if (q.Nspid == 1) { result = true; memo[q.Pid] = true; break; }
                chain.Add(q);
                if (q.Ppid == q.Pid) break;
                // A parent the scan left out (its executable cannot be read, as a sandbox's pid 1): its NSpid decides.
                if (!byPid.ContainsKey(q.Ppid) && q.Ppid > 0)
                {
                    result = NsPidOf(Path.Combine(procRoot, q.Ppid.ToString(System.Globalization.CultureInfo.InvariantCulture))) == 1;
                    break;
                }
            }
            foreach (var c in chain) memo[c.Pid] = result;
            return result;
        }
        foreach (var p in all)
            if (InTree(p))
                p.Flags |= Wire.ExecFlags.InInitTree;
        return all;
    }

    /// <summary>One /proc/PID directory. Returns null for kernel threads (no executable).</summary>
    public static ProcessInfo? Read(string dir, int pid, string nodeName, long clockTickNs)
    {
        var stat = ParseStat(File.ReadAllText(Path.Combine(dir, "stat")));
        var exe = ReadLink(Path.Combine(dir, "exe"));
        if (exe is null)
            return null;
        var status = File.ReadAllLines(Path.Combine(dir, "status"));
        var cmdline = File.ReadAllBytes(Path.Combine(dir, "cmdline"));
        ulong start = stat.StartTicks * (ulong)clockTickNs;
        uint[] uids = Ids(status, "Uid:"), gids = Ids(status, "Gid:");
        return new ProcessInfo
        {
            ExecId = ExecId.Make(nodeName, start, pid),
            Pid = pid,
            Tid = pid,
            StartTime = start,
            Ktime = start,
            Binary = exe.EndsWith(" (deleted)") ? exe[..^10] : exe,
            Args = EventDecoder.SplitArgs(cmdline.AsSpan().TrimEnd((byte)0)),
            Cwd = ReadLink(Path.Combine(dir, "cwd")) ?? "",
            Creds = new Credentials(uids[0], uids[1], gids[0], gids[1]) { Suid = uids[2], Fsuid = uids[3], Sgid = gids[2], Fsgid = gids[3] },
            Auid = uint.TryParse(TryRead(Path.Combine(dir, "loginuid")), out var auid) ? auid : uint.MaxValue,
            Caps = new Capabilities(Hex(status, "CapPrm:"), Hex(status, "CapEff:"), Hex(status, "CapInh:")),
            Namespaces = ReadNamespaces(dir),
            Nspid = NsPid(status),
            Ppid = stat.Ppid,
            Origin = ProcessOrigin.ProcFs,
            Container = Containers.CgroupNames.Parse(CgroupV2Path(dir) ?? ""),
        };
    }

    /// <summary>The namespace inode numbers of /proc/PID/ns ("uts:[4026531838]"); 0 for those missing or unreadable.</summary>
    public static NamespaceInums ReadNamespaces(string dir)
    {
        var ns = new NamespaceInums();
        for (int i = 0; i < NamespaceInums.Names.Length; i++)
            if (ReadLink(Path.Combine(dir, "ns", NamespaceInums.Names[i])) is { } link
                && link.IndexOf('[') is int open and >= 0 && link.EndsWith(']')
                && uint.TryParse(link.AsSpan(open + 1, link.Length - open - 2), out uint inum))
                ns[i] = inum;
        return ns;
    }

    /// <summary>The host's namespaces, that events mark is_host: pid 1's; where pid 1's cannot be read (a sandbox that
    /// hides pid 1 from the agent), the agent's own, which runs in the host's namespaces.</summary>
    public static NamespaceInums ReadHostNamespaces(string procRoot = "/proc")
    {
        var host = ReadNamespaces(Path.Combine(procRoot, "1"));
        var self = ReadNamespaces(Path.Combine(procRoot, "self"));
        for (int i = 0; i < (int)Wire.Namespace.Count; i++)
            if (host[i] == 0) host[i] = self[i];
        return host;
    }

    /// <summary>The "0::/path" line of /proc/PID/cgroup: the process's cgroup v2 path.</summary>
    private static string? CgroupV2Path(string dir) =>
        TryRead(Path.Combine(dir, "cgroup"))?.Split('\n').FirstOrDefault(l => l.StartsWith("0::"))?[3..];

    public readonly record struct Stat(int Ppid, ulong StartTicks);

    /// <summary>/proc/PID/stat: the comm field may contain spaces and parentheses, so fields are counted after the last ')'.</summary>
    public static Stat ParseStat(string stat)
    {
        var rest = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // rest[0] is field 3 (state): ppid is field 4, starttime field 22.
        return new Stat(int.Parse(rest[1]), ulong.Parse(rest[19]));
    }

    private static uint[] Ids(string[] status, string key)
    {
        var line = status.FirstOrDefault(l => l.StartsWith(key, StringComparison.Ordinal));
        var ids = line?[key.Length..].Split('\t', ' ', StringSplitOptions.RemoveEmptyEntries).Select(uint.Parse).ToArray();
        return ids is { Length: >= 4 } ? ids : [0, 0, 0, 0]; // real, effective, saved, filesystem
    }

    private static uint NsPidOf(string dir)
    {
        try { return NsPid(File.ReadAllLines(Path.Combine(dir, "status"))); }
        catch (IOException) { return 0; }
        catch (UnauthorizedAccessException) { return 0; }
    }

    /// <summary>The pid in the process's own pid namespace: the last of "NSpid:"; 0 when the line is missing.</summary>
    private static uint NsPid(string[] status)
    {
        var line = status.FirstOrDefault(l => l.StartsWith("NSpid:", StringComparison.Ordinal));
        var last = line?[6..].Split('\t', ' ', StringSplitOptions.RemoveEmptyEntries).LastOrDefault();
        return uint.TryParse(last, out uint v) ? v : 0;
    }

    private static ulong Hex(string[] status, string key)
    {
        var line = status.FirstOrDefault(l => l.StartsWith(key, StringComparison.Ordinal));
        return line is null ? 0 : Convert.ToUInt64(line[key.Length..].Trim(), 16);
    }

    private static string? ReadLink(string path)
    {
        try { return new FileInfo(path).LinkTarget; }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    private static string? TryRead(string path)
    {
        try { return File.ReadAllText(path).Trim(); }
        catch (IOException) { return null; }
    }
}
