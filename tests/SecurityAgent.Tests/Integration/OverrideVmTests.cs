using System.Text.Json;
using SecurityAgent.Kernel;
using SecurityAgent.Policies;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>Override on kprobes, end to end in a kernel that has them (the VM lane): on a security_ function through
/// fmod_ret, and on a syscall through bpf_override_return where the kernel has it (refused by name where not). Every
/// policy is scoped to a binary the test copied into its own directory.</summary>
[Collection("kernel")]
public class OverrideVmTests
{
    private static JsonElement KprobeEvent(AgentProcess agent, string policy) =>
        agent.Events.WaitFor(e => e.TryGetProperty("process_kprobe", out var k) && k.GetProperty("policy_name").GetString() == policy,
            $"process_kprobe of {policy}", TimeSpan.FromSeconds(90)).GetProperty("process_kprobe");

    [RequiresKernel(Mechanism.Fentry)]
    public void An_override_on_security_inode_mkdir_makes_mkdir_fail_with_the_errno_for_the_chosen_binary_only()
    {
        using var dir = new TempDir();
        var mkdir = dir.CopyBinary("/usr/bin/mkdir", "ovr-mkdir");
        var policy = $"""
            apiVersion: cilium.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: ovr-mkdir
            spec:
              kprobes:
              - call: security_inode_mkdir
                syscall: false
                args:
                - index: 1
                  type: dentry
                selectors:
                - matchBinaries:
                  - operator: In
                    values: ["{mkdir}"]
                  matchActions:
                  - action: Override
                    argError: -13
            """;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy }, "--export-extensions");

        var r = Run.Wait(mkdir, [dir.File("denied")]);
        Assert.Equal(1, r.Code);
        Assert.Contains("Permission denied", r.Stderr); // EACCES, the policy's argError
        Assert.False(Directory.Exists(dir.File("denied")));
        Assert.Equal(0, Run.Wait("/usr/bin/mkdir", [dir.File("other")]).Code); // another binary is not affected
        Assert.True(Directory.Exists(dir.File("other")));

        var ev = KprobeEvent(agent, "ovr-mkdir");
        Assert.Equal("security_inode_mkdir", ev.GetProperty("function_name").GetString());
        Assert.Equal(mkdir, ev.GetProperty("process").GetProperty("binary").GetString());
        Assert.Equal("KPROBE_ACTION_OVERRIDE", ev.GetProperty("action").GetString());
        Assert.True(ev.GetProperty("securityagent").GetProperty("enforced").GetBoolean());
        Unit.JsonFormatTests.AssertValid(agent.Events.RawLines.First(l => l.Contains("ovr-mkdir")));
    }

    [RequiresKernel(Mechanism.Fentry)]
    public void A_return_probe_on_an_overridden_security_function_reports_the_errno_the_caller_saw_and_the_real_result_of_a_call_it_let_run()
    {
        using var dir = new TempDir();
        var denied = dir.CopyBinary("/usr/bin/mkdir", "fexit-denied-mkdir");
        var watched = dir.CopyBinary("/usr/bin/mkdir", "fexit-watched-mkdir");
        var skipped = dir.CopyBinary("/usr/bin/mkdir", "fexit-skipped-mkdir");
        var policy = $"""
            apiVersion: cilium.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: fexit-mkdir
            spec:
              kprobes:
              - call: security_inode_mkdir
                syscall: false
                return: true
                args:
                - index: 1
                  type: dentry
                returnArg:
                  index: 0
                  type: int
                selectors:
                - matchBinaries:
                  - operator: In
                    values: ["{denied}"]
                  matchActions:
                  - action: Override
                    argError: -13
                - matchBinaries:
                  - operator: In
                    values: ["{watched}"]
                - matchBinaries:
                  - operator: In
                    values: ["{skipped}"]
                  matchActions:
                  - action: Override
                    argError: 1
            """;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy }, "--export-extensions");
        Assert.Contains("Policy fexit-mkdir loaded", agent.Stderr);

        var r = Run.Wait(denied, [dir.File("denied")]);
        Assert.Equal(1, r.Code);
        Assert.Contains("Permission denied", r.Stderr);
        Assert.False(Directory.Exists(dir.File("denied")));
        Assert.Equal(0, Run.Wait(watched, [dir.File("watched")]).Code);
        Run.Wait(skipped, [dir.File("skipped")]); // vfs_mkdir returns 1 before creating anything; mkdir's exit code is its own business
        Assert.False(Directory.Exists(dir.File("skipped")));
        Assert.Equal(0, Run.Wait("/usr/bin/mkdir", [dir.File("other")]).Code); // not in the policy: unaffected
        Assert.True(Directory.Exists(dir.File("watched")) && Directory.Exists(dir.File("other")));

        JsonElement Of(string binary) => agent.Events.WaitFor(e => e.TryGetProperty("process_kprobe", out var k)
                && k.GetProperty("policy_name").GetString() == "fexit-mkdir" && k.GetProperty("process").GetProperty("binary").GetString() == binary,
            $"the return event of {binary}", TimeSpan.FromSeconds(90)).GetProperty("process_kprobe");
        var ev = Of(denied);
        Assert.Equal("security_inode_mkdir", ev.GetProperty("function_name").GetString());
        Assert.Equal("KPROBE_ACTION_OVERRIDE", ev.GetProperty("action").GetString());
        Assert.Equal(-13, ev.GetProperty("return").GetProperty("int_arg").GetInt32()); // the override's errno, as mkdir saw it
        Assert.Equal("KPROBE_ACTION_POST", ev.GetProperty("return_action").GetString());
        var let = Of(watched);
        Assert.Equal(0, let.GetProperty("return").GetProperty("int_arg").GetInt32()); // the function ran and allowed it
        Assert.Equal("KPROBE_ACTION_POST", let.GetProperty("action").GetString());
        // A positive argError is returned as given on a kernel function, as Tetragon's overlayfs CVE policy relies on.
        Assert.Equal(1, Of(skipped).GetProperty("return").GetProperty("int_arg").GetInt32());
        Thread.Sleep(500);
        Assert.DoesNotContain(agent.Events.RawLines, l => l.Contains("fexit-mkdir") && l.Contains("\"/usr/bin/mkdir\""));
        Unit.JsonFormatTests.AssertValid(agent.Events.RawLines.First(l => l.Contains("fexit-mkdir") && l.Contains("fexit-denied-mkdir")));
    }

    [RequiresKernel(Mechanism.Kprobe)]
    public void A_syscall_override_denies_the_call_with_bpf_override_return_and_is_refused_naming_the_kernel_option_without_it()
    {
        using var dir = new TempDir();
        var ln = dir.CopyBinary("/usr/bin/ln", "ovr-ln");
        var policy = $"""
            apiVersion: cilium.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: ovr-symlink
            spec:
              kprobes:
              - call: sys_symlinkat
                syscall: true
                args:
                - index: 0
                  type: string
                - index: 2
                  type: string
                selectors:
                - matchBinaries:
                  - operator: In
                    values: ["{ln}"]
                  matchActions:
                  - action: Override
                    argError: -1
            """;
        var features = FeatureProbe.Run();
        if (!features.OverrideReturn.Available)
        {
            // Debian's 6.1 kernel (the VM lane) is built without CONFIG_FUNCTION_ERROR_INJECTION: no bpf_override_return.
            var v = Assert.Single(new PolicyValidator(features).ValidateText("p.yaml", policy));
            Assert.False(v.Ok);
            Assert.Contains(v.Diagnostics, d => d.Field == "spec.kprobes[0].selectors[0].matchActions[0].action"
                && d.Message.Contains("needs bpf_override_return to Override syscall symlinkat") && d.Message.Contains("CONFIG_BPF_KPROBE_OVERRIDE"));
            return;
        }
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy }, "--export-extensions");
        var r = Run.Wait(ln, ["-s", "/etc/hostname", dir.File("denied")]);
        Assert.Equal(1, r.Code);
        Assert.Contains("Operation not permitted", r.Stderr);
        Assert.False(File.Exists(dir.File("denied")));
        Assert.Equal(0, Run.Wait("/usr/bin/ln", ["-s", "/etc/hostname", dir.File("other")]).Code);
        var ev = KprobeEvent(agent, "ovr-symlink");
        Assert.Equal("/etc/hostname", ev.GetProperty("args")[0].GetProperty("string_arg").GetString());
        Assert.Equal("KPROBE_ACTION_OVERRIDE", ev.GetProperty("action").GetString());
    }
}
