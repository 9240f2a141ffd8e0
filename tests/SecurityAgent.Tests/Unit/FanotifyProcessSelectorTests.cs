using System.Text;
using SecurityAgent.Fanotify;

namespace SecurityAgent.Tests.Unit;

/// <summary>The process part of a fanotify rule, over a fake process view; and the /proc parsing behind the real one.</summary>
public class FanotifyProcessSelectorTests
{
    private sealed class FakeView : IProcessView
    {
        public int Pid { get; init; } = 100;
        public string Exe { get; init; } = "/usr/bin/cat";
        public ReadOnlySpan<byte> Binary => Encoding.UTF8.GetBytes(Exe);
        public ProcessStatus? Status { get; init; } = new(50, 7, 1000, 1000, 1000, 1000, 0, 0, 0);
        public Dictionary<string, ulong> Ns { get; init; } = new() { ["mnt"] = 4026531841 };
        public ulong? Namespace(string name) => Ns.TryGetValue(name, out var v) ? v : null;
        public ulong? CgroupId { get; init; } = 9000;
        public Dictionary<int, int> Parents { get; init; } = new() { [50] = 20, [20] = 1 };
        public int ParentOf(int pid) => Parents.GetValueOrDefault(pid);
    }

    [Theory]
    [InlineData(StringOp.Equal, "/usr/bin/cat", true)]
    [InlineData(StringOp.Equal, "/usr/bin/ca", false)]
    [InlineData(StringOp.Prefix, "/usr/", true)]
    [InlineData(StringOp.NotPostfix, "/cat", false)]
    public void The_binary_is_compared_like_a_path(StringOp op, string value, bool expected) =>
        Assert.Equal(expected, new ProcessSelector(Binary: new PathFilter(op, [value])).Matches(new FakeView()));

    [Fact]
    public void An_unknown_binary_matches_no_positive_binary_filter()
    {
        var view = new FakeView { Exe = "" };
        Assert.False(new ProcessSelector(Binary: new PathFilter(StringOp.Prefix, ["/"])).Matches(view));
        Assert.True(new ProcessSelector(Binary: new PathFilter(StringOp.NotEqual, ["/usr/bin/cat"])).Matches(view));
    }

    [Fact]
    public void Pids_match_the_process_its_namespace_pid_or_with_follow_forks_an_ancestor()
    {
        var view = new FakeView();
        Assert.True(new ProcessSelector(Pids: new PidFilter(true, [100])).Matches(view));
        Assert.False(new ProcessSelector(Pids: new PidFilter(true, [20])).Matches(view));
        Assert.True(new ProcessSelector(Pids: new PidFilter(true, [20], FollowForks: true)).Matches(view));
        Assert.True(new ProcessSelector(Pids: new PidFilter(true, [7], NamespacePids: true)).Matches(view));
        Assert.False(new ProcessSelector(Pids: new PidFilter(false, [20], FollowForks: true)).Matches(view));
        Assert.True(new ProcessSelector(Pids: new PidFilter(false, [30], FollowForks: true)).Matches(view));
    }

    [Fact]
    public void Capabilities_in_means_any_of_the_mask_and_not_in_means_none()
    {
        const ulong sysAdmin = 1UL << 21, netRaw = 1UL << 13;
        var view = new FakeView { Status = new(1, 1, 0, 0, 0, 0, CapInheritable: 0, CapPermitted: sysAdmin | netRaw, CapEffective: netRaw) };
        Assert.True(new ProcessSelector(Capabilities: new CapabilityFilter(true, CapabilitySet.Effective, sysAdmin | netRaw)).Matches(view));
        Assert.False(new ProcessSelector(Capabilities: new CapabilityFilter(true, CapabilitySet.Effective, sysAdmin)).Matches(view));
        Assert.True(new ProcessSelector(Capabilities: new CapabilityFilter(true, CapabilitySet.Permitted, sysAdmin)).Matches(view));
        Assert.True(new ProcessSelector(Capabilities: new CapabilityFilter(false, CapabilitySet.Inheritable, sysAdmin)).Matches(view));
        Assert.False(new ProcessSelector(Capabilities: new CapabilityFilter(false, CapabilitySet.Effective, netRaw)).Matches(new FakeView { Status = null }));
    }

    [Fact]
    public void Namespaces_and_the_pod_scope_must_all_hold()
    {
        var view = new FakeView();
        Assert.True(new ProcessSelector(Namespaces: [new NamespaceFilter("mnt", true, [4026531841])]).Matches(view));
        Assert.False(new ProcessSelector(Namespaces: [new NamespaceFilter("mnt", false, [4026531841])]).Matches(view));
        Assert.False(new ProcessSelector(Namespaces: [new NamespaceFilter("net", true, [1])]).Matches(view));
        Assert.True(new ProcessSelector(CgroupInScope: id => id == 9000).Matches(view));
        Assert.False(new ProcessSelector(CgroupInScope: id => id == 9000).Matches(new FakeView { CgroupId = null }));
        Assert.False(new ProcessSelector(Binary: new PathFilter(StringOp.Equal, ["/usr/bin/cat"]), CgroupInScope: _ => false).Matches(view));
    }

    [Fact]
    public void Proc_status_gives_parent_namespace_pid_ids_and_capability_sets()
    {
        var text = "Name:\tcat\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nNgid:\t0\nPid:\t4242\nPPid:\t4000\nTracerPid:\t0\n"
            + "Uid:\t1000\t1001\t1001\t1001\nGid:\t2000\t2001\t2001\t2001\nNSpid:\t4242\t12\n"
            + "CapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t0000000000002000\nKthread:\t0\n";
        var s = ProcProcessView.ParseStatus(Encoding.ASCII.GetBytes(text));
        Assert.Equal(new ProcessStatus(4000, 12, 1000, 1001, 2000, 2001, 0, 0x1ffffffffff, 0x2000), s);
    }

    [Fact]
    public void The_real_view_reads_the_test_process_from_proc()
    {
        var view = new ProcProcessView(null, Kernel.KernelMounts.Cgroup2Mount());
        view.Reset(Environment.ProcessId);
        Assert.Equal(new FileInfo("/proc/self/exe").LinkTarget, Encoding.UTF8.GetString(view.Binary));
        Assert.False(view.IsKernelThread);
        Assert.Equal(int.Parse(File.ReadAllText("/proc/self/stat").Split(' ')[3]), view.Status!.Value.Ppid);
        Assert.Equal(ulong.Parse(new FileInfo("/proc/self/ns/mnt").LinkTarget!.Split('[', ']')[1]), view.Namespace("mnt"));
        if (Kernel.KernelMounts.Cgroup2Mount() is { } cg)
        {
            var rel = File.ReadAllLines("/proc/self/cgroup").First(l => l.StartsWith("0::"))[3..];
            Assert.Equal(Interop.Libc.Inode(cg + rel), view.CgroupId);
        }
        view.Reset(2); // kthreadd
        Assert.True(view.IsKernelThread);
    }

    [Theory]
    [InlineData(@"/mnt/with\040space", "/mnt/with space")]
    [InlineData(@"/a\134b", @"/a\b")]
    [InlineData("/plain", "/plain")]
    public void Mount_points_are_unescaped_as_mountinfo_escapes_them(string field, string expected) =>
        Assert.Equal(expected, LocalFileSystem.Unescape(field));
}
