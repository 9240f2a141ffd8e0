using System.Text.Json;
using SecurityAgent.Kernel;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>32-bit (ia32) syscalls in syscalls lists: a 64-bit program built in the test's temp dir makes the i386
/// syscall dup (number 41, which is socket in the 64-bit table) through int 0x80; the policies match only it.</summary>
[Collection("kernel")]
public class Ia32SyscallTests
{
    private const string Source = """
        #include <stdio.h>
        int main(void)
        {
            long fd;
            __asm__ __volatile__("int $0x80" : "=a"(fd) : "a"(41L), "b"(0L) : "memory");
            printf("dup32 %s\n", fd >= 0 ? "ok" : "failed");
            return 0;
        }
        """;

    /// <summary>A raw_syscalls/sys_enter policy on the syscalls list <paramref name="values"/> for <paramref name="binary"/>.</summary>
    internal static string Policy(string name, string binary, string values) => $"""
        apiVersion: cilium.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: {name}
        spec:
          lists:
          - name: calls
            type: syscalls
            values: [{values}]
          tracepoints:
          - subsystem: raw_syscalls
            event: sys_enter
            args:
            - index: 4
              type: syscall64
            selectors:
            - matchArgs:
              - index: 0
                operator: InMap
                values: ["list:calls"]
              matchBinaries:
              - operator: In
                values: ["{binary}"]
        """;

    [RequiresKernel(Mechanism.Tracepoint, Int80 = true)]
    public void A_list_with_ia32_sys_dup_matches_the_32_bit_dup_and_a_list_with_the_64_bit_syscall_of_that_number_does_not()
    {
        using var dir = new TempDir();
        var bin = CProgram.Build(dir, "int80-dup", Source, "-O2");
        using var agent = new AgentProcess(new Dictionary<string, string>
        {
            ["a.yaml"] = Policy("ia32-dup", bin, "__ia32_sys_dup, sys_socket"),
            ["b.yaml"] = Policy("x64-socket", bin, "sys_socket"),
        });
        var r = Run.Wait(bin, []);
        Assert.Equal((0, "dup32 ok\n"), (r.Code, r.Stdout));
        agent.Events.WaitFor(e => e.TryGetProperty("process_exit", out var x) && x.GetProperty("process").GetProperty("binary").GetString() == bin, "exit of " + bin);
        Thread.Sleep(300);

        List<JsonElement> Of(string policy) => agent.Events.Where(e => e.TryGetProperty("process_tracepoint", out var t) && t.GetProperty("policy_name").GetString() == policy)
            .Select(e => e.GetProperty("process_tracepoint")).ToList();
        var ev = Assert.Single(Of("ia32-dup"));
        var id = ev.GetProperty("args")[0].GetProperty("syscall_id");
        Assert.Equal((41, "i386"), (id.GetProperty("id").GetInt32(), id.GetProperty("abi").GetString()));
        Assert.Empty(Of("x64-socket")); // 41 is socket only in the 64-bit table: the compat bit keeps them apart
    }
}
