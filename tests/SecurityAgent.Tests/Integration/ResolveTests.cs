using System.Text.Json;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>resolve: on this kernel's typed hooks (raw tracepoints: the arguments are the tracepoint function's, typed
/// by its BTF prototype): the fields the kernel walks to are the ones the process the test started has.</summary>
[Collection("kernel")]
public sealed class ResolveTests
{
    private static List<JsonElement> Bodies(AgentProcess agent, string policy) =>
        agent.Events.Where(e => e.TryGetProperty("process_tracepoint", out var b) && b.GetProperty("policy_name").GetString() == policy)
            .Select(e => e.GetProperty("process_tracepoint")).ToList();

    [Fact]
    public void A_raw_tracepoint_reads_fields_resolved_through_pointers_of_the_exec_of_a_process_the_test_started()
    {
        using var dir = new TempDir();
        var bin = dir.CopyBinary("/usr/bin/true", "resolve-target");
        var policy = $"""
            apiVersion: cilium.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: resolve-exec
            spec:
              tracepoints:
              - subsystem: sched
                event: sched_process_exec
                raw: true
                args:
                - index: 2
                  type: string
                  resolve: "filename"
                - index: 0
                  type: int
                  resolve: "real_parent.tgid"
                - index: 2
                  type: path
                  resolve: "file.f_path"
                - index: 0
                  type: string
                  resolve: "comm"
                selectors:
                - matchArgs:
                  - args: [0]
                    operator: Equal
                    values: ["{bin}"]
            """;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["r.yaml"] = policy });
        Assert.Equal(0, Run.Wait(bin, []).Code);
        Assert.Equal(0, Run.Wait("/usr/bin/true", []).Code);
        agent.Events.WaitFor(e => e.TryGetProperty("process_exit", out var x) && x.GetProperty("process").GetProperty("binary").GetString() == bin, "exit of " + bin);
        Thread.Sleep(300);
        var ev = Assert.Single(Bodies(agent, "resolve-exec"));
        var args = ev.GetProperty("args");
        Assert.Equal(bin, args[0].GetProperty("string_arg").GetString());                  // linux_binprm->filename (a char *)
        Assert.Equal(Environment.ProcessId, args[1].GetProperty("int_arg").GetInt32());    // task->real_parent->tgid: the test process
        Assert.Equal(bin, args[2].GetProperty("path_arg").GetProperty("path").GetString()); // &linux_binprm->file->f_path
        Assert.Equal("resolve-target", args[3].GetProperty("string_arg").GetString());     // task->comm (an array: its address)
    }
}
