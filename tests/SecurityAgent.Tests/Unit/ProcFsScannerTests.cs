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

    /// <summary>A /proc/PID directory as the scanner reads it.</summary>
    private static void FakeProcess(string root, int pid, int ppid, string nspid, bool exe = true)
    {
        var dir = Directory.CreateDirectory(Path.Combine(root, pid.ToString())).FullName;
        File.WriteAllText(Path.Combine(dir, "stat"), $"{pid} (p{pid}) S {ppid} {pid} {pid} 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0 0");
        File.WriteAllText(Path.Combine(dir, "status"), $"Name:\tp{pid}\nNSpid:\t{nspid}\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n");
        File.WriteAllText(Path.Combine(dir, "cmdline"), $"p{pid}\0");
        if (exe)
            File.CreateSymbolicLink(Path.Combine(dir, "exe"), "/usr/bin/true");
    }

    [Fact]
    public void In_init_tree_is_a_namespace_init_or_a_child_of_one_in_the_tree_through_a_parent_whose_executable_cannot_be_read()
    {
        using var root = new Support.TempDir();
        FakeProcess(root.Path, 1, 0, "1", exe: false);  // a sandbox's pid 1: left out of the scan, its NSpid still counts
        FakeProcess(root.Path, 10, 1, "10");
        FakeProcess(root.Path, 11, 10, "11");
        FakeProcess(root.Path, 20, 11, "20\t1");           // a new pid namespace's init
        FakeProcess(root.Path, 21, 20, "21\t2");
        FakeProcess(root.Path, 30, 0, "30");              // no init above it
        FakeProcess(root.Path, 31, 30, "31");
        FakeProcess(root.Path, 40, 99, "40");             // its parent is gone

        var found = ProcFsScanner.ScanTree("node", 10_000_000, root.Path).ToDictionary(p => p.Pid);

        Assert.Equal([10, 11, 20, 21, 30, 31, 40], found.Keys.Order());
        Assert.Equal([10, 11, 20, 21], found.Values.Where(p => p.InInitTree).Select(p => p.Pid).Order());
        Assert.Equal((1u, 2u, 30u), (found[20].Nspid, found[21].Nspid, found[30].Nspid));
    }
}
