using System.Text.Json;
using SecurityAgent.Kernel;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>BPF LSM and kprobe policies, end to end through the real agent, in a kernel that allows them
/// (the VM lane). On this project's machines they are skipped with the reason.</summary>
[Collection("kernel")]
public class VmLaneTests
{
    private static JsonElement PolicyEvent(AgentProcess agent, string type, string policy, Func<JsonElement, bool>? also = null) =>
        agent.Events.WaitFor(e => e.TryGetProperty(type, out var b) && b.GetProperty("policy_name").GetString() == policy && (also?.Invoke(b) ?? true),
            $"{type} of {policy}", TimeSpan.FromSeconds(90)).GetProperty(type);

    [RequiresKernel(Mechanism.Lsm, Mechanism.Kprobe, Mechanism.Fentry)]
    public void The_probe_reports_lsm_kprobe_and_fentry_as_available()
    {
        var (code, stdout, stderr) = Run.Wait("dotnet", [Repo.AgentDll, "probe", "--json"]);
        Assert.True(code == 0, stderr);
        var m = JsonDocument.Parse(stdout).RootElement.GetProperty("mechanisms");
        foreach (var name in new[] { "lsm", "kprobe", "fentry" })
            Assert.True(m.GetProperty(name).GetProperty("available").GetBoolean(), name + ": " + m.GetProperty(name));
        Assert.True(JsonDocument.Parse(stdout).RootElement.GetProperty("bpf_lsm").GetBoolean());
    }

    [RequiresKernel(Mechanism.Lsm)]
    public void An_lsm_file_open_override_makes_the_open_fail_with_eperm_and_the_process_carries_on()
    {
        using var dir = new TempDir();
        var cat = dir.CopyBinary("/usr/bin/cat", "lsm-cat");
        File.WriteAllText(dir.File("denied.txt"), "DENIED\n");
        File.SetUnixFileMode(dir.File("denied.txt"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        File.WriteAllText(dir.File("allowed.txt"), "ALLOWED\n");
        var policy = $"""
            apiVersion: cilium.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: lsm-file-open
            spec:
              lsmhooks:
              - hook: file_open
                args:
                - index: 0
                  type: file
                selectors:
                - matchBinaries:
                  - operator: In
                    values: ["{cat}"]
                  matchArgs:
                  - index: 0
                    operator: Equal
                    values: ["{dir.File("denied.txt")}"]
                  matchActions:
                  - action: Override
                    argError: -1
            """;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy }, "--export-extensions");

        // One cat, both files: the denied open fails, the process continues to the next file.
        var r = Run.Wait(cat, [dir.File("denied.txt"), dir.File("allowed.txt")]);
        Assert.Equal(1, r.Code);
        Assert.Contains("Operation not permitted", r.Stderr);
        Assert.Equal("ALLOWED\n", r.Stdout);
        Assert.Equal("DENIED\n", Run.Wait("/usr/bin/cat", [dir.File("denied.txt")]).Stdout); // other binaries still open it

        var ev = PolicyEvent(agent, "process_lsm", "lsm-file-open");
        Assert.Equal("file_open", ev.GetProperty("function_name").GetString());
        Assert.Equal(dir.File("denied.txt"), ev.GetProperty("args")[0].GetProperty("file_arg").GetProperty("path").GetString());
        Assert.Equal("-rw-r-----", ev.GetProperty("args")[0].GetProperty("file_arg").GetProperty("permission").GetString()); // the file's 0640
        Assert.Equal("KPROBE_ACTION_OVERRIDE", ev.GetProperty("action").GetString());
        Assert.True(ev.GetProperty("securityagent").GetProperty("enforced").GetBoolean());
        Unit.JsonFormatTests.AssertValid(agent.Events.RawLines.First(l => l.Contains("lsm-file-open")));
    }

    private static string FileOpenDeny(string name, string binary, string path) => $"""
        apiVersion: cilium.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: {name}
        spec:
          lsmhooks:
          - hook: file_open
            args:
            - index: 0
              type: file
            selectors:
            - matchBinaries:
              - operator: In
                values: ["{binary}"]
              matchArgs:
              - index: 0
                operator: Equal
                values: ["{path}"]
              matchActions:
              - action: Override
                argError: -13
        """;

