using System.Text.Json;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>spec.loader on this kernel (sys_exit_mmap, and sched_process_exec for what exec maps): a program the test builds
/// dlopen()s a library it built into the test's temp dir, with a build id the linker wrote; the event names that library
/// and its build id as readelf reads it; the program itself and its interpreter are reported too.</summary>
[Collection("kernel")]
public class LoaderSensorTests
{
    private const string Library = "int sa_loader_probe(int x) { return x * 7; }\n";

    private const string Tool = """
        #include <dlfcn.h>
        #include <stdio.h>
        #include <unistd.h>
        int main(int argc, char **argv)
        {
            void *h = dlopen(argv[1], RTLD_NOW);
            if (!h) { fprintf(stderr, "%s\n", dlerror()); return 2; }
            int (*f)(int) = (int (*)(int))dlsym(h, "sa_loader_probe");
            printf("%d %d\n", (int)getpid(), f ? f(6) : -1);
            return f ? 0 : 3;
        }
        """;

    private const string LoaderPolicy = "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: loader\nspec:\n  loader: true\n";

    private static (string Lib, string Tool, string BuildId) Build(TempDir dir)
    {
        File.WriteAllText(dir.File("libsaprobe.c"), Library);
        var lib = dir.File("libsaprobe.so");
        CProgram.Compile(dir.File("libsaprobe.c"), lib, "-shared", "-fPIC", "-Wl,--build-id=sha1");
        var tool = CProgram.Build(dir, "loader-tool", Tool, "-ldl");
        var notes = Run.Wait("readelf", ["-n", lib]).Stdout;
        var line = notes.Split('\n').Single(l => l.Contains("Build ID:"));
        return (lib, tool, line[(line.IndexOf("Build ID:") + 9)..].Trim());
    }

    private static bool IsLoaderOf(JsonElement e, string lib, string tool) =>
        e.TryGetProperty("process_loader", out var b) && b.GetProperty("path").GetString() == lib
        && b.GetProperty("process").GetProperty("binary").GetString() == tool;

    /// <summary>Runs the tool until its mapping of the library is reported (the policy attaches while the agent starts).</summary>
    private static JsonElement Reported(AgentProcess agent, Func<(int Code, string Stdout, string Stderr)> run, string lib, string tool)
    {
        for (int i = 0; i < 50; i++)
        {
            var r = run();
            Assert.True(r.Code == 0, $"tool failed: {r.Code} {r.Stderr}");
            var hit = agent.Events.All.FirstOrDefault(e => IsLoaderOf(e, lib, tool));
            if (hit.ValueKind != JsonValueKind.Undefined) return hit;
            Thread.Sleep(200);
        }
        throw new TimeoutException($"no process_loader event for {lib}\n{agent.Stderr}");
    }

    [Fact]
    public void A_dlopened_library_is_reported_once_per_process_with_its_path_and_the_build_id_readelf_shows()
    {
        using var dir = new TempDir();
        var (lib, tool, buildId) = Build(dir);
        using var agent = new AgentProcess(new Dictionary<string, string> { ["loader.yaml"] = LoaderPolicy });
        var ev = Reported(agent, () => Run.Wait(tool, [lib]), lib, tool).GetProperty("process_loader");
        Assert.Equal(buildId, Convert.ToHexStringLower(ev.GetProperty("buildid").GetBytesFromBase64()));
        // Each run is a new process, told once although the library's segments take several mmap calls (a freed address
        // space's address is reused: the kernel's record of what it told must not outlive the process).
        var pids = Enumerable.Range(0, 4).Select(_ => int.Parse(Run.Wait(tool, [lib]).Stdout.Split(' ')[0])).ToList();
        bool Of(JsonElement e, int pid) => IsLoaderOf(e, lib, tool) && e.GetProperty("process_loader").GetProperty("process").GetProperty("pid").GetInt32() == pid;
        foreach (var pid in pids)
            agent.Events.WaitFor(e => Of(e, pid), $"process_loader of pid {pid}");
        Thread.Sleep(300);
        foreach (var pid in pids)
            Assert.Single(agent.Events.Where(e => Of(e, pid)));
        foreach (var line in agent.Events.RawLines.Where(l => l.Contains("\"process_loader\"") && l.Contains(lib)))
            Unit.JsonFormatTests.AssertValid(line);
    }

