using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using SecurityAgent.Export;
using SecurityAgent.Hosting;
using SecurityAgent.Policies;

namespace SecurityAgent.Api;

public enum MetricType { Counter, Gauge }

public sealed record MetricSample(IReadOnlyList<KeyValuePair<string, string>> Labels, double Value);

public sealed record MetricFamily(string Name, MetricType Type, string Help, IReadOnlyList<MetricSample> Samples);

/// <summary>The agent's metrics, named as Tetragon names them where Tetragon has the metric (secagent_ for tetragon_:
/// build_info, events_total, policy_events_total, events_missing_process_info_total, tracingpolicy_loaded,
/// tracingpolicy_selector_actions_total, observer_ringbuf_*, process_cache_*, events_exported_*), plus our kernel hook
/// counters and the standard process_* runtime metrics. One collection serves the Prometheus text (/metrics on the API
/// socket and on --metrics-address) and OTLP (<see cref="Otlp.OtlpMetrics"/>).</summary>
public static class Metrics
{
    /// <summary>Every family, in a fixed order; a family without data has no samples (its HELP and TYPE are still written).</summary>
    public static List<MetricFamily> Collect(AgentState s)
    {
        var families = new List<MetricFamily>();
        void Add(string name, MetricType type, string help, IEnumerable<MetricSample> samples) => families.Add(new(name, type, help, samples.ToList()));
        static MetricSample One(double value, params (string K, string V)[] labels) => new(labels.Select(l => KeyValuePair.Create(l.K, l.V)).ToList(), value);

        Add("secagent_build_info", MetricType.Gauge, "Build information: version, git commit, build date, .NET runtime.",
            [One(1, ("version", BuildInfo.Version), ("commit", BuildInfo.Commit), ("time", BuildInfo.Date), ("runtime", BuildInfo.Runtime))]);

        var ev = s.EventMetrics;
        Add("secagent_events_total", MetricType.Counter, "Events processed, by type and policy (and the labels of --metrics-label-filter).", ev.Events());
        Add("secagent_policy_events_total", MetricType.Counter, "Policy events, by policy and hook (and the labels of --metrics-label-filter).", ev.PolicyEvents());
        Add("secagent_events_missing_process_info_total", MetricType.Counter, "Events whose process the agent did not know.", [One(ev.MissingProcessInfo)]);
        Add("secagent_metrics_label_overflow_total", MetricType.Counter, "Events counted under label value \"overflow\" because a family reached its series limit.", [One(ev.Overflowed)]);

        var states = s.Policies.List();
        var hooks = s.Policies.HookStats();
        Add("secagent_tracingpolicy_loaded", MetricType.Gauge, "Tracing policies by state.",
            [One(states.Count(p => p.Loaded), ("state", "enabled")), One(states.Count(p => !p.Enabled), ("state", "disabled")),
             One(states.Count(p => p.Enabled && !p.Loaded), ("state", "load_error"))]);
        Add("secagent_tracingpolicy_selector_actions_total", MetricType.Counter,
            "Actions of policy hooks: post, signal (SIGKILL or a signal), override (an error returned); monitor_* what a monitor-mode policy would have done.",
            hooks.SelectMany(ActionSamples));
        IEnumerable<MetricSample> Hooks(Func<Sensors.HookStats, ulong> pick) => hooks.Select(h => One(pick(h.Stats), ("policy", h.Policy), ("hook", h.Hook)));
        Add("secagent_hook_seen_total", MetricType.Counter, "Calls a policy hook saw in the kernel.", Hooks(st => st.Seen));
        Add("secagent_hook_matched_total", MetricType.Counter, "Calls a hook's selectors matched in the kernel.", Hooks(st => st.Matched));
        Add("secagent_hook_posted_total", MetricType.Counter, "Events a hook sent to user space.", Hooks(st => st.Posted));
        Add("secagent_hook_enforced_total", MetricType.Counter, "Enforcement actions carried out in the kernel.", Hooks(st => st.Enforced));
        Add("secagent_hook_rate_limited_total", MetricType.Counter, "Posts suppressed by rateLimit.", Hooks(st => st.RateLimited));

        Add("secagent_policy_programs_loading", MetricType.Gauge, "1 while the policy programs load in the background after start-up (a policy added then waits for them).",
            s.PolicyPrograms is { } pp ? [One(pp() == Policies.PolicyProgramsState.Loading ? 1 : 0)] : []);
        var kc = s.PolicyKernelCounters?.Invoke();
        Add("secagent_enforcer_notifications_dropped_total", MetricType.Counter,
            "NotifyEnforcer notifications dropped before the thread's next enforced call, by reason (full: the per-thread map was full; replaced: a newer notification of the thread replaced it).",
            kc is null ? [] : [One(kc.EnforcerNotificationsFull, ("reason", "full")), One(kc.EnforcerNotificationsReplaced, ("reason", "replaced"))]);
        Add("secagent_socktrack_evictions_total", MetricType.Counter, "Socks TrackSock followed that the kernel's map forgot at its capacity (the oldest first).",
            kc is null ? [] : [One(kc.SocktrackEvictions)]);

        var md = s.Pipeline?.MaxData;
        Add("secagent_maxdata_buffers_total", MetricType.Counter,
            "maxData buffers longer than an event's 255 bytes, by outcome (joined: the event carries it whole; incomplete: an event whose buffer did not come whole keeps 255 bytes; "
            + "discarded: a buffer no event took).",
            md is null ? [] : [One(md.Joined, ("outcome", "joined")), One(md.Incomplete, ("outcome", "incomplete")), One(md.Discarded, ("outcome", "discarded"))]);
        Add("secagent_maxdata_records_lost_total", MetricType.Counter, "maxData data records the kernel did not send, by reason (ring_full; fault: the buffer's page not readable).",
            kc is null ? [] : [One(kc.DataRecordsRingFull, ("reason", "ring_full")), One(kc.DataRecordsUnreadable, ("reason", "fault"))]);

        var c = s.Pipeline?.Counters;
        Add("secagent_observer_ringbuf_events_received_total", MetricType.Counter, "Records read from the kernel ring buffer.", c is null ? [] : [One(c.Received)]);
        Add("secagent_observer_ringbuf_events_lost_total", MetricType.Counter, "Records the kernel could not write (ring buffer full, or a return probe's event not kept until the return).", c is null ? [] : [One(c.KernelLost)]);
        Add("secagent_decode_errors_total", MetricType.Counter, "Malformed kernel records.", c is null ? [] : [One(c.DecodeErrors)]);
        Add("secagent_user_space_filtered_total", MetricType.Counter, "Policy events decided against in user space.", c is null ? [] : [One(c.UserSpaceFiltered)]);
        Add("secagent_process_cache_size", MetricType.Gauge, "Processes in the process cache.", s.Pipeline is { } p1 ? [One(p1.Cache.Count)] : []);
        Add("secagent_process_cache_evictions_total", MetricType.Counter, "Entries evicted at the cache's cap.", s.Pipeline is { } p2 ? [One(p2.Cache.Evictions)] : []);

        var fan = s.Fanotify?.Counters;
        Add("secagent_fanotify_answers_total", MetricType.Counter, "Fanotify permission events answered, by answer (allow or deny; defaults included).",
            fan is null ? [] : [One(fan.Allowed, ("answer", "allow")), One(fan.Denied, ("answer", "deny"))]);
        Add("secagent_fanotify_default_answers_total", MetricType.Counter,
            "Fanotify permission events answered with the policy's default (fail-open or fail-closed) instead of a decision, by reason.",
            fan is null ? [] : [One(fan.DefaultedBy(Fanotify.DefaultReason.Timeout), ("reason", "timeout")),
                One(fan.DefaultedBy(Fanotify.DefaultReason.Overload), ("reason", "overload")), One(fan.DefaultedBy(Fanotify.DefaultReason.Error), ("reason", "error"))]);
        Add("secagent_fanotify_exempt_total", MetricType.Counter, "Fanotify permission events allowed without a decision: the agent, pid 1, kernel threads.", fan is null ? [] : [One(fan.Exempt)]);
        Add("secagent_fanotify_reports_dropped_total", MetricType.Counter, "Fanotify policy reports dropped because their queue was full.", fan is null ? [] : [One(fan.ReportsDropped)]);
        Add("secagent_fanotify_marks", MetricType.Gauge, "Fanotify marks the agent holds (files, directories, file systems).", s.Fanotify is { } fl ? [One(fl.Marks.Count)] : []);
        var changes = s.PathChanges?.Counters;
        Add("secagent_path_changes_total", MetricType.Counter, "Changes by name-only syscalls fanotify reported after the call, by outcome (read; posted as a policy event; merged: a call whose change fanotify merged into an identical one still queued, reported from the kernel's note of the call).",
            changes is { } pc ? [One(pc.Events, ("outcome", "read")), One(pc.Posted, ("outcome", "posted")), One(pc.Merged, ("outcome", "merged"))] : []);
        Add("secagent_path_change_overflows_total", MetricType.Counter, "Overflows of the kernel's queue of after-the-call changes (changes lost).",
            changes is { } po ? [One(po.Overflows)] : []);
        Add("secagent_after_call_notes_lost_total", MetricType.Counter, "Calls the kernel noted for the after-call match that were overwritten before the agent read them (more name-only calls than the ring holds in between): their changes are reported without the strings the call passed.",
            changes is { } pn ? [One(pn.NotesLost)] : []);

        var json = s.Exporter;
        var otlp = s.Otlp;
        Add("secagent_events_exported_total", MetricType.Counter, "Events an exporter wrote or delivered.",
            [.. json is null ? [] : new[] { One(json.Written, ("exporter", "json")) }, .. otlp is null ? [] : new[] { One(otlp.Delivered, ("exporter", "otlp")) }]);
        Add("secagent_events_exported_bytes_total", MetricType.Counter, "Bytes an exporter delivered.", otlp is null ? [] : [One(otlp.BytesSent, ("exporter", "otlp"))]);
        Add("secagent_events_last_exported_timestamp", MetricType.Gauge, "When an exporter last delivered events (Unix seconds).",
            otlp is { LastExportUnixSeconds: > 0 } ? [One(otlp.LastExportUnixSeconds, ("exporter", "otlp"))] : []);
        Add("secagent_export_failed_total", MetricType.Counter, "Exporter write or delivery failures.",
            [.. json is null ? [] : new[] { One(json.Failed, ("exporter", "json")) }, .. otlp is null ? [] : new[] { One(otlp.Failures, ("exporter", "otlp")) }]);
        Add("secagent_export_dropped_total", MetricType.Counter, "Events an exporter dropped (full queue, slow reader).",
            [One(s.Live.Dropped, ("exporter", "api-stream")), .. otlp is null ? [] : new[] { One(otlp.Dropped, ("exporter", "otlp")) }]);
        Add("secagent_api_stream_clients", MetricType.Gauge, "Clients attached to the live event stream (/v1/events).", [One(s.Live.Subscribers.Count)]);
        Add("secagent_api_stream_client_dropped_total", MetricType.Counter, "Events dropped for one attached live-stream client because it read too slowly.",
            s.Live.Subscribers.Select(c => One(c.Dropped, ("client", c.Id.ToString(CultureInfo.InvariantCulture)))));
        Add("secagent_api_stream_disconnected_total", MetricType.Counter, "Live-stream clients the agent disconnected because they stopped reading while events were dropped for them.",
            [One(s.Live.Disconnected)]);
        Add("secagent_export_queue_depth", MetricType.Gauge, "Events waiting in an exporter's queue.", otlp is null ? [] : [One(otlp.QueueDepth, ("exporter", "otlp"))]);
        Add("secagent_api_connections_refused_total", MetricType.Counter, "Connections to the API socket refused because the peer was not root.", [One(ApiServer.RefusedPeers)]);

        using var self = Process.GetCurrentProcess();
        Add("process_cpu_seconds_total", MetricType.Counter, "User and system CPU time spent, in seconds.", [One(self.TotalProcessorTime.TotalSeconds)]);
        Add("process_resident_memory_bytes", MetricType.Gauge, "Resident memory size in bytes.", [One(self.WorkingSet64)]);
        Add("process_virtual_memory_bytes", MetricType.Gauge, "Virtual memory size in bytes.", [One(self.VirtualMemorySize64)]);
        Add("process_start_time_seconds", MetricType.Gauge, "Start time of the process since the Unix epoch, in seconds.",
            [One(new DateTimeOffset(self.StartTime.ToUniversalTime()).ToUnixTimeMilliseconds() / 1000.0)]);
        Add("process_open_fds", MetricType.Gauge, "Open file descriptors.", [One(OpenFds())]);
        Add("dotnet_gc_heap_size_bytes", MetricType.Gauge, "Bytes of the managed heap in use after the last collection.", [One(GC.GetGCMemoryInfo().HeapSizeBytes)]);
        Add("dotnet_gc_collections_total", MetricType.Counter, "Garbage collections, by generation.",
            Enumerable.Range(0, GC.MaxGeneration + 1).Select(g => One(GC.CollectionCount(g), ("generation", g.ToString(CultureInfo.InvariantCulture)))));
        Add("dotnet_gc_pause_seconds_total", MetricType.Counter, "Time the runtime was paused for garbage collection, in seconds.", [One(GC.GetTotalPauseDuration().TotalSeconds)]);
        Add("dotnet_threadpool_threads", MetricType.Gauge, "Thread-pool threads.", [One(ThreadPool.ThreadCount)]);
        Add("dotnet_threadpool_queue_length", MetricType.Gauge, "Work items waiting for a thread-pool thread.", [One(ThreadPool.PendingWorkItemCount)]);
        return families;
    }