    [RequiresKernel(Mechanism.Lsm)]
    public void Two_lsm_policies_on_file_open_share_one_program_and_each_denies_only_its_own_binary_and_file()
    {
        using var dir = new TempDir();
        var (catA, catB) = (dir.CopyBinary("/usr/bin/cat", "cat-a"), dir.CopyBinary("/usr/bin/cat", "cat-b"));
        var (a, b) = (dir.File("a.txt"), dir.File("b.txt"));
        File.WriteAllText(a, "A\n");
        File.WriteAllText(b, "B\n");
        using var agent = new AgentProcess(new Dictionary<string, string> { ["a.yaml"] = FileOpenDeny("lsm-a", catA, a), ["b.yaml"] = FileOpenDeny("lsm-b", catB, b) }, "--export-extensions");

        Assert.Contains("Permission denied", Run.Wait(catA, [a]).Stderr);
        Assert.Contains("Permission denied", Run.Wait(catB, [b]).Stderr);
        Assert.Equal("B\n", Run.Wait(catA, [b]).Stdout);
        Assert.Equal("A\n", Run.Wait(catB, [a]).Stdout);

        Assert.True(PolicyEvent(agent, "process_lsm", "lsm-a").GetProperty("securityagent").GetProperty("enforced").GetBoolean());
        Assert.True(PolicyEvent(agent, "process_lsm", "lsm-b").GetProperty("securityagent").GetProperty("enforced").GetBoolean());
    }

    [RequiresKernel(Mechanism.Lsm)]
    public void An_lsm_bprm_check_security_override_makes_exec_of_the_chosen_binary_fail_with_eperm()
    {
        using var dir = new TempDir();
        var banned = dir.CopyBinary("/usr/bin/true", "banned-tool");
        var fine = dir.CopyBinary("/usr/bin/true", "fine-tool");
        var policy = $"""
            apiVersion: cilium.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: lsm-exec
            spec:
              lsmhooks:
              - hook: bprm_check_security
                args:
                - index: 0
                  type: linux_binprm
                selectors:
                - matchArgs:
                  - index: 0
                    operator: Equal
                    values: ["{banned}"]
                  matchActions:
                  - action: Override
                    argError: -1
            """;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy }, "--export-extensions");

        var r = Run.Wait("/bin/sh", ["-c", $"{banned}; echo banned=$?; {fine}; echo fine=$?"]);
        Assert.Contains("Operation not permitted", r.Stderr);
        Assert.Contains("banned=126", r.Stdout);
        Assert.Contains("fine=0", r.Stdout);

        var ev = PolicyEvent(agent, "process_lsm", "lsm-exec");
        Assert.Equal(banned, ev.GetProperty("args")[0].GetProperty("linux_binprm_arg").GetProperty("path").GetString());
        Assert.True(ev.GetProperty("securityagent").GetProperty("enforced").GetBoolean());
    }

    [RequiresKernel(Mechanism.Kprobe)]
    public void A_kprobe_on_fd_install_reports_the_installed_files_with_their_paths()
    {
        using var dir = new TempDir();
        var cat = dir.CopyBinary("/usr/bin/cat", "kprobe-cat");
        File.WriteAllText(dir.File("watched.txt"), "x\n");
        File.SetUnixFileMode(dir.File("watched.txt"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead | UnixFileMode.SetGroup);
        var policy = $"""
            apiVersion: cilium.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: kprobe-fd-install
            spec:
              kprobes:
              - call: fd_install
                syscall: false
                args:
                - index: 0
                  type: int
                - index: 1
                  type: file
                selectors:
                - matchBinaries:
                  - operator: In
                    values: ["{cat}"]
                  matchArgs:
                  - index: 1
                    operator: Prefix
                    values: ["{dir.Path}/"]
            """;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy });

        Assert.Equal("x\n", Run.Wait(cat, [dir.File("watched.txt")]).Stdout);

        var ev = PolicyEvent(agent, "process_kprobe", "kprobe-fd-install");
        Assert.Equal("fd_install", ev.GetProperty("function_name").GetString());
        Assert.Equal(dir.File("watched.txt"), ev.GetProperty("args")[1].GetProperty("file_arg").GetProperty("path").GetString());
        Assert.Equal("-rw---Sr--", ev.GetProperty("args")[1].GetProperty("file_arg").GetProperty("permission").GetString()); // 02604
        Assert.True(ev.GetProperty("args")[0].GetProperty("int_arg").GetInt32() >= 0);
        Assert.Equal(cat, ev.GetProperty("process").GetProperty("binary").GetString());
        if (TetragonProtos.SkipReason is null) // a real kprobe's event, as a Tetragon consumer parses it
            TetragonProtos.AssertTetragonLine(agent.Events.RawLines.First(l => l.Contains("kprobe-fd-install")));
    }
}
