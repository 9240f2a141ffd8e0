namespace SecurityAgent.Tests.Support;

/// <summary>cgroup v2 directories shaped like a kubelet's, below a parent this test creates (and removes),
/// and processes started inside them.</summary>
public sealed class KubeletCgroups : IDisposable
{
    public string Root { get; }
    private readonly List<string> _leaves = [];

    public KubeletCgroups()
    {
        var cg2 = File.ReadLines("/proc/self/mountinfo").Select(l => l.Split(' ')).First(p => p[Array.IndexOf(p, "-") + 1] == "cgroup2")[4];
        Root = Directory.CreateDirectory(Path.Combine(cg2, "secagent-test-" + Guid.NewGuid().ToString("N")[..8])).FullName;
    }

    public static string NewContainerId() => Convert.ToHexString(Guid.NewGuid().ToByteArray()).ToLowerInvariant() + Convert.ToHexString(Guid.NewGuid().ToByteArray()).ToLowerInvariant();

    /// <summary>systemd driver: kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod&lt;uid_&gt;.slice/cri-containerd-&lt;id&gt;.scope</summary>
    public string Systemd(string podUid, string containerId, string runtime = "cri-containerd") =>
        Leaf("kubepods.slice", "kubepods-besteffort.slice", $"kubepods-besteffort-pod{podUid.Replace('-', '_')}.slice", $"{runtime}-{containerId}.scope");

    /// <summary>cgroupfs driver: kubepods/besteffort/pod&lt;uid&gt;/&lt;id&gt;</summary>
    public string Cgroupfs(string podUid, string containerId) => Leaf("kubepods", "besteffort", $"pod{podUid}", containerId);

    private string Leaf(params string[] parts)
    {
        var dir = Directory.CreateDirectory(Path.Combine([Root, .. parts])).FullName;
        _leaves.Add(dir);
        return dir;
    }

    /// <summary>Runs a program as the first process of a container: it joins the cgroup, then execs.</summary>
    public static (int Code, string Stdout, string Stderr) RunIn(string cgroup, string program, params string[] args) =>
        Run.Wait("/bin/sh", ["-c", "echo $$ > \"$0/cgroup.procs\" && exec \"$@\"", cgroup, program, .. args]);

    public void Dispose()
    {
        // Leaves first, then their parents, up to the test's own root (processes have exited by now).
        foreach (var dir in Directory.GetDirectories(Root, "*", SearchOption.AllDirectories).OrderByDescending(d => d.Length).Append(Root))
            for (int i = 0; i < 20; i++)
            {
                try { Directory.Delete(dir); break; }
                catch (IOException) { Thread.Sleep(50); } // a process still leaving
            }
    }
}