    /// <summary>Tetragon's selector action names for one hook: what it posted, and what it enforced (or, in monitor
    /// mode, would have enforced: every match).</summary>
    private static IEnumerable<MetricSample> ActionSamples(HookStatus h)
    {
        KeyValuePair<string, string>[] Labels(string action) => [new("policy", h.Policy), new("hook", h.Hook), new("action", action)];
        if (h.Actions.HasFlag(Actions.Post)) yield return new(Labels("post"), h.Stats.Posted);
        var enforcing = h.Actions.HasFlag(Actions.Override) ? "override" : (h.Actions & (Actions.Sigkill | Actions.Signal)) != 0 ? "signal" : null;
        if (enforcing is not null)
            yield return h.Enforce ? new(Labels(enforcing), h.Stats.Enforced) : new(Labels("monitor_" + enforcing), h.Stats.Matched);
    }

    private static int OpenFds()
    {
        try { return Directory.EnumerateFileSystemEntries("/proc/self/fd").Count(); }
        catch (IOException) { return 0; }
    }

    /// <summary>The Prometheus text format (0.0.4).</summary>
    public static string Render(IEnumerable<MetricFamily> families)
    {
        var b = new StringBuilder(16 * 1024);
        foreach (var f in families)
        {
            b.Append("# HELP ").Append(f.Name).Append(' ').Append(f.Help.Replace("\\", "\\\\").Replace("\n", "\\n")).Append('\n');
            b.Append("# TYPE ").Append(f.Name).Append(' ').Append(f.Type == MetricType.Counter ? "counter" : "gauge").Append('\n');
            foreach (var sample in f.Samples)
            {
                b.Append(f.Name);
                if (sample.Labels.Count > 0)
                    b.Append('{').AppendJoin(',', sample.Labels.Select(l => $"{l.Key}=\"{Escape(l.Value)}\"")).Append('}');
                b.Append(' ').Append(sample.Value.ToString(CultureInfo.InvariantCulture)).Append('\n');
            }
        }
        return b.ToString();
    }

