using System.Text.RegularExpressions;

namespace SecurityAgent.Containers;

/// <summary>A container's identity as its cgroup path shows it (kubelet's layout).</summary>
public sealed record ContainerRef(string ContainerId, string? PodUid, string Runtime);

/// <summary>Reads container and pod ids from cgroup paths, for both kubelet cgroup drivers:
/// systemd (kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod&lt;uid_with_underscores&gt;.slice/
/// cri-containerd-&lt;id&gt;.scope, crio-&lt;id&gt;.scope, docker-&lt;id&gt;.scope) and cgroupfs
/// (kubepods/burstable/pod&lt;uid&gt;/&lt;id&gt;). Pure.</summary>
public static partial class CgroupNames
{
    [GeneratedRegex(@"(?:^|/)(?<rt>cri-containerd|crio|docker)-(?<id>[0-9a-f]{64})\.scope$")]
    private static partial Regex SystemdContainer();

    [GeneratedRegex(@"kubepods(?:-[a-z]+)?-pod(?<uid>[0-9a-f_]{36})\.slice")]
    private static partial Regex SystemdPod();

    [GeneratedRegex(@"(?:^|/)kubepods(?:/[a-z]+)?/pod(?<uid>[0-9a-f-]{36})/(?<id>[0-9a-f]{64})$")]
    private static partial Regex CgroupfsContainer();

    public static ContainerRef? Parse(string cgroupPath)
    {
        if (SystemdContainer().Match(cgroupPath) is { Success: true } c)
        {
            var pod = SystemdPod().Match(cgroupPath);
            var runtime = c.Groups["rt"].Value switch { "cri-containerd" => "containerd", "crio" => "cri-o", _ => "docker" };
            return new ContainerRef(c.Groups["id"].Value, pod.Success ? pod.Groups["uid"].Value.Replace('_', '-') : null, runtime);
        }
        if (CgroupfsContainer().Match(cgroupPath) is { Success: true } f)
            return new ContainerRef(f.Groups["id"].Value, f.Groups["uid"].Value, "unknown");
        return null;
    }

    /// <summary>"containerd://&lt;id&gt;", "cri-o://&lt;id&gt;", "docker://&lt;id&gt;" (a pod's containerStatuses) → id.</summary>
    public static string StripRuntime(string containerId) =>
        containerId.IndexOf("://", StringComparison.Ordinal) is var i and >= 0 ? containerId[(i + 3)..] : containerId;
}
