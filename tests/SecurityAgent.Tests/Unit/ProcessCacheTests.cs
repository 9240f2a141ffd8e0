using SecurityAgent.Events;
using SecurityAgent.Processes;

namespace SecurityAgent.Tests.Unit;

/// <summary>A clock the test moves by hand.</summary>
internal sealed class ManualClock : TimeProvider
{
    private long _ticks;
    public override long TimestampFrequency => TimeSpan.TicksPerSecond;
    public override long GetTimestamp() => _ticks;
    public void Advance(TimeSpan t) => _ticks += t.Ticks;
}

public class ProcessCacheTests
{
    private static readonly Credentials Root = new(0, 0, 0, 0);
    private const ulong Sec = 1_000_000_000;

    private static ExecEvent Exec(int pid, int ppid, ulong start, ulong ktime, string binary, ulong parentStart = 0) =>
        EventDecoder.Decode(EventDecoderTests.ExecRecord(pid, binary, [binary, "arg"], "/", ppid: ppid, start: start, ktime: ktime, parentStart: parentStart)).Exec;

    private static ProcessInfo ProcFs(int pid, int ppid, ulong start, string binary) => new()
    {
        ExecId = ExecId.Make("n", start, pid), Pid = pid, StartTime = start, Ktime = start, Binary = binary,
        Args = [binary], Cwd = "/", Creds = Root, Ppid = ppid, Origin = ProcessOrigin.ProcFs,
    };

    [Fact]
    public void The_exec_id_is_base64_of_node_ktime_and_pid_like_tetragon()
    {
        var id = ExecId.Make("node-1", 123456789, 42);
        Assert.Equal("bm9kZS0xOjEyMzQ1Njc4OTo0Mg==", id);
        Assert.Equal(("node-1", 123456789UL, 42), ExecId.Parse(id));
    }

    [Fact]
    public void A_forked_child_that_execs_has_the_forking_process_as_parent()
    {
        var cache = new ProcessCache("n", new ProcessCacheOptions(), new ManualClock());
        cache.AddProcFs(ProcFs(100, 1, 10 * Sec, "/usr/bin/bash"));
        cache.LinkProcFsParents();

        cache.OnFork(new ForkEvent(20 * Sec, 200, 100, 20 * Sec, 10 * Sec));
        var child = cache.OnExec(Exec(200, 100, 20 * Sec, 21 * Sec, "/usr/bin/ls", 10 * Sec));

        var parent = cache.Parent(child);
        Assert.NotNull(parent);
        Assert.Equal("/usr/bin/bash", parent!.Binary);
        Assert.Equal(ProcessOrigin.ProcFs, parent.Origin);
        Assert.Equal("execve", child.FlagsText.Split(' ')[0]);
    }

    [Fact]
    public void Processes_from_proc_are_linked_to_their_parents()
    {
        var cache = new ProcessCache("n", new ProcessCacheOptions(), new ManualClock());
        cache.AddProcFs(ProcFs(2, 1, 2 * Sec, "/usr/bin/b"));
        cache.AddProcFs(ProcFs(1, 0, 1 * Sec, "/sbin/init"));
        cache.AddProcFs(ProcFs(3, 2, 3 * Sec, "/usr/bin/c"));
        cache.LinkProcFsParents();

        var c = cache.ByPid(3)!;
        Assert.Equal(["/usr/bin/b", "/sbin/init"], cache.Ancestors(c).Select(a => a.Binary));
    }

    [Fact]
    public void A_pid_reused_by_a_new_process_is_not_mistaken_for_the_old_one()
    {
        var cache = new ProcessCache("n", new ProcessCacheOptions(), new ManualClock());
        cache.AddProcFs(ProcFs(100, 1, 10 * Sec, "/usr/bin/old"));
        Assert.Null(cache.ByPid(100, startTime: 99 * Sec));
        Assert.NotNull(cache.ByPid(100, startTime: 10 * Sec + 3_000_000)); // same clock tick as /proc reports
    }

    [Fact]
    public void Exited_processes_leave_after_the_grace_period()
    {
        var clock = new ManualClock();
        var cache = new ProcessCache("n", new ProcessCacheOptions { ExitGrace = TimeSpan.FromSeconds(15) }, clock);
        var p = cache.OnExec(Exec(10, 1, Sec, Sec, "/bin/x"));
        cache.OnExit(new ExitEvent(2 * Sec, 10, 10, Sec, 0));

        clock.Advance(TimeSpan.FromSeconds(14));
        cache.Expire();
        Assert.NotNull(cache.Get(p.ExecId)); // children's events may still need it

        clock.Advance(TimeSpan.FromSeconds(2));
        cache.Expire();
        Assert.Null(cache.Get(p.ExecId));
        Assert.Equal(0, cache.Count);
        Assert.Equal(1, cache.Expired);
    }

    [Fact]
    public void A_million_short_lived_processes_never_grow_the_cache_past_its_cap()
    {
        var clock = new ManualClock();
        const int cap = 5_000;
        var cache = new ProcessCache("n", new ProcessCacheOptions { MaxEntries = cap, ExitGrace = TimeSpan.FromSeconds(15) }, clock);
        cache.AddProcFs(ProcFs(1, 0, Sec, "/sbin/init"));
        int peak = 0;
        for (int i = 0; i < 1_000_000; i++)
        {
            int pid = 1000 + (i % 4_000_000);
            ulong start = (ulong)(i + 2) * 1_000_000;
            cache.OnFork(new ForkEvent(start, pid, 1, start, Sec));
            cache.OnExec(Exec(pid, 1, start, start + 1, "/bin/true", Sec));
            cache.OnExit(new ExitEvent(start + 2, pid, pid, start, 0));
            if (i % 1000 == 0) clock.Advance(TimeSpan.FromMilliseconds(10)); // 100k processes/s
            peak = Math.Max(peak, cache.Count);
        }
        Assert.True(peak <= cap, $"peak {peak} > cap {cap}");
        Assert.True(cache.Evictions > 0, "evictions are counted");

        clock.Advance(TimeSpan.FromSeconds(16));
        cache.Expire();
        Assert.True(cache.Count <= 1, $"after the grace period only live processes remain, found {cache.Count}");
    }

    [Fact]
    public void Arguments_are_rendered_space_separated_with_quotes_where_needed()
    {
        var p = ProcFs(1, 0, Sec, "/bin/sh");
        var q = new ProcessInfo
        {
            ExecId = "x", Pid = 1, StartTime = 0, Ktime = 0, Binary = "/bin/sh", Cwd = "/", Creds = Root, Origin = ProcessOrigin.Exec,
            Args = ["sh", "-c", "echo hi", ""],
        };
        Assert.Equal("-c \"echo hi\" \"\"", q.Arguments);
        Assert.Equal("procFS rootcwd", p.FlagsText);
    }
}
