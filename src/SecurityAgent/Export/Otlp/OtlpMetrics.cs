using System.Diagnostics.Metrics;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using SecurityAgent.Api;

namespace SecurityAgent.Export.Otlp;

/// <summary>The agent's metrics over OTLP with the OpenTelemetry SDK: the families /metrics shows (same names; a counter
/// without its _total suffix, which Prometheus-side translation adds back), as observable instruments read at each
/// export, under the same resource as the log records.</summary>
public static class OtlpMetrics
{
    public static IDisposable Start(AgentState s, OtlpOptions opt, int intervalMs)
    {
        var meter = new Meter("SecurityAgent");
        var snapshot = new Snapshot(s);
        foreach (var family in Metrics.Collect(new AgentState()))
        {
            var name = family.Name;
            if (family.Type == Api.MetricType.Counter)
                meter.CreateObservableCounter(name.EndsWith("_total", StringComparison.Ordinal) ? name[..^"_total".Length] : name, () => snapshot.Measurements(name), description: family.Help);
            else
                meter.CreateObservableGauge(name, () => snapshot.Measurements(name), description: family.Help);
        }
        var provider = Sdk.CreateMeterProviderBuilder()
            .ConfigureResource(r => r.Clear().AddAttributes(opt.Resource.Select(kv => new KeyValuePair<string, object>(kv.Key, kv.Value))))
            .AddMeter("SecurityAgent")
            .AddOtlpExporter((e, reader) =>
            {
                e.Protocol = opt.Protocol == OtlpProtocol.HttpProtobuf ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc;
                // gRPC: the SDK resolves the service path against the endpoint; a trailing slash keeps a path prefix.
                e.Endpoint = opt.Protocol == OtlpProtocol.HttpProtobuf ? opt.SignalUri("v1/metrics") : opt.SignalUri("");
                e.Headers = string.Join(',', opt.Headers.Select(h => $"{h.Key}={Uri.EscapeDataString(h.Value)}"));
                reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = intervalMs;
            })
            .Build();
        return new Both(provider, meter);
    }

    /// <summary>One collection per export: every instrument's callback of an export reads the same snapshot.</summary>
    private sealed class Snapshot(AgentState s)
    {
        private Dictionary<string, MetricFamily>? _families;
        private long _takenMs;

        public IEnumerable<Measurement<double>> Measurements(string family)
        {
            lock (this)
            {
                long now = Environment.TickCount64;
                if (_families is null || now - _takenMs > 500)
                {
                    _families = Metrics.Collect(s).ToDictionary(f => f.Name);
                    _takenMs = now;
                }
                return _families[family].Samples.Select(x => new Measurement<double>(x.Value,
                    x.Labels.Select(l => new KeyValuePair<string, object?>(l.Key, l.Value)).ToArray())).ToList();
            }
        }
    }

    private sealed class Both(IDisposable a, IDisposable b) : IDisposable
    {
        public void Dispose() { a.Dispose(); b.Dispose(); }
    }
}
