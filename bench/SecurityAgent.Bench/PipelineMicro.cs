using System.Buffers.Binary;
using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using SecurityAgent.Events;
using SecurityAgent.Export;
using SecurityAgent.Pipeline;
using SecurityAgent.Policies;
using SecurityAgent.Processes;

namespace SecurityAgent.Bench;

/// <summary>`make bench-pipeline`: the user-space cost of one exported policy event without the kernel (no root, no
/// lock): the agent's pipeline (decode, enrich, decide, the JSON file exporter behind the export filters, the live
/// stream and the event metrics, as `secagent run` composes them) fed the ring-buffer record the open-loop benchmark's
/// policy produces, stage by stage. CPU time and allocations per event and gen0 collections per 100k events; the
/// stages are cumulative, so each difference is one stage's cost.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public static class PipelineMicro
{
    private const ulong Sec = 1_000_000_000;

    public static int Run(long events)
    {
        var dir = Directory.CreateTempSubdirectory("secagent-bench-pipeline-").FullName;
        try
        {
            var record = Record("/tmp/secagent-bench-0123456789/watched/f");
            Console.WriteLine($"user-space cost per exported event ({events} events, one policy matching every open, JSON to a file):");
            Measure("decode", events, () =>
            {
                var e = EventDecoder.Decode(record).Policy;
                GC.KeepAlive(e);
            }, null);
            var (decideOnly, _, _) = Pipeline(Path.Combine(dir, "a.json"), exporters: false);
            Measure("decode + enrich + decide", events, () => decideOnly.OnRecord(record), decideOnly.EndBatch);
            var (full, exported, _) = Pipeline(Path.Combine(dir, "b.json"), exporters: true);
            Measure("... + JSON export (one write per batch)", events, () => full.OnRecord(record), full.EndBatch);
            var (live, _, stream) = Pipeline(Path.Combine(dir, "c.json"), exporters: true);
            var client = stream.Subscribe(_ => true);
            long received = 0;
            var reader = Task.Run(async () =>
            {
                await foreach (var chunk in client.Reader.ReadAllAsync())
                {
                    received += chunk.Memory.Length;
                    client.Return(chunk);
                }
            });
            Measure("... + a live client attached (/v1/events)", events, () => live.OnRecord(record), live.EndBatch);
            stream.Unsubscribe(client);
            Console.WriteLine($"  (the client received {client.Delivered} events, {received / Math.Max(1, client.Delivered)} bytes each; dropped {client.Dropped}: it reads on another thread)");
            if (full.Counters.Exported == 0 || exported() == 0)
                throw new InvalidOperationException("the pipeline exported nothing: the benchmark's record or hook is wrong");
            return 0;
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    private static void Measure(string stage, long events, Action one, Action? endBatch)
    {
        void Loop(long n)
        {
            for (long i = 0; i < n; i++)
            {
                one();
                if (endBatch is not null && (i & 1023) == 1023) endBatch(); // a drain of the ring buffer
            }
            endBatch?.Invoke();
        }
        Loop(Math.Min(events, 50_000)); // warm: first renderings, buffers grown
        int gen0 = GC.CollectionCount(0);
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        Loop(events);
        cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu;
        Console.WriteLine($"  {stage,-40} {cpu.TotalMilliseconds * 1e6 / events,6:F0} ns CPU, {(double)(GC.GetAllocatedBytesForCurrentThread() - allocated) / events,5:F0} B allocated, "
            + $"{(GC.CollectionCount(0) - gen0) * 100_000.0 / events,5:F1} gen0 GCs per 100k");
    }

    /// <summary>The pipeline of `secagent run` with one policy (a kprobe on sys_openat, one string argument) whose events
    /// go to a JSON file, and the process of the events and its parent in the cache.</summary>
    private static (EventPipeline Pipeline, Func<long> Exported, Api.LiveEvents Live) Pipeline(string exportFile, bool exporters)
    {
        var cache = new ProcessCache("bench-node", new ProcessCacheOptions(), TimeProvider.System);
        cache.AddProcFs(new ProcessInfo
        {
            ExecId = ExecId.Make("bench-node", Sec, 100), Pid = 100, StartTime = Sec, Ktime = Sec, Binary = "/usr/bin/bash", Args = ["bash"],
            Cwd = "/root", Creds = new Credentials(0, 0, 0, 0), Origin = ProcessOrigin.ProcFs, Ppid = 1,
        });
        var workload = new ProcessInfo
        {
            ExecId = ExecId.Make("bench-node", 2 * Sec, 4242), Pid = 4242, StartTime = 2 * Sec, Ktime = 2 * Sec, Binary = "/work/build/bench/openloop",
            Args = ["openloop", "/tmp/secagent-bench-0123456789/watched/f", "100000"], Cwd = "/work", Creds = new Credentials(0, 0, 0, 0),
            Origin = ProcessOrigin.ProcFs, Ppid = 100,
        };
        cache.AddProcFs(workload);
        cache.LinkParent(workload);
        var hook = new HookPlan(HookKind.Kprobe, Kernel.Mechanism.Tracepoint, "syscalls/sys_enter_openat", "__x64_sys_openat", "",
            [new ArgPlan(0, 1, "string", ArgType.String, 24, 8, null)],
            [new SelectorPlan(Actions.Post, 0, 0, 0, Cmp.None, null, Cmp.None, [], false, false, Cmp.None, 0, 0, [], [])], null, []);
        var plan = new PolicyPlan("bench-files", "bench.yaml", false, [hook], []);
        var hooks = new Dictionary<uint, HookInfo> { [7] = new HookInfo(7, "bench-files", hook, false, plan, false) };
        var formatter = new JsonEventFormatter("bench-node", BootClock.System(), null, null, cache.Parent);
        var file = new JsonLinesExporter(JsonLinesExporter.OpenTarget(exportFile), formatter, NullLogger.Instance);
        var live = new Api.LiveEvents { Formatter = formatter.WithExtensions() };
        IEventExporter[] chain = exporters
            ? [new FilteringExporter([file], [], [], 0, TimeProvider.System, file.WriteRateLimitInfo), live, new Api.EventMetrics([])]
            : [];
        var pipeline = new EventPipeline(new Enricher(cache, null, 10_000_000), new Decider(hooks, null, (_, _) => Responder.Outcome.Refused),
            new PodWait(null, TimeProvider.System, 1000), chain, NullLogger.Instance);
        return (pipeline, () => file.Written, live);
    }

    /// <summary>A policy_event record as the kernel writes it for hook 7: pid 4242, one string argument.</summary>
    private static byte[] Record(string path)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(path);
        var rec = new byte[PolicyWire.Event.Data + bytes.Length];
        rec[Wire.Header.Op] = (byte)Op.Tracepoint;
        BinaryPrimitives.WriteUInt64LittleEndian(rec.AsSpan(Wire.Header.Ktime), 3 * Sec);
        BinaryPrimitives.WriteInt32LittleEndian(rec.AsSpan(PolicyWire.Event.Pid), 4242);
        BinaryPrimitives.WriteInt32LittleEndian(rec.AsSpan(PolicyWire.Event.Tid), 4242);
        BinaryPrimitives.WriteUInt32LittleEndian(rec.AsSpan(PolicyWire.Event.HookId), 7);
        BinaryPrimitives.WriteUInt32LittleEndian(rec.AsSpan(PolicyWire.Event.Actions), (uint)Actions.Post);
        rec[PolicyWire.Event.Nargs] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(rec.AsSpan(PolicyWire.Event.StrLen), (ushort)bytes.Length);
        bytes.CopyTo(rec, PolicyWire.Event.Data);
        return rec;
    }
}
