using System.Globalization;
using System.Text.RegularExpressions;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>A uprobe with refCtrOffsets (the semaphore of an SDT-style probe, as Tetragon's): the kernel raises the
/// semaphore in the program while the probe is attached, and the event carries Tetragon's ref_ctr_offset.</summary>
[Collection("kernel")]
public class UprobeSemaphoreTests
{
    /// <summary>Waits up to 3 s for its semaphore to be raised (a probe attached), prints it, then calls sa_gated(sem).</summary>
    private const string Source = """
        #include <stdio.h>
        #include <unistd.h>

        unsigned short sa_sem __attribute__((section(".probes"), used));

        __attribute__((noinline)) int sa_gated(int value)
        {
            __asm__ __volatile__("" ::: "memory");
            return value + 1;
        }

        int main(void)
        {
            for (int i = 0; i < 300 && !*(volatile unsigned short *)&sa_sem; i++)
                usleep(10000);
            printf("sem %d\n", sa_sem);
            fflush(stdout);
            return sa_gated(sa_sem) > 0 ? 0 : 1;
        }
        """;

    /// <summary>The file offset of a symbol: its address less its section's, plus the section's file offset (readelf).</summary>
    private static ulong FileOffset(string binary, string symbol, string section)
    {
        var symbols = Run.Wait("readelf", ["-sW", binary]).Stdout;
        var sym = Regex.Match(symbols, $@"^\s*\d+:\s+([0-9a-f]+)\s+\d+\s+OBJECT\s+\w+\s+\w+\s+\w+\s+{Regex.Escape(symbol)}$", RegexOptions.Multiline);
        var sections = Run.Wait("readelf", ["-SW", binary]).Stdout;
        var sec = Regex.Match(sections, $@"\s{Regex.Escape(section)}\s+\w+\s+([0-9a-f]+)\s+([0-9a-f]+)\s");
        Assert.True(sym.Success && sec.Success, $"{symbol} or {section} not found in {binary}:\n{symbols}\n{sections}");
        ulong Hex(Group g) => ulong.Parse(g.Value, NumberStyles.HexNumber);
        return Hex(sym.Groups[1]) - Hex(sec.Groups[1]) + Hex(sec.Groups[2]);
    }

    [Fact]
    public void A_uprobe_with_a_semaphore_offset_raises_the_semaphore_while_attached_and_reports_ref_ctr_offset()
    {
        using var dir = new TempDir();
        var bin = CProgram.Build(dir, "uprobe-sem", Source, "-O2");
        ulong sem = FileOffset(bin, "sa_sem", ".probes");
        var policy = $"""
            apiVersion: cilium.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: uprobe-sem
            spec:
              uprobes:
              - path: "{bin}"
                symbols: ["sa_gated"]
                refCtrOffsets: [{sem}]
                args:
                - index: 0
                  type: int
            """;

        var before = Run.Wait(bin, []);
        Assert.Equal("sem 0\n", before.Stdout); // nothing attached: the semaphore stays down
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = policy });
        Assert.Contains("Policy uprobe-sem loaded", agent.Stderr);

        var r = Run.Wait(bin, []);
        Assert.True(r.Code == 0, r.Stderr);
        Assert.Equal("sem 1\n", r.Stdout);
        var ev = agent.Events.WaitFor(e => e.TryGetProperty("process_uprobe", out var u) && u.GetProperty("policy_name").GetString() == "uprobe-sem", "the uprobe's event")
            .GetProperty("process_uprobe");
        Assert.Equal("sa_gated", ev.GetProperty("symbol").GetString());
        Assert.Equal(sem.ToString(CultureInfo.InvariantCulture), ev.GetProperty("ref_ctr_offset").GetString());
        Assert.Equal(1, ev.GetProperty("args")[0].GetProperty("int_arg").GetInt32());
        var line = agent.Events.RawLines.First(l => l.Contains("\"uprobe-sem\"") && l.Contains("process_uprobe"));
        Unit.JsonFormatTests.AssertValid(line);
        if (TetragonProtos.SkipReason is null)
            TetragonProtos.AssertTetragonLine(line);
    }
}
