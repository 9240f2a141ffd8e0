using System.Text.RegularExpressions;
using SecurityAgent.Api;
using SecurityAgent.Containers;
using SecurityAgent.Events;
using SecurityAgent.Export;
using SecurityAgent.Kernel;
using SecurityAgent.Policies;
using SecurityAgent.Processes;

namespace SecurityAgent.Tests.Unit;

public class MetricsTests
{
    private static ProcessInfo Proc(string binary, PodInfo? pod = null) => new()
    {
        ExecId = "eA==", Pid = 42, StartTime = 1, Ktime = 1, Binary = binary, Args = [binary], Cwd = "/",
        Creds = new Credentials(0, 0, 0, 0), Origin = ProcessOrigin.Exec, Pod = pod,
    };

    private static PodInfo Pod(string ns, string name) => new(ns, name, "uid", new Dictionary<string, string>(), name.Split('-')[0], "Deployment", null);

    private static PolicyMatchEvent Hit(ProcessInfo p) => new(1, p, null, "reads",
        new HookPlan(HookKind.Kprobe, Mechanism.Tracepoint, "syscalls/sys_enter_openat", "__x64_sys_openat", "", [], [], null, []), "KPROBE_ACTION_POST",
        Enforce: false, Enforced: false, SafetyRefused: false, "kernel", []);

    /// <summary>Tetragon's metric names (docs/content/en/docs/reference/metrics.md), with our prefix.</summary>
    [Theory]
    [InlineData("secagent_build_info")]
    [InlineData("secagent_events_total")]
    [InlineData("secagent_policy_events_total")]
    [InlineData("secagent_events_missing_process_info_total")]
    [InlineData("secagent_tracingpolicy_loaded")]
    [InlineData("secagent_tracingpolicy_selector_actions_total")]
    [InlineData("secagent_observer_ringbuf_events_received_total")]
    [InlineData("secagent_observer_ringbuf_events_lost_total")]
    [InlineData("secagent_process_cache_size")]
    [InlineData("secagent_process_cache_evictions_total")]
    [InlineData("secagent_events_exported_total")]
    [InlineData("secagent_events_exported_bytes_total")]
    [InlineData("secagent_events_last_exported_timestamp")]
    [InlineData("secagent_path_changes_total")]
    [InlineData("secagent_path_change_overflows_total")]
    [InlineData("secagent_after_call_notes_lost_total")]
    [InlineData("process_cpu_seconds_total")]
    [InlineData("process_resident_memory_bytes")]
    [InlineData("process_start_time_seconds")]
    [InlineData("process_open_fds")]
    public void The_metrics_have_tetragons_names(string name) =>
        Assert.Contains($"# TYPE {name} ", Metrics.Render(Metrics.Collect(new AgentState())));

    [Fact]
    public void The_text_is_valid_prometheus_exposition_format_and_build_info_names_the_commit()
    {
        var text = Metrics.Render(Metrics.Collect(new AgentState()));
        var sample = new Regex("""^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? -?[0-9.e+E-]+$""");
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            Assert.True(line.StartsWith("# HELP ") || line.StartsWith("# TYPE ") || sample.IsMatch(line), line);
        Assert.Matches("secagent_build_info\\{version=\"" + Regex.Escape(Hosting.BuildInfo.Version) + "\",commit=\"[^\"]+\",time=\"[^\"]+\",runtime=\"[^\"]+\"\\} 1", text);
        Assert.Equal(text.Split('\n').Count(l => l.StartsWith("# TYPE ")), text.Split('\n').Where(l => l.StartsWith("# TYPE ")).Distinct().Count());
    }

    [Fact]
    public void Events_are_counted_by_type_and_policy_and_labels_only_come_when_asked_for()
    {
        var off = new EventMetrics([]);
        off.Export(new ProcessExecEvent(1, Proc("/bin/a", Pod("shop", "cart-1")), null));
        off.Export(Hit(Proc("/bin/a")));
        off.Export(new ProcessExecEvent(1, Proc(""), null));
        Assert.Equal(["type=process_exec policy= 2", "type=process_kprobe policy=reads 1"], Lines(off.Events()));
        Assert.Equal(["policy=reads hook=__x64_sys_openat 1"], Lines(off.PolicyEvents()));
        Assert.Equal(1, off.MissingProcessInfo);

        var on = EventMetrics.FromFilter("namespace,pod");
        on.Export(new ProcessExecEvent(1, Proc("/bin/a", Pod("shop", "cart-1")), null));
        on.Export(new ProcessExecEvent(1, Proc("/bin/a"), null));
        Assert.Equal(["type=process_exec policy= namespace= pod= 1", "type=process_exec policy= namespace=shop pod=cart-1 1"], Lines(on.Events()));
    }

    [Fact]
    public void Label_sets_beyond_the_limit_are_counted_under_overflow_so_the_series_stay_bounded()
    {
        var m = new EventMetrics(["pod", "binary"], maxSeries: 10);
        for (int i = 0; i < 100; i++)
            m.Export(new ProcessExecEvent(1, Proc($"/bin/tool{i}", Pod("ns", $"pod-{i}")), null));
        var lines = Lines(m.Events());
        Assert.Equal(11, lines.Count);
        Assert.Contains("type=process_exec policy= pod=overflow binary=overflow 90", lines);
        Assert.Equal(90, m.Overflowed);
    }

    private static List<string> Lines(IEnumerable<MetricSample> samples) =>
        samples.Select(s => string.Join(' ', s.Labels.Select(l => $"{l.Key}={l.Value}")) + " " + s.Value).ToList();
}
