using System.Text.Json;
using SecurityAgent.Kernel;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>resolve: and CapabilitiesGained on kprobes and BPF LSM hooks (the VM lane), followed in that kernel's BTF
/// by the agent that loads the policy there.</summary>
[Collection("kernel")]
public sealed class ResolveVmTests
{
    private static List<JsonElement> Bodies(AgentProcess agent, string type, string policy) =>
        agent.Events.Where(e => e.TryGetProperty(type, out var b) && b.GetProperty("policy_name").GetString() == policy)
            .Select(e => e.GetProperty(type)).ToList();

    /// <summary>Drops its effective capabilities (capset: nothing gained), then raises them again (gained).</summary>
    private const string CapsetSource = """
        #include <linux/capability.h>
        #include <sys/syscall.h>
        #include <unistd.h>

        int main(void)
        {
            struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
            struct __user_cap_data_struct d[2];
            if (syscall(SYS_capget, &h, d)) return 1;
            unsigned e0 = d[0].effective, e1 = d[1].effective;
            d[0].effective = d[1].effective = 0;
            if (syscall(SYS_capset, &h, d)) return 2;
            d[0].effective = e0;
            d[1].effective = e1;
            return syscall(SYS_capset, &h, d) ? 3 : 0;
        }
        """;

    [RequiresKernel(Mechanism.Kprobe)]
    public void CapabilitiesGained_on_security_capset_posts_only_the_call_that_raises_effective_capabilities()
    {
        using var dir = new TempDir();
        var bin = CProgram.Build(dir, "caps-gained", CapsetSource, "-O1");
        // security_capset(struct cred *new, const struct cred *old, const kernel_cap_t *effective, ...): Tetragon's own test.
        var policy = $"""
            apiVersion: cilium.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: caps-gained
            spec:
              kprobes:
              - call: security_capset
                syscall: false
                args:
                - index: 1
                  type: cap_effective
                  resolve: cap_effective
                - index: 2
                  type: cap_effective
                selectors:
                - matchBinaries:
                  - operator: In
                    values: ["{bin}"]
                  matchArgs:
                  - args: [0, 1]
                    operator: CapabilitiesGained
            """;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy });
        var r = Run.Wait(bin, []);
        Assert.True(r.Code == 0, $"exit {r.Code} {r.Stderr}");
        agent.Events.WaitFor(e => e.TryGetProperty("process_exit", out var x) && x.GetProperty("process").GetProperty("binary").GetString() == bin, "exit of " + bin, TimeSpan.FromSeconds(90));
        Thread.Sleep(500);
        var ev = Assert.Single(Bodies(agent, "process_kprobe", "caps-gained"));
        Assert.Equal("security_capset", ev.GetProperty("function_name").GetString());
        var args = ev.GetProperty("args");
        Assert.Equal("0000000000000000", args[0].GetProperty("cap_effective_arg").GetString()); // the old cred's set, through resolve
        Assert.NotEqual("0000000000000000", args[1].GetProperty("cap_effective_arg").GetString());
    }

    [RequiresKernel(Mechanism.Lsm)]
    public void An_lsm_bprm_check_security_hook_reads_fields_resolved_from_the_linux_binprm()
    {
        using var dir = new TempDir();
        var bin = dir.CopyBinary("/usr/bin/true", "resolve-lsm");
        var policy = $"""
            apiVersion: cilium.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: resolve-lsm
            spec:
              lsmhooks:
              - hook: bprm_check_security
                args:
                - index: 0
                  type: path
                  resolve: file.f_path
                - index: 0
                  type: int
                  resolve: mm.owner.real_parent.tgid
                - index: 0
                  type: string
                  resolve: filename
                selectors:
                - matchArgs:
                  - args: [2]
                    operator: Equal
                    values: ["{bin}"]
                  matchActions:
                  - action: Post
            """;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy });
        Assert.Equal(0, Run.Wait(bin, []).Code);
        agent.Events.WaitFor(e => e.TryGetProperty("process_exit", out var x) && x.GetProperty("process").GetProperty("binary").GetString() == bin, "exit of " + bin, TimeSpan.FromSeconds(90));
        Thread.Sleep(500);
        var args = Assert.Single(Bodies(agent, "process_lsm", "resolve-lsm")).GetProperty("args");
        Assert.Equal(bin, args[0].GetProperty("path_arg").GetProperty("path").GetString());
        Assert.Equal(Environment.ProcessId, args[1].GetProperty("int_arg").GetInt32());
        Assert.Equal(bin, args[2].GetProperty("string_arg").GetString());
    }
}
