using System.Globalization;
using System.Text;

namespace SecurityAgent.Api;

/// <summary>The agent's metrics in the Prometheus text format (hand-written: the Prometheus exporter package is
/// not available here). Served on --metrics-address and on the API socket at /metrics.</summary>
public static class Metrics
{
    public static string Render(AgentState s)
    {
        var b = new StringBuilder();
        void Metric(string name, string type, string help, IEnumerable<(string Labels, double Value)> samples)
        {
            b.Append("# HELP ").Append(name).Append(' ').AppendLine(help);
            b.Append("# TYPE ").Append(name).Append(' ').AppendLine(type);
            foreach (var (labels, value) in samples)
                b.Append(name).Append(labels.Length > 0 ? "{" + labels + "}" : "").Append(' ').AppendLine(value.ToString(CultureInfo.InvariantCulture));
        }
        static string L(params (string K, string V)[] kv) => string.Join(',', kv.Select(x => $"{x.K}=\"{x.V.Replace("\\", "\\\\").Replace("\"", "\\\"")}\""));

        var c = s.Pipeline?.Counters;
        if (c is not null)
        {
            Metric("secagent_events_total", "counter", "Events exported, by type and policy.",
                c.ByType.Select(kv => (L(("type", kv.Key.Type), ("policy", kv.Key.Policy)), (double)kv.Value)));
            Metric("secagent_ringbuf_received_total", "counter", "Records read from the kernel ring buffer.", [("", c.Received)]);
            Metric("secagent_ringbuf_lost_total", "counter", "Records the kernel could not write (ring buffer full).", [("", c.KernelLost)]);
            Metric("secagent_pipeline_dropped_total", "counter", "Records dropped because the pipeline queue was full.", [("", c.ChannelDropped)]);
            Metric("secagent_decode_errors_total", "counter", "Malformed kernel records.", [("", c.DecodeErrors)]);
            Metric("secagent_user_space_filtered_total", "counter", "Policy events decided against in user space.", [("", c.UserSpaceFiltered)]);
        }
        if (s.Pipeline is { } p)
        {
            Metric("secagent_process_cache_size", "gauge", "Processes in the process cache.", [("", p.Cache.Count)]);
            Metric("secagent_process_cache_evictions_total", "counter", "Entries evicted at the cache's cap.", [("", p.Cache.Evictions)]);
        }
        var hooks = s.Policies.HookStats().Select(h => (Labels: L(("policy", h.Policy), ("hook", h.Hook)), St: h.Stats)).ToList();
        Metric("secagent_hook_seen_total", "counter", "Calls a policy hook saw in the kernel.", hooks.Select(h => (h.Labels, (double)h.St.Seen)));
        Metric("secagent_hook_matched_total", "counter", "Calls a hook's selectors matched in the kernel.", hooks.Select(h => (h.Labels, (double)h.St.Matched)));
        Metric("secagent_hook_posted_total", "counter", "Events a hook sent to user space.", hooks.Select(h => (h.Labels, (double)h.St.Posted)));
        Metric("secagent_hook_enforced_total", "counter", "Enforcement actions carried out in the kernel.", hooks.Select(h => (h.Labels, (double)h.St.Enforced)));
        Metric("secagent_hook_rate_limited_total", "counter", "Posts suppressed by rateLimit.", hooks.Select(h => (h.Labels, (double)h.St.RateLimited)));
        Metric("secagent_export_written_total", "counter", "Events written by an exporter.", [(L(("exporter", "json")), s.Exporter?.Written ?? 0)]);
        Metric("secagent_export_failed_total", "counter", "Exporter write failures.", [(L(("exporter", "json")), s.Exporter?.Failed ?? 0)]);
        Metric("secagent_export_dropped_total", "counter", "Events an exporter dropped (full queue, slow reader).",
            [(L(("exporter", "api-stream")), s.Live.Dropped), .. s.Otlp is { } o ? new[] { (L(("exporter", "otlp")), (double)o.Dropped) } : []]);
        if (s.Otlp is { } q)
        {
            Metric("secagent_export_queue_depth", "gauge", "Events waiting in an exporter's queue.", [(L(("exporter", "otlp")), q.QueueDepth)]);
            Metric("secagent_export_sent_total", "counter", "Events an exporter delivered.", [(L(("exporter", "otlp")), q.Delivered)]);
        }
        return b.ToString();
    }
}