    [Fact]
    public void The_binary_and_its_interpreter_which_exec_maps_without_mmap_are_reported_once_per_process()
    {
        using var dir = new TempDir();
        var (lib, tool, _) = Build(dir);
        var headers = Run.Wait("readelf", ["-lW", tool]).Stdout;
        var request = headers.Split('\n').Single(l => l.Contains("Requesting program interpreter:"));
        var interp = Run.Wait("realpath", [request[(request.IndexOf(':') + 1)..].Trim().TrimEnd(']')]).Stdout.Trim();
        var notes = Run.Wait("readelf", ["-n", tool]).Stdout.Split('\n').Single(l => l.Contains("Build ID:"));
        var toolId = notes[(notes.IndexOf("Build ID:") + 9)..].Trim();
        using var agent = new AgentProcess(new Dictionary<string, string> { ["loader.yaml"] = LoaderPolicy });
        Reported(agent, () => Run.Wait(tool, [lib]), tool, tool);

        int pid = int.Parse(Run.Wait(tool, [lib]).Stdout.Split(' ')[0]);
        bool Of(JsonElement e, string path) => IsLoaderOf(e, path, tool) && e.GetProperty("process_loader").GetProperty("process").GetProperty("pid").GetInt32() == pid;
        var binary = agent.Events.WaitFor(e => Of(e, tool), $"process_loader of {tool} (pid {pid})").GetProperty("process_loader");
        Assert.Equal(toolId, Convert.ToHexStringLower(binary.GetProperty("buildid").GetBytesFromBase64()));
        agent.Events.WaitFor(e => Of(e, interp), $"process_loader of the interpreter {interp} (pid {pid})");
        agent.Events.WaitFor(e => Of(e, lib), $"process_loader of {lib} (pid {pid})");
        Thread.Sleep(300);
        Assert.Single(agent.Events.Where(e => Of(e, tool)));
        Assert.Single(agent.Events.Where(e => Of(e, interp)));
    }

    [Fact]
    public async Task A_pod_scoped_loader_policy_reports_the_selected_pods_mappings_and_not_another_pods()
    {
        await using var api = new FakeKubeApiServer();
        using var cgroups = new KubeletCgroups();
        using var dir = new TempDir();
        var (lib, tool, _) = Build(dir);
        var other = dir.CopyBinary(tool, "loader-other");
        string uidV = Guid.NewGuid().ToString(), uidO = Guid.NewGuid().ToString();
        string cidV = KubeletCgroups.NewContainerId(), cidO = KubeletCgroups.NewContainerId();
        var cgSelected = cgroups.Systemd(uidV, cidV);
        var cgOther = cgroups.Cgroupfs(uidO, cidO);
        api.ApplyPod(PodContextTests.Pod("prod", "watched-1a-b", uidV, "watched", "watched-1a", "app", cidV, "containerd"));
        api.ApplyPod(PodContextTests.Pod("prod", "other-2b-c", uidO, "other", "other-2b", "app", cidO, "containerd"));
        var policy = LoaderPolicy.Replace("spec:\n", "spec:\n  podSelector:\n    matchLabels:\n      app: watched\n");
        using var agent = new AgentProcess(new Dictionary<string, string> { ["loader.yaml"] = policy }, "--kubeconfig", api.WriteKubeconfig(dir.Path), "--node-name", "node-1");

        Assert.Equal(0, KubeletCgroups.RunIn(cgOther, other, lib).Code);
        Assert.Equal(0, Run.Wait(other, [lib]).Code);
        var ev = Reported(agent, () => KubeletCgroups.RunIn(cgSelected, tool, lib), lib, tool);
        Assert.Equal("watched-1a-b", ev.GetProperty("process_loader").GetProperty("process").GetProperty("pod").GetProperty("name").GetString());
        Assert.Equal(0, KubeletCgroups.RunIn(cgOther, other, lib).Code);
        Assert.Equal(0, KubeletCgroups.RunIn(cgSelected, tool, lib).Code);
        Thread.Sleep(500); // the reader drains on an 80 ms timer
        Assert.Empty(agent.Events.Where(e => IsLoaderOf(e, lib, other)));
        Assert.Empty(agent.Events.Where(e => e.TryGetProperty("process_loader", out var b) && b.GetProperty("process").TryGetProperty("pod", out var p)
            && p.GetProperty("name").GetString() != "watched-1a-b"));
    }
}
