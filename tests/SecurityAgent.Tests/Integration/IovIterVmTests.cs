using System.Text;
using System.Text.Json;
using SecurityAgent.Kernel;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>Tetragon's tty.yaml on a kernel with kprobes (the VM lane): tty_write with a kiocb and an iov_iter argument
/// (maxData), the bytes a program writes to a pseudo-terminal it opened; scoped to that program.</summary>
[Collection("kernel")]
public class IovIterVmTests
{
    /// <summary>Opens a pty pair and writes a short line and a 600-byte one to the terminal side.</summary>
    private const string Source = """
        #define _GNU_SOURCE
        #include <fcntl.h>
        #include <stdlib.h>
        #include <string.h>
        #include <unistd.h>

        int main(void)
        {
            int master = posix_openpt(O_RDWR | O_NOCTTY);
            if (master < 0 || grantpt(master) || unlockpt(master)) return 1;
            int tty = open(ptsname(master), O_RDWR | O_NOCTTY);
            if (tty < 0) return 2;
            /* From memory the program wrote: a kprobe cannot fault in a page not yet touched (a string literal's). */
            char line[32];
            strcpy(line, "sa-iov-iter secret\n");
            if (write(tty, line, strlen(line)) < 0) return 3;
            char big[600];
            memset(big, 'x', sizeof(big));
            if (write(tty, big, sizeof(big)) < 0) return 4;
            return 0;
        }
        """;

    [RequiresKernel(Mechanism.Kprobe)]
    public void Tty_write_with_an_iov_iter_argument_and_maxData_reports_the_bytes_written_and_a_longer_buffer_whole()
    {
        using var dir = new TempDir();
        var bin = CProgram.Build(dir, "iov-tty", Source, "-O1");
        var policy = $"""
            apiVersion: cilium.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: iov-tty
            spec:
              kprobes:
              - call: tty_write
                syscall: false
                args:
                - index: 0
                  type: kiocb
                - index: 1
                  type: iov_iter
                  maxData: true
                selectors:
                - matchBinaries:
                  - operator: In
                    values: ["{bin}"]
            """;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy });
        Assert.Contains("Policy iov-tty loaded", agent.Stderr);

        var r = Run.Wait(bin, []);
        Assert.True(r.Code == 0, $"exit {r.Code} {r.Stderr}");
        JsonElement Write(Func<JsonElement, bool> which)
        {
            try
            {
                return agent.Events.WaitFor(e => e.TryGetProperty("process_kprobe", out var k) && k.GetProperty("policy_name").GetString() == "iov-tty"
                    && k.GetProperty("args").GetArrayLength() == 2 && which(k.GetProperty("args")[1]), "tty_write of iov-tty", TimeSpan.FromSeconds(30))
                    .GetProperty("process_kprobe");
            }
            catch (TimeoutException e)
            {
                throw new TimeoutException(e.Message + "\n" + string.Join("\n", agent.Events.RawLines) + "\n" + agent.Stderr, e);
            }
        }
        var small = Write(a => a.TryGetProperty("bytes_arg", out _));
        Assert.Equal("sa-iov-iter secret\n", Encoding.UTF8.GetString(small.GetProperty("args")[1].GetProperty("bytes_arg").GetBytesFromBase64()));
        Assert.StartsWith("/dev/pts/", small.GetProperty("args")[0].GetProperty("file_arg").GetProperty("path").GetString());
        Assert.Equal(bin, small.GetProperty("process").GetProperty("binary").GetString());
        // maxData: the 600-byte write comes whole (data records joined to the event), not cut at 255 bytes.
        var big = Write(a => a.TryGetProperty("bytes_arg", out var b) && b.GetBytesFromBase64().Length > Events.Contract.StrMax);
        Assert.Equal(new string('x', 600), Encoding.ASCII.GetString(big.GetProperty("args")[1].GetProperty("bytes_arg").GetBytesFromBase64()));
    }
}
