using System.Diagnostics.Metrics;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using SecurityAgent.Api;

namespace SecurityAgent.Export.Otlp;

/// <summary>The agent's own metrics over OTLP, with the OpenTelemetry SDK: the same counters /metrics shows,
/// as observable instruments read at each export.</summary>
public static class OtlpMetrics
{
    public static IDisposable Start(AgentState s, OtlpOptions opt, int intervalMs, Func<OtlpLogExporter?> otlp)
    {
        var meter = new Meter("SecurityAgent");
        meter.CreateObservableCounter("secagent.events", () => s.Pipeline?.Counters.ByType
            .Select(kv => new Measurement<long>(kv.Value, new KeyValuePair<string, object?>("type", kv.Key.Type), new KeyValuePair<string, object?>("policy", kv.Key.Policy))) ?? []);
        meter.CreateObservableCounter("secagent.ringbuf.lost", () => s.Pipeline?.Counters.KernelLost ?? 0);
        meter.CreateObservableCounter("secagent.pipeline.dropped", () => s.Pipeline?.Counters.ChannelDropped ?? 0);
        meter.CreateObservableGauge("secagent.process_cache.size", () => s.Pipeline?.Cache.Count ?? 0);
        meter.CreateObservableCounter("secagent.hook.enforced", () => Hooks(s, st => st.Enforced));
        meter.CreateObservableCounter("secagent.hook.seen", () => Hooks(s, st => st.Seen));
        meter.CreateObservableCounter("secagent.hook.matched", () => Hooks(s, st => st.Matched));
        meter.CreateObservableCounter("secagent.export.dropped", () => new Measurement<long>(otlp()?.Dropped ?? 0, new KeyValuePair<string, object?>("exporter", "otlp")));
        meter.CreateObservableGauge("secagent.export.queue_depth", () => new Measurement<int>(otlp()?.QueueDepth ?? 0, new KeyValuePair<string, object?>("exporter", "otlp")));
        var provider = Sdk.CreateMeterProviderBuilder()
            .AddMeter("SecurityAgent")
            .AddOtlpExporter((e, reader) =>
            {
                e.Protocol = opt.Protocol == OtlpProtocol.HttpProtobuf ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc;
                e.Endpoint = opt.Protocol == OtlpProtocol.HttpProtobuf ? new Uri(opt.Endpoint, "/v1/metrics") : opt.Endpoint;
                e.Headers = string.Join(',', opt.Headers.Select(h => $"{h.Key}={h.Value}"));
                reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = intervalMs;
            })
            .Build();
        return new Both(provider, meter);
    }

    private static IEnumerable<Measurement<long>> Hooks(AgentState s, Func<Sensors.HookStats, ulong> pick) =>
        s.Policies.HookStats().Select(h => new Measurement<long>((long)pick(h.Stats),
            new KeyValuePair<string, object?>("policy", h.Policy), new KeyValuePair<string, object?>("hook", h.Hook))).ToList();

    private sealed class Both(IDisposable a, IDisposable b) : IDisposable
    {
        public void Dispose() { a.Dispose(); b.Dispose(); }
    }
}