    private static string Escape(string v) => v.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n");
}

/// <summary>Counts every event the pipeline processes, for secagent_events_total and secagent_policy_events_total,
/// with the opt-in labels of --metrics-label-filter (namespace, workload, pod, binary; as Tetragon's). Each family
/// holds at most <paramref name="maxSeries"/> label sets: past that, new sets are counted under "overflow", so a
/// busy node's pods and binaries cannot grow the metrics without bound. Export runs on the pipeline thread only (one
/// writer); scrapes read concurrently.</summary>
public sealed class EventMetrics(IReadOnlyCollection<string> labels, int maxSeries = 5000) : IEventExporter
{
    private readonly record struct Key(string Kind, string Name, string Namespace, string Workload, string Pod, string Binary);

    private readonly bool _ns = labels.Contains("namespace"), _workload = labels.Contains("workload"), _pod = labels.Contains("pod"), _binary = labels.Contains("binary");
    private readonly ConcurrentDictionary<Key, StrongBox<long>> _events = new(), _policies = new();
    private long _missing, _overflowed;
    // Per family, the last key counted and its box: a run of events of one kind skips hashing six strings per event.
    private Last _lastEvent, _lastPolicy;

    private struct Last
    {
        public Key Key;
        public StrongBox<long>? Box;
    }

