using System.Text.Json;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

[Collection("kernel")]
public class AgentLifecycleTests
{
    private static int CountOurPrograms() =>
        JsonDocument.Parse(Run.Bpftool("prog", "list", "-j")).RootElement.EnumerateArray()
            .Count(p => p.TryGetProperty("name", out var n) && n.GetString() is "sa_exec" or "sa_fork" or "sa_exit");

    [Fact]
    public void After_sigterm_nothing_of_the_agent_remains_in_the_kernel()
    {
        int before = CountOurPrograms();
        var linksBefore = Run.Bpftool("link", "list");
        var pinsBefore = Directory.Exists("/sys/fs/bpf") ? Directory.GetFileSystemEntries("/sys/fs/bpf").Length : 0;
        int code;
        using (var agent = new AgentProcess())
        {
            Assert.Equal(before + 3, CountOurPrograms());
            code = agent.Terminate(TimeSpan.FromSeconds(10));
            Assert.Contains("all programs detached", agent.Stderr);
        }
        Assert.Equal(0, code);
        // The kernel frees programs after an RCU grace period once the last fd is closed.
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (CountOurPrograms() != before && DateTime.UtcNow < deadline)
            Thread.Sleep(100);
        Assert.Equal(before, CountOurPrograms());
        Assert.Equal(linksBefore.Split('\n').Length, Run.Bpftool("link", "list").Split('\n').Length);
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
