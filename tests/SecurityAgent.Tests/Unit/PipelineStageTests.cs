using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using SecurityAgent.Containers;
using SecurityAgent.Events;
using SecurityAgent.Export;
using SecurityAgent.Kernel;
using SecurityAgent.Pipeline;
using SecurityAgent.Policies;
using SecurityAgent.Processes;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Unit;

/// <summary>Each stage of the pipeline alone, with plain inputs: decode (raw bytes), enrich, decide, pod wait, export;
/// then the whole pipeline from raw records to JSON lines.</summary>
public class PipelineStageTests
{
    private const ulong Sec = 1_000_000_000;

    private static byte[] Fork(int pid, int ppid, ulong start, ulong parentStart)
    {
        var b = new byte[Wire.Fork.Length];
        b[Wire.Header.Op] = (byte)Op.Fork;
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(Wire.Header.Ktime), start);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(Wire.Fork.Pid), pid);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(Wire.Fork.Ppid), ppid);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(Wire.Fork.StartTime), start);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(Wire.Fork.ParentStartTime), parentStart);
        return b;
    }

    private static byte[] Exit(int pid, ulong start, ulong ktime, uint code)
    {
        var b = new byte[Wire.Exit.Length];
        b[Wire.Header.Op] = (byte)Op.Exit;
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(Wire.Header.Ktime), ktime);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(Wire.Exit.Pid), pid);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(Wire.Exit.Tid), pid);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(Wire.Exit.StartTime), start);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(Wire.Exit.ExitCode), code);
        return b;
    }

    private static ProcessCache Cache() => new("n", new ProcessCacheOptions(), new ManualClock());

    [Fact]
    public void Decoding_lifecycle_records_allocates_nothing()
    {
        var exec = EventDecoderTests.ExecRecord(10, "/usr/bin/x", ["x", "-a"], "/tmp");
        var fork = Fork(11, 10, Sec, Sec);
        var exit = Exit(11, Sec, 2 * Sec, 0);
        long sum = 0;
        for (int warm = 0; warm < 2; warm++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 1000; i++)
            {
                var e = EventDecoder.Decode(exec).Exec;
                sum += e.Pid + e.Binary.Length + e.Args.Length + (long)e.CapEffective;
                sum += EventDecoder.Decode(fork).Fork.Ppid + EventDecoder.Decode(exit).Exit.Status;
            }
            if (warm == 1) Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        Assert.True(sum > 0);
    }

    [Fact]
    public void Enrich_gives_an_exec_its_forking_parent_and_an_exit_of_an_unseen_process_says_why()
    {
        var cache = Cache();
        var enrich = new Enricher(cache, null, 10_000_000);
        var parent = enrich.Exec(EventDecoder.Decode(EventDecoderTests.ExecRecord(100, "/usr/bin/bash", ["bash"], "/", ktime: Sec, start: Sec)).Exec);
        enrich.Fork(EventDecoder.Decode(Fork(200, 100, 2 * Sec, Sec)).Fork);
        var child = enrich.Exec(EventDecoder.Decode(EventDecoderTests.ExecRecord(200, "/usr/bin/ls", ["ls", "-l"], "/home", ppid: 100, start: 2 * Sec, ktime: 3 * Sec, parentStart: Sec)).Exec);

        Assert.Equal("/usr/bin/bash", child.Parent!.Binary);
        Assert.Equal(parent.Process.ExecId, child.Process.ParentExecId);
        Assert.Equal(["ls", "-l"], child.Process.Args);
        Assert.Null(child.Process.Unattributed);

        var unseen = enrich.Exit(EventDecoder.Decode(Exit(999_999, 5 * Sec, 6 * Sec, 0)).Exit);
        Assert.Contains("not seen", unseen.Process.Unattributed);
    }

    [Fact]
    public void A_policy_event_of_a_process_the_cache_does_not_know_takes_it_from_proc_and_says_why_when_it_is_gone()
    {
        var enrich = new Enricher(Cache(), null, 1_000_000_000 / 100);
        using var sleeper = Run.Start("/usr/bin/sleep", ["30"]);
        try
        {
            // Past its exec: /proc shows the new binary a moment before the new command line.
            for (var until = DateTime.UtcNow.AddSeconds(10); File.ReadAllText($"/proc/{sleeper.Id}/cmdline").Length == 0 && DateTime.UtcNow < until;)
                Thread.Sleep(5);
            var (p, _) = enrich.ProcessOf(sleeper.Id, sleeper.Id);
            Assert.Equal("/usr/bin/sleep", p.Binary);
            Assert.Equal(["/usr/bin/sleep", "30"], p.Args);
            Assert.Equal(ProcessOrigin.ProcFs, p.Origin);
            Assert.NotEqual(0UL, p.StartTime);
            Assert.Null(p.Unattributed);
            Assert.Same(p, enrich.ProcessOf(sleeper.Id, sleeper.Id).Process); // kept from then on
        }
        finally { sleeper.Kill(); sleeper.WaitForExit(); }

        var (gone, _) = enrich.ProcessOf(int.MaxValue - 1, int.MaxValue - 1);
        Assert.Equal("", gone.Binary);
        Assert.Contains("exited before its event was read", gone.Unattributed);
    }

    private static HookPlan Hook(params SelectorPlan[] selectors) => new(HookKind.Tracepoint, Mechanism.Tracepoint, "syscalls/sys_enter_openat", "syscalls/sys_enter_openat", "",
        [new ArgPlan(0, 1, "string", ArgType.String, 0, 0, null)], selectors, null, []);

    private static SelectorPlan Selector(Actions actions, params ParentBinaryRule[] parents) =>
        new(actions, 0, 0, 0, Cmp.None, null, Cmp.None, [], false, false, Cmp.None, 0, 0, [], parents);

    private static PolicyKernelEvent PolicyEvent(uint hook, int pid, string path, PolicyWire.EventFlags flags = 0) =>
        new(4 * Sec, pid, pid, hook, 1, 0, flags, 1, [0], [Encoding.UTF8.GetBytes(path)]);

    private static ProcessInfo Proc(int pid, string binary, string? parentExecId = null) => new()
    {
        ExecId = ExecId.Make("n", (ulong)pid, pid), Pid = pid, StartTime = Sec, Ktime = Sec, Binary = binary, Args = [binary],
        Cwd = "/", Creds = new Credentials(0, 0, 0, 0), Origin = ProcessOrigin.Exec, ParentExecId = parentExecId,
    };

    private sealed class DenySet : EventPipeline.IDenySet
    {
        public List<(uint, int, int, Actions)> Denied { get; } = [];
        public List<int> Exited { get; } = [];
        public void Deny(uint hookId, int selector, int tgid, Actions enforce) => Denied.Add((hookId, selector, tgid, enforce));
        public void ProcessExited(int tgid) => Exited.Add(tgid);
    }

    [Fact]
    public void Decide_exports_kernel_decisions_as_they_are_and_counts_events_of_unloaded_hooks()
    {
        var hooks = new Dictionary<uint, HookInfo>();
        var plan = new PolicyPlan("p", "p.yaml", false, [Hook(Selector(Actions.Post))], []);
        hooks[7] = new HookInfo(7, "p", plan.Hooks[0], false, plan, false);
        var decide = new Decider(hooks, null, (_, _) => throw new InvalidOperationException("no signal for a kernel decision"));

        var (verdict, e) = decide.Decide(PolicyEvent(7, 42, "/etc/shadow"), Proc(42, "/usr/bin/cat"), null);
        Assert.Equal(Decider.Verdict.Export, verdict);
        Assert.Equal(("p", "kernel", "/etc/shadow"), (e!.PolicyName, e.DecidedBy, (string)e.Args[0].Value));

        Assert.Equal(Decider.Verdict.UnknownHook, decide.Decide(PolicyEvent(8, 42, "/x"), Proc(42, "/usr/bin/cat"), null).Verdict);
    }

    [Fact]
    public void Decide_runs_parent_rules_in_user_space_then_signals_and_feeds_the_deny_set_when_enforcing()
    {
        var sel = Selector(Actions.Post | Actions.Sigkill, new ParentBinaryRule("In", ["/usr/bin/bash"]));
        var plan = new PolicyPlan("p", "p.yaml", true, [Hook(sel)], []);
        var hooks = new Dictionary<uint, HookInfo> { [3] = new HookInfo(3, "p", plan.Hooks[0], true, plan, false) };
        var deny = new DenySet();
        var signalled = new List<(int Pid, int Signal)>();
        var decide = new Decider(hooks, deny, (p, s) => { signalled.Add((p.Pid, s)); return Responder.Outcome.Sent; });

        Assert.Equal(Decider.Verdict.Filtered, decide.Decide(PolicyEvent(3, 50, "/x"), Proc(50, "/usr/bin/cat"), Proc(49, "/usr/bin/zsh")).Verdict);
        Assert.Empty(signalled);

        var (verdict, e) = decide.Decide(PolicyEvent(3, 51, "/x"), Proc(51, "/usr/bin/cat"), Proc(48, "/usr/bin/bash"));
        Assert.Equal(Decider.Verdict.Export, verdict);
        Assert.Equal(("user_space", true), (e!.DecidedBy, e.Enforced));
        Assert.Equal([(51, 9)], signalled);
        Assert.Equal([(3u, 0, 51, Actions.Sigkill)], deny.Denied);

        decide.ProcessExited(51);
        Assert.Equal([51], deny.Exited);
        // Later matches of the same process are enforced by the kernel's deny set: no second signal.
        var (_, again) = decide.Decide(PolicyEvent(3, 51, "/x", PolicyWire.EventFlags.DenySet | PolicyWire.EventFlags.Enforced), Proc(51, "/usr/bin/cat"), Proc(48, "/usr/bin/bash"));
        Assert.Equal("kernel_deny_set", again!.DecidedBy);
        Assert.Single(signalled);
    }

    private static readonly string PodUid = "1b2c3d4e-0000-1111-2222-333344445555";

    private static JsonElement PodJson(int labels = 1)
    {
        var labelJson = string.Join(",", Enumerable.Range(0, labels).Select(i => $"\"k{i:D5}\":\"v{i}\""));
        return JsonDocument.Parse("""{"metadata":{"name":"web-1","namespace":"shop","uid":"UID","labels":{LABELS}},"""
            .Replace("UID", PodUid).Replace("LABELS", labelJson) + """
            "spec":{"nodeName":"n","containers":[{"name":"web","image":"img"}]},
            "status":{"containerStatuses":[{"name":"web","containerID":"containerd://c1","image":"img:1","imageID":"img@sha256:1"}]}}
            """).RootElement;
    }

    private static ProcessInfo PodProcess(int pid) { var p = Proc(pid, "/app/web"); p.Container = new ContainerRef("c1", PodUid, "containerd"); return p; }

    [Fact]
    public void An_event_waits_for_its_pod_and_goes_out_with_it_or_without_it_after_the_wait_in_order()
    {
        var pods = new PodCache { Active = true };
        var clock = new ManualClock();
        var wait = new PodWait(pods, clock, capacity: 100);
        var sent = new List<AgentEvent>();

        var first = new ProcessExecEvent(Sec, PodProcess(1), null);
        var second = new ProcessExecEvent(Sec, Proc(2, "/usr/bin/host-tool"), null);
        wait.Offer(first, sent.Add);
        wait.Offer(second, sent.Add); // not a pod's, but behind one that waits
        wait.Release(sent.Add);
        Assert.Empty(sent);

        pods.Upsert(PodJson());
        wait.Release(sent.Add);
        Assert.Equal([first, second], sent);
        Assert.Equal("web-1", first.Process.Pod!.Name);

        var orphan = PodProcess(4);
        orphan.Container = new ContainerRef("c9", "00000000-0000-0000-0000-000000000000", "containerd");
        wait.Offer(new ProcessExecEvent(Sec, orphan, null), sent.Add);
        clock.Advance(PodWait.Wait);
        wait.Release(sent.Add);
        Assert.Equal(3, sent.Count);
        Assert.Null(sent[2].Process.Pod);
    }

    [Fact]
    public void A_pod_with_a_huge_label_set_keeps_a_bounded_number_of_labels()
    {
        var pods = new PodCache();
        pods.Upsert(PodJson(labels: 50_000));
        var pod = pods.Lookup(new ContainerRef("c1", PodUid, "containerd"))!;
        Assert.Equal(PodCache.MaxLabels, pod.Labels.Count);
        Assert.Equal("v0", pod.Labels["k00000"]);
        Assert.Equal(("shop", "web-1", "web"), (pod.Namespace, pod.Name, pod.Container!.Name));
    }

    [Fact]
    public void A_pods_annotations_container_start_and_privilege_reach_its_events_without_kubectls_copy_of_the_object()
    {
        var pods = new PodCache();
        pods.Upsert(JsonDocument.Parse("""
            {"metadata":{"name":"web-1","namespace":"shop","uid":"UID","annotations":{"team":"payments","kubectl.kubernetes.io/last-applied-configuration":"{...}"}},
             "spec":{"containers":[{"name":"web","securityContext":{"privileged":true}},{"name":"side"}]},
             "status":{"containerStatuses":[{"name":"web","containerID":"containerd://c1","image":"img:1","imageID":"img@sha256:1","state":{"running":{"startedAt":"2026-11-22T06:10:00Z"}}}]}}
            """.Replace("UID", PodUid)).RootElement);
        var pod = pods.Lookup(new ContainerRef("c1", PodUid, "containerd"))!;
        Assert.Equal(new Dictionary<string, string> { ["team"] = "payments" }, pod.Annotations);
        Assert.Equal(("2026-11-22T06:10:00Z", true), (pod.Container!.StartedAt, pod.Container.Privileged));
    }

    /// <summary>A sink that counts writes and can be told to take only part of one.</summary>
    private sealed class CountingSink : ILineSink
    {
        public List<byte[]> Writes { get; } = [];
        public long? Take { get; set; }
        public long Write(ReadOnlySpan<byte> lines, out string? error)
        {
            long n = Math.Min(Take ?? lines.Length, lines.Length);
            long whole = lines[..(int)n].LastIndexOf((byte)'\n') + 1;
            Writes.Add(lines[..(int)whole].ToArray());
            error = n < lines.Length ? "no space left on device" : null;
            return whole;
        }
        public string Text => string.Concat(Writes.Select(w => Encoding.UTF8.GetString(w)));
        public void Dispose() { }
    }

    private static (EventPipeline Pipeline, CountingSink Sink, JsonLinesExporter Json, PodCache Pods, ManualClock Clock) Pipeline(params IEventExporter[] more)
    {
        var sink = new CountingSink();
        var json = new JsonLinesExporter(sink, new JsonEventFormatter("n", new BootClock(0)), NullLogger.Instance);
        var pods = new PodCache { Active = true };
        var clock = new ManualClock();
        var pipeline = new EventPipeline(new Enricher(Cache(), null, 10_000_000), new Decider(new Dictionary<uint, HookInfo>(), null, (_, _) => Responder.Outcome.Refused),
            new PodWait(pods, clock, 1000), [.. more, json], NullLogger.Instance);
        return (pipeline, sink, json, pods, clock);
    }

    [Fact]
    public void Raw_records_become_json_lines_written_once_per_batch()
    {
        var (pipeline, sink, json, _, _) = Pipeline();
        for (int i = 0; i < 50; i++)
        {
            pipeline.OnRecord(EventDecoderTests.ExecRecord(1000 + i, "/usr/bin/batch", ["batch", $"n{i}"], "/", start: (ulong)(i + 1) * Sec, ktime: (ulong)(i + 1) * Sec));
            pipeline.OnRecord(Exit(1000 + i, (ulong)(i + 1) * Sec, (ulong)(i + 2) * Sec, 0));
        }
        pipeline.OnRecord([1, 2, 3]); // malformed: counted, not fatal
        pipeline.EndBatch();

        Assert.Single(sink.Writes);
        var lines = sink.Text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(100, lines.Length);
        Assert.Equal(50, lines.Count(l => l.StartsWith("{\"process_exec\"")));
        foreach (var l in lines.Take(4)) JsonFormatTests.AssertValid(l);
        Assert.Equal((101L, 100L, 1L), (pipeline.Counters.Received, pipeline.Counters.Exported, pipeline.Counters.DecodeErrors));
        Assert.Equal(100, json.Written);
        pipeline.EndBatch();
        Assert.Single(sink.Writes); // nothing new: no write
    }

    [Fact]
    public void A_process_rendered_before_its_pod_arrived_has_the_pod_in_later_events()
    {
        var (pipeline, sink, _, pods, clock) = Pipeline();
        // The process runs in a pod's container the watch has not delivered yet.
        var enrich = typeof(EventPipeline).GetField("_enrich", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!;
        var cache = ((Enricher)enrich.GetValue(pipeline)!).Cache;
        pipeline.OnRecord(EventDecoderTests.ExecRecord(77, "/app/web", ["web"], "/", start: Sec, ktime: Sec));
        cache.ByPid(77)!.Container = new ContainerRef("c1", PodUid, "containerd");
        clock.Advance(PodWait.Wait);
        pipeline.OnRecord(EventDecoderTests.ExecRecord(78, "/app/child", ["child"], "/", ppid: 77, start: 2 * Sec, ktime: 2 * Sec, parentStart: Sec));
        pipeline.EndBatch();
        clock.Advance(PodWait.Wait);
        pipeline.EndBatch(); // the wait is over: out without the pod
        var before = sink.Text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.False(before.Last().GetProperty("process_exec").GetProperty("parent").TryGetProperty("pod", out _));

        pods.Upsert(PodJson());
        pipeline.OnRecord(Exit(77, Sec, 5 * Sec, 0));
        pipeline.EndBatch();
        var exit = JsonDocument.Parse(sink.Text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Last()).RootElement.GetProperty("process_exit");
        Assert.Equal("web-1", exit.GetProperty("process").GetProperty("pod").GetProperty("name").GetString());
    }

    [Fact]
    public void A_sleeping_reader_is_woken_once_by_the_first_posted_record_and_may_not_sleep_while_anything_waits_for_a_later_batch()
    {
        var (pipeline, _, _, _, clock) = Pipeline();
        int wakes = 0;
        void Wake() => wakes++;
        Assert.True(pipeline.TrySleep(Wake));
        Assert.True(pipeline.Sleeping);
        pipeline.Post(PolicyEvent(1, 42, "/a"));
        pipeline.Post(PolicyEvent(1, 42, "/b"));
        Assert.Equal((1, false), (wakes, pipeline.Sleeping));

        Assert.False(pipeline.TrySleep(Wake)); // two records wait for the batch
        pipeline.EndBatch();
        Assert.True(pipeline.TrySleep(Wake));
        pipeline.Awake();
        pipeline.Post(PolicyEvent(1, 42, "/c"));
        Assert.Equal(1, wakes); // awake: a post wakes no one

        // An after-call record waits one more batch after the one that took it.
        pipeline.EndBatch();
        pipeline.Post(PolicyEvent(1, 42, "/d") with { AfterCall = true });
        pipeline.EndBatch();
        Assert.False(pipeline.TrySleep(Wake));
        pipeline.EndBatch();
        Assert.True(pipeline.TrySleep(Wake));
        pipeline.Awake();

        // An event waiting for its pod is sent on by a later batch (or when its wait is over).
        var enrich = typeof(EventPipeline).GetField("_enrich", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!;
        var cache = ((Enricher)enrich.GetValue(pipeline)!).Cache;
        pipeline.OnRecord(EventDecoderTests.ExecRecord(77, "/app/web", ["web"], "/", start: Sec, ktime: Sec));
        cache.ByPid(77)!.Container = new ContainerRef("c1", PodUid, "containerd");
        pipeline.OnRecord(EventDecoderTests.ExecRecord(78, "/app/child", ["child"], "/", ppid: 77, start: 2 * Sec, ktime: 2 * Sec, parentStart: Sec));
        pipeline.EndBatch();
        Assert.False(pipeline.TrySleep(Wake));
        clock.Advance(PodWait.Wait);
        pipeline.EndBatch();
        Assert.True(pipeline.TrySleep(Wake));

        // An exporter with work for a later flush (a live stream's chunk held while its connection was busy).
        var holding = new Holding();
        var (other, _, _, _, _) = Pipeline(holding);
        holding.Pending = true;
        Assert.False(other.TrySleep(Wake));
        holding.Pending = false;
        Assert.True(other.TrySleep(Wake));
    }

    private sealed class Holding : IEventExporter
    {
        public bool Pending;
        public void Export(AgentEvent e) { }
        public void Flush() { }
        public bool FlushPending => Pending;
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    private sealed class Throwing : IEventExporter
    {
        public void Export(AgentEvent e) => throw new InvalidOperationException("exporter bug");
        public void Flush() => throw new InvalidOperationException("exporter bug");
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    [Fact]
    public void An_exporter_that_throws_is_isolated_and_the_others_get_every_event()
    {
        var (pipeline, sink, _, _, _) = Pipeline(new Throwing());
        for (int i = 0; i < 10; i++)
            pipeline.OnRecord(EventDecoderTests.ExecRecord(300 + i, "/bin/x", ["x"], "/", start: (ulong)(i + 1) * Sec, ktime: (ulong)(i + 1) * Sec));
        pipeline.EndBatch();
        Assert.Equal(10, sink.Text.Count(c => c == '\n'));
        Assert.Equal(11, pipeline.Counters.ExporterFaults); // 10 events + 1 flush
    }

    [Fact]
    public void A_write_that_fails_part_way_leaves_no_partial_line_and_counts_the_lost_events_exactly()
    {
        var (pipeline, sink, json, _, _) = Pipeline();
        for (int i = 0; i < 10; i++)
            pipeline.OnRecord(EventDecoderTests.ExecRecord(400 + i, "/bin/y", ["y"], "/", start: (ulong)(i + 1) * Sec, ktime: (ulong)(i + 1) * Sec));
        sink.Take = 1000; // the device fills up in the middle of the batch
        pipeline.EndBatch();
        var landed = sink.Text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.InRange(landed.Length, 1, 9);
        Assert.All(landed, l => JsonDocument.Parse(l));
        Assert.Equal((landed.Length, 10L - landed.Length), (json.Written, json.Failed));
    }

    [Fact]
    public void Repeated_failures_log_one_line_per_interval_with_the_count_then_one_when_it_works_again()
    {
        var log = new ListLogger();
        var clock = new ManualClock();
        var faults = new FaultLog(log, "JSON export", clock, TimeSpan.FromSeconds(10));
        for (int i = 0; i < 10_000; i++) faults.Failed(3, "no space left on device");
        Assert.Single(log.Lines);
        clock.Advance(TimeSpan.FromSeconds(10));
        faults.Failed(1, "no space left on device");
        Assert.Equal(2, log.Lines.Count);
        Assert.Contains("29998 lost since the last report, 30001 in all", log.Lines[1]);
        faults.Succeeded();
        faults.Succeeded();
        Assert.Equal(3, log.Lines.Count);
        Assert.Equal(30_001, faults.Total);
    }

    private sealed class ListLogger : Microsoft.Extensions.Logging.ILogger
    {
        public List<string> Lines { get; } = [];
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel level) => true;
        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel level, Microsoft.Extensions.Logging.EventId id, TState state, Exception? ex, Func<TState, Exception?, string> format) =>
            Lines.Add(format(state, ex));
    }
}
