using System.Diagnostics;
using System.Text.Json;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

[Collection("kernel")]
public class AgentLifecycleTests
{
    private static HashSet<int> ProgramIds(Func<JsonElement, bool>? filter = null) =>
        JsonDocument.Parse(Run.Bpftool("prog", "list", "-j")).RootElement.EnumerateArray()
            .Where(p => filter?.Invoke(p) ?? true).Select(p => p.GetProperty("id").GetInt32()).ToHashSet();

    private static HashSet<int> LinkedProgramIds() =>
        JsonDocument.Parse(Run.Bpftool("link", "list", "-j")).RootElement.EnumerateArray()
            .Where(l => l.TryGetProperty("prog_id", out _)).Select(l => l.GetProperty("prog_id").GetInt32()).ToHashSet();

    [Fact]
    public void After_sigterm_nothing_of_the_agent_remains_in_the_kernel()
    {
        var before = ProgramIds();
        var pinsBefore = Directory.Exists("/sys/fs/bpf") ? Directory.GetFileSystemEntries("/sys/fs/bpf").Length : 0;
        HashSet<int> ours;
        int code;
        using (var agent = new AgentProcess())
        {
            ours = ProgramIds(p => p.GetProperty("name").GetString() is "sa_exec" or "sa_fork" or "sa_exit");
            ours.ExceptWith(before);
            Assert.Equal(3, ours.Count);
            Assert.True(ours.IsSubsetOf(LinkedProgramIds()), "the agent's programs are attached through links");
            code = agent.Terminate(TimeSpan.FromSeconds(10));
            Assert.Contains("all programs detached", agent.Stderr);
        }
        Assert.Equal(0, code);
        // The kernel frees programs after an RCU grace period once the last fd is closed.
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (ProgramIds().Overlaps(ours) && DateTime.UtcNow < deadline)
            Thread.Sleep(100);
        Assert.False(ProgramIds().Overlaps(ours), "programs of the stopped agent are still loaded");
        Assert.False(LinkedProgramIds().Overlaps(ours), "links of the stopped agent remain");
        Assert.Equal(pinsBefore, Directory.Exists("/sys/fs/bpf") ? Directory.GetFileSystemEntries("/sys/fs/bpf").Length : 0);
    }

    [Fact]
    public void A_process_that_existed_before_the_agent_started_has_its_context_from_proc_when_it_later_forks_and_execs()
    {
        using var dir = new TempDir();
        var sh = dir.CopyBinary("/usr/bin/dash", "preexisting-sh");
        var marker = "pre-" + Guid.NewGuid().ToString("N")[..10];
        // Waits for one line on stdin, then forks and execs /bin/echo.
        using var old = Run.Start(sh, ["-c", "read x; /bin/echo child-$x", marker], cwd: dir.Path);
        Thread.Sleep(200);
        using var agent = new AgentProcess();

        old.StandardInput.WriteLine(marker);
        old.StandardInput.Flush();
        Assert.True(old.WaitForExit(10_000));

        var exec = agent.Events.WaitFor(e => ExportedEvents.IsExecOf(e, "child-" + marker), "exec of echo");
        var parent = exec.GetProperty("process_exec").GetProperty("parent");
        Assert.Equal(old.Id, parent.GetProperty("pid").GetInt32());
        Assert.Equal(sh, parent.GetProperty("binary").GetString());
        Assert.Contains(marker, parent.GetProperty("arguments").GetString());
        Assert.Equal(dir.Path, parent.GetProperty("cwd").GetString());
        Assert.Contains("procFS", parent.GetProperty("flags").GetString());
        Assert.Equal("/usr/bin/echo", exec.GetProperty("process_exec").GetProperty("process").GetProperty("binary").GetString());
    }

    [Fact]
    public void A_broken_policy_in_the_policy_dir_is_reported_with_file_line_column_and_the_agent_keeps_running()
    {
        const string broken = "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: broken\nspec:\n  tracepoints:\n  - subsystem: syscalls\n    evnt: sys_enter_openat\n";
        using var agent = new AgentProcess(new Dictionary<string, string> { ["broken.yaml"] = broken });
        var marker = "pol-" + Guid.NewGuid().ToString("N")[..10];
        Run.Wait("/bin/sh", ["-c", "true", marker]);
        agent.Events.WaitFor(e => ExportedEvents.IsExecOf(e, marker), "exec after a broken policy");
        Assert.Matches(@"Policy error: .*broken\.yaml:8:5: spec\.tracepoints\[0\]\.evnt: unknown field 'evnt' \(did you mean 'event'\?\)", agent.Stderr);
    }

    [Fact]
    public void A_full_disk_under_the_export_file_is_reported_and_counted_and_the_agent_keeps_running()
    {
        using var dir = new TempDir();
        var mnt = Directory.CreateDirectory(dir.File("tiny")).FullName;
        Assert.Equal(0, Run.Wait("mount", ["-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", mnt]).Code); // private, as the agent requires
        try
        {
            var stats = dir.File("stats.json");
            using (var agent = new AgentProcess("--export-file", Path.Combine(mnt, "events.json"), "--stats-file", stats))
            {
                var marker = "full-" + Guid.NewGuid().ToString("N")[..8];
                Run.Wait("/bin/sh", ["-c", $"i=0; while [ $i -lt 1500 ]; do /bin/true {marker}; i=$((i+1)); done"]);
                Assert.True(agent.WaitForLog("JSON export write failed", 15_000), agent.Stderr);
                Thread.Sleep(1000);
                var st = JsonDocument.Parse(File.ReadAllText(stats)).RootElement;
                Assert.True(st.GetProperty("export_failed").GetInt64() > 0);
                Assert.False(Process.GetProcessById(agent.Pid).HasExited, "the agent stopped on a full disk");
                Assert.Equal(0, agent.Terminate());
            }
        }
        finally
        {
            Run.Wait("umount", [mnt]);
        }
    }

    [Fact]
    public void The_probe_reports_what_this_kernel_allows()
    {
        var (code, stdout, stderr) = Run.Wait("dotnet", [Repo.AgentDll, "probe", "--json"]);
        Assert.True(code == 0, stderr);
        var f = JsonDocument.Parse(stdout).RootElement;
        bool Has(string m) => f.GetProperty("mechanisms").GetProperty(m).GetProperty("available").GetBoolean();
        // Facts of ../shared/KERNEL.md for these machines; the VM lane asserts the opposite for lsm/fentry/kprobe.
        var kernelHasLsm = Environment.GetEnvironmentVariable("SECAGENT_EXPECT_BPF_LSM") == "1";
        Assert.Equal(kernelHasLsm, Has("lsm"));
        Assert.Equal(kernelHasLsm, Has("fentry"));
        Assert.Equal(kernelHasLsm, Has("kprobe"));
        Assert.True(Has("tracepoint"));
        Assert.True(Has("tp_btf"));
        Assert.True(Has("raw_tp"));
        Assert.True(Has("cgroup_sock_addr"));
        Assert.True(f.GetProperty("helpers").GetProperty("send_signal").GetBoolean());
        Assert.True(f.GetProperty("maps").GetProperty("ringbuf").GetBoolean());
        Assert.True(f.GetProperty("btf").GetBoolean());
        Assert.NotNull(f.GetProperty("cgroup2").GetString());
    }
}
