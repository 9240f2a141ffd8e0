using SecurityAgent.Processes;

namespace SecurityAgent.Tests.Unit;

public class ProcFsScannerTests
{
    [Fact]
    public void Stat_fields_are_counted_after_a_comm_with_spaces_and_parentheses()
    {
        var stat = "1234 (my (odd) name) S 77 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 10000 100 18446744073709551615";
        var s = ProcFsScanner.ParseStat(stat);
        Assert.Equal(77, s.Ppid);
        Assert.Equal(98765UL, s.StartTicks);
    }

    [Fact]
    public void The_test_process_itself_is_read_from_proc_with_its_binary_and_start_time()
    {
        int pid = Environment.ProcessId;
        var p = ProcFsScanner.Read($"/proc/{pid}", pid, "node", 10_000_000)!;
        Assert.Equal(File.ReadAllText("/proc/self/stat").Split(' ')[3], p.Ppid.ToString());
        Assert.Equal(new FileInfo("/proc/self/exe").LinkTarget, p.Binary);
        Assert.Equal(Environment.CurrentDirectory, p.Cwd);
        Assert.True(p.StartTime > 0);
        Assert.Equal(ProcessOrigin.ProcFs, p.Origin);
    }
}
