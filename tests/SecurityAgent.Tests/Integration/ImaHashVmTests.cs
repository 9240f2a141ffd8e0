using System.Security.Cryptography;
using SecurityAgent.Kernel;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>Tetragon's lsm_bprm_check.yaml shape (Override and Post imaHash on bprm_check_security) in a kernel with BPF
/// LSM and bpf_ima_file_hash (the VM lane), scoped to a binary the test copied.</summary>
[Collection("kernel")]
public class ImaHashVmTests
{
    [RequiresKernel(Mechanism.Lsm)]
    public void An_exec_denied_on_bprm_check_security_reports_the_sha256_of_the_binary_as_ima_hash()
    {
        using var dir = new TempDir();
        var banned = dir.CopyBinary("/usr/bin/true", "ima-banned");
        var fine = dir.CopyBinary("/usr/bin/true", "ima-fine");
        var policy = $"""
            apiVersion: cilium.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: lsm-ima
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
                  - action: Post
                    imaHash: true
            """;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy }, "--export-extensions");
        Assert.True(agent.Stderr.Contains("Policy lsm-ima loaded"), agent.Stderr);

        var r = Run.Wait("/bin/sh", ["-c", $"{banned}; echo banned=$?; {fine}; echo fine=$?"]);
        Assert.Contains("banned=126", r.Stdout);
        Assert.Contains("fine=0", r.Stdout);

        var ev = agent.Events.WaitFor(e => e.TryGetProperty("process_lsm", out var b) && b.GetProperty("policy_name").GetString() == "lsm-ima",
            "process_lsm of lsm-ima", TimeSpan.FromSeconds(90)).GetProperty("process_lsm");
        Assert.Equal(banned, ev.GetProperty("args")[0].GetProperty("linux_binprm_arg").GetProperty("path").GetString());
        Assert.Equal("sha256:" + Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(banned))), ev.GetProperty("ima_hash").GetString());
        Assert.True(ev.GetProperty("securityagent").GetProperty("enforced").GetBoolean());
    }
}
