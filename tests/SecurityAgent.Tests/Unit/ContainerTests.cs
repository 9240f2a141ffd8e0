using SecurityAgent.Containers;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Unit;

public class ContainerTests
{
    private const string Id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    [Theory]
    [InlineData("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c3d4e_0000_1111_2222_333344445555.slice/cri-containerd-" + Id + ".scope", "containerd", "1b2c3d4e-0000-1111-2222-333344445555")]
    [InlineData("/kubepods.slice/kubepods-pod1b2c3d4e_0000_1111_2222_333344445555.slice/crio-" + Id + ".scope", "cri-o", "1b2c3d4e-0000-1111-2222-333344445555")]
    [InlineData("/system.slice/docker-" + Id + ".scope", "docker", null)]
    [InlineData("/kubepods/burstable/pod1b2c3d4e-0000-1111-2222-333344445555/" + Id, "unknown", "1b2c3d4e-0000-1111-2222-333344445555")]
    [InlineData("/kubepods/pod1b2c3d4e-0000-1111-2222-333344445555/" + Id, "unknown", "1b2c3d4e-0000-1111-2222-333344445555")]
    public void Container_and_pod_ids_are_read_from_kubelet_cgroup_paths_of_both_drivers(string path, string runtime, string? podUid)
    {
        var c = CgroupNames.Parse(path)!;
        Assert.Equal((Id, runtime, podUid), (c.ContainerId, c.Runtime, c.PodUid));
    }

    [Theory]
    [InlineData("/user.slice/user-0.slice/session-1.scope")]
    [InlineData("/")]
    [InlineData("/kubepods.slice/kubepods-burstable.slice")]
    public void Paths_of_non_container_cgroups_are_not_containers(string path) => Assert.Null(CgroupNames.Parse(path));

    [Fact]
    public void A_cgroup_id_maps_to_its_path_in_the_cgroup_v2_tree()
    {
        using var cgroups = new KubeletCgroups();
        var leaf = cgroups.Cgroupfs(Guid.NewGuid().ToString(), Id);
        var root = File.ReadLines("/proc/self/mountinfo").Select(l => l.Split(' ')).First(p => p[Array.IndexOf(p, "-") + 1] == "cgroup2")[4];
        var map = new CgroupMap(root);
        var id = ulong.Parse(Run.Wait("stat", ["-c", "%i", leaf]).Stdout.Trim());
        Assert.Equal("/" + Path.GetRelativePath(root, leaf), map.PathOf(id));
    }
}