    public long MissingProcessInfo => Volatile.Read(ref _missing);
    public long Overflowed => Volatile.Read(ref _overflowed);

    public static EventMetrics FromFilter(string? filter) =>
        new((filter ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Export(AgentEvent e)
    {
        var pod = e.Process.Pod;
        string ns = _ns ? pod?.Namespace ?? "" : "", workload = _workload ? pod?.Workload ?? "" : "",
            podName = _pod ? pod?.Name ?? "" : "", binary = _binary ? e.Process.Binary : "";
        if (e.Process.Binary.Length == 0) Interlocked.Increment(ref _missing);
        var m = e as PolicyMatchEvent;
        Count(_events, new Key(e.Type, m?.PolicyName ?? "", ns, workload, podName, binary), ref _lastEvent);
        if (m is not null)
            Count(_policies, new Key(m.PolicyName, m.Hook.Name, ns, workload, podName, binary), ref _lastPolicy);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Count(ConcurrentDictionary<Key, StrongBox<long>> family, Key key, ref Last last)
    {
        if (last.Box is { } same && Same(key, last.Key))
        {
            Volatile.Write(ref same.Value, same.Value + 1); // one writer: no locked increment needed
            return;
        }
        last.Key = key;
        if (!family.TryGetValue(key, out var box))
        {
            if (family.Count >= maxSeries && (key.Namespace.Length | key.Workload.Length | key.Pod.Length | key.Binary.Length) != 0)
            {
                Interlocked.Increment(ref _overflowed);
                key = key with { Namespace = Over(_ns), Workload = Over(_workload), Pod = Over(_pod), Binary = Over(_binary) };
            }
            box = family.GetOrAdd(key, _ => new StrongBox<long>());
        }
        last.Box = box;
        Volatile.Write(ref box.Value, box.Value + 1);
    }

    private static bool Same(in Key a, in Key b) =>
        ReferenceEquals(a.Kind, b.Kind) && ReferenceEquals(a.Name, b.Name) && ReferenceEquals(a.Namespace, b.Namespace)
        && ReferenceEquals(a.Workload, b.Workload) && ReferenceEquals(a.Pod, b.Pod) && ReferenceEquals(a.Binary, b.Binary);

    private static string Over(bool enabled) => enabled ? "overflow" : "";

    public IEnumerable<MetricSample> Events() => Samples(_events, "type", "policy");

    public IEnumerable<MetricSample> PolicyEvents() => Samples(_policies, "policy", "hook");

    private IEnumerable<MetricSample> Samples(ConcurrentDictionary<Key, StrongBox<long>> family, string kind, string name) =>
        family.Select(kv =>
        {
            var l = new List<KeyValuePair<string, string>> { new(kind, kv.Key.Kind), new(name, kv.Key.Name) };
            if (_ns) l.Add(new("namespace", kv.Key.Namespace));
            if (_workload) l.Add(new("workload", kv.Key.Workload));
            if (_pod) l.Add(new("pod", kv.Key.Pod));
            if (_binary) l.Add(new("binary", kv.Key.Binary));
            return new MetricSample(l, Volatile.Read(ref kv.Value.Value));
        }).OrderBy(x => string.Join('\0', x.Labels.Select(l => l.Value)), StringComparer.Ordinal);

    public void Flush() { }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
