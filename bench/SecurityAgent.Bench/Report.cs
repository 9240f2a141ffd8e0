using System.Globalization;
using System.Text;
using System.Text.Json;

namespace SecurityAgent.Bench;

/// <summary>bench/results/latest.json and latest.md: medians with spread, as ratios to the same run's baseline.</summary>
public static class Report
{
    public static void Write(string repo, bool quick, int reps, List<(string Name, string Description)> workloads,
        List<(string Name, string Description)> configs, Dictionary<(string Config, string Workload), List<Sample>> samples,
        Dictionary<string, string> setupErrors, Dictionary<string, object> extras)
    {
        var (date, kernel, machine) = Machine();
        var results = new Dictionary<string, Dictionary<string, object>>();
        foreach (var (c, _) in configs)
        {
            results[c] = [];
            if (setupErrors.TryGetValue(c, out var error))
                results[c]["setup_error"] = error;
            foreach (var (w, _) in workloads)
            {
                if (!samples.TryGetValue((c, w), out var s)) continue;
                var baseline = Median(samples[("baseline", w)].Select(x => x.OpsPerS));
                var ratios = s.Select(x => x.OpsPerS / baseline).ToList();
                results[c][w] = new Dictionary<string, object?>
                {
                    ["ops_per_s_median"] = Math.Round(Median(s.Select(x => x.OpsPerS))),
                    ["ops_per_s_ratio_to_baseline"] = Math.Round(Median(ratios), 3),
                    ["ops_per_s_ratio_min"] = Math.Round(ratios.Min(), 3),
                    ["ops_per_s_ratio_max"] = Math.Round(ratios.Max(), 3),
                    ["agent_cpu_ms_per_million_ops"] = c == "baseline" ? 0 : Math.Round(Median(s.Select(x => x.Ops > 0 ? x.AgentCpuMs / x.Ops * 1e6 : 0)), 1),
                    ["agent_cpu_us_per_op"] = c == "baseline" ? 0 : Math.Round(Median(s.Select(x => x.Ops > 0 ? x.AgentCpuMs * 1000 / x.Ops : 0)), 2),
                    ["agent_cpu_us_per_event"] = c == "baseline" ? 0 : Math.Round(Median(s.Select(x => x.Delivered > 0 ? x.AgentCpuMs * 1000 / x.Delivered : 0)), 2),
                    ["agent_peak_rss_mb"] = Math.Round(s.Max(x => x.PeakRssMb), 1),
                    ["agent_startup_peak_rss_mb"] = Math.Round(s.Max(x => x.StartupPeakRssMb), 1),
                    ["events_delivered"] = (long)Median(s.Select(x => (double)x.Delivered)),
                    ["events_lost"] = s.Sum(x => x.Lost),
                };
            }
        }
        var doc = new Dictionary<string, object>
        {
            ["mode"] = quick ? "quick" : "full",
            ["date"] = date,
            ["kernel"] = kernel,
            ["machine"] = machine,
            ["repetitions"] = reps,
            ["workloads"] = workloads.ToDictionary(w => w.Name, w => w.Description),
            ["configurations"] = configs.ToDictionary(c => c.Name, c => c.Description),
            ["results"] = results,
            ["extras"] = extras,
        };
        var dir = Path.Combine(repo, "bench", "results");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "latest.json"), JsonSerializer.Serialize(doc, new JsonSerializerOptions { WriteIndented = true }));

        Dictionary<string, object?>? R(string c, string w) => results[c].TryGetValue(w, out var r) ? (Dictionary<string, object?>)r : null;
        string Row(string c, Func<Dictionary<string, object?>, string> cell) => setupErrors.TryGetValue(c, out var e)
            ? $"| {c} | {e} |"
            : $"| {c} | " + string.Join(" | ", workloads.Select(w => R(c, w.Name) is { } r ? cell(r) : "—")) + " |";

        var md = new StringBuilder();
        md.AppendLine($"# Benchmark: `make bench{(quick ? "-quick" : "")}`");
        md.AppendLine();
        md.AppendLine($"{date}, kernel {kernel}, {machine}; {reps} interleaved repetitions, medians (min–max of the ratio).");
        md.AppendLine();
        md.AppendLine("Workload throughput as a ratio to no agent (1.00 = no overhead):");
        md.AppendLine();
        md.AppendLine("| configuration | " + string.Join(" | ", workloads.Select(w => w.Name)) + " |");
        md.AppendLine("|---|" + string.Concat(workloads.Select(_ => "---|")));
        foreach (var (c, _) in configs)
            md.AppendLine(Row(c, r => $"{r["ops_per_s_ratio_to_baseline"]:0.00} ({r["ops_per_s_ratio_min"]:0.00}–{r["ops_per_s_ratio_max"]:0.00})"));
        md.AppendLine();
        md.AppendLine("Observer CPU: ms per million workload ops / µs per event delivered; events delivered / lost (peak RSS during the workloads; "
            + "the agent's own start-up peak, reset before the first workload, in parentheses):");
        md.AppendLine();
        md.AppendLine("| configuration | " + string.Join(" | ", workloads.Select(w => w.Name)) + " | peak RSS MB |");
        md.AppendLine("|---|" + string.Concat(workloads.Select(_ => "---|")) + "---|");
        foreach (var (c, _) in configs.Skip(1))
        {
            double Peak(string key) => workloads.Select(w => R(c, w.Name)).Where(r => r is not null).Select(r => (double)r![key]!).DefaultIfEmpty(0).Max();
            var (rss, startup) = (Peak("agent_peak_rss_mb"), Peak("agent_startup_peak_rss_mb"));
            var row = Row(c, r => $"{r["agent_cpu_ms_per_million_ops"]} / {(long)r["events_delivered"]! switch { 0 => "—", _ => $"{r["agent_cpu_us_per_event"]} µs" }}; {r["events_delivered"]} / {r["events_lost"]}");
            md.AppendLine(setupErrors.ContainsKey(c) ? row : row + $" {rss:0}{(startup > 0 ? $" ({startup:0})" : "")} |");
        }
        md.AppendLine();
        var idle = JsonSerializer.SerializeToElement(extras["idle"]);
        md.AppendLine($"Idle, shipped policies loaded: {idle.GetProperty("cpu_percent")} % of a core over {idle.GetProperty("seconds")} s, RSS {idle.GetProperty("rss_mb")} MB. " +
            $"Start-up to programs attached: {extras["startup_ms_to_attached"]:0} ms ({extras["startup_ms_shipped_policies"]:0} ms with the shipped policies); policy file written to first kill: {extras["policy_add_to_enforcement_ms"]:0} ms "
            + $"(of which the agent's check and load: {extras["policy_add_check_and_load_ms"]:0.#} ms).");
        md.AppendLine();
        if (extras.TryGetValue("kernel_ns_per_open", out var kns))
        {
            md.AppendLine("The kernel side of `open_nomatch` (the BPF programs' run time per open+close, kernel.bpf_stats_enabled on for these runs only, "
                + "the lowest of the repetitions): " + string.Join(", ", ((Dictionary<string, double>)kns).Select(p => $"{p.Key} {p.Value:0} ns")) + ".");
            md.AppendLine();
        }
        md.AppendLine("Event pipeline (policy matching every open, JSON to a file; after a warm-up, medians of the repetitions, min–max): " + string.Join("; ", ((List<object>)extras["pipeline"]).Select(o =>
        {
            var j = JsonSerializer.SerializeToElement(o);
            return $"{j.GetProperty("writers")} writer(s): {j.GetProperty("events_per_s")} events/s ({j.GetProperty("events_per_s_min")}–{j.GetProperty("events_per_s_max")}; "
                + $"with no agent they open {j.GetProperty("writers_alone_events_per_s")}/s), {j.GetProperty("events_delivered")} of {j.GetProperty("events_produced")} delivered, {j.GetProperty("events_lost")} lost, "
                + $"{j.GetProperty("agent_cpu_us_per_event")} µs agent CPU per event ({j.GetProperty("agent_cpu_us_per_event_min")}–{j.GetProperty("agent_cpu_us_per_event_max")}), peak RSS {j.GetProperty("peak_rss_mb")} MB (start-up {j.GetProperty("startup_peak_rss_mb")})";
        })) + ".");
        if (extras.TryGetValue("kernel_build", out var kb))
        {
            md.AppendLine();
            md.AppendLine(KernelBuildSentence(kb));
        }
        md.AppendLine();
        md.AppendLine("Configurations:");
        foreach (var (c, d) in configs) md.AppendLine($"- `{c}`: {d}");
        md.AppendLine("Workloads:");
        foreach (var (w, d) in workloads) md.AppendLine($"- `{w}`: {d}");
        File.WriteAllText(Path.Combine(dir, "latest.md"), md.ToString());
        Console.WriteLine(md.ToString());
    }

    /// <summary>bench/results/kernel-build.json and .md: the kernel build row alone (make bench-kbuild).</summary>
    public static void WriteKernelBuild(string repo, Dictionary<string, object> kernelBuild)
    {
        var (date, kernel, machine) = Machine();
        var dir = Path.Combine(repo, "bench", "results");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "kernel-build.json"), JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["mode"] = "kernel-build", ["date"] = date, ["kernel"] = kernel, ["machine"] = machine, ["kernel_build"] = kernelBuild,
        }, new JsonSerializerOptions { WriteIndented = true }));
        var md = $"# Benchmark: `make bench-kbuild`\n\n{date}, kernel {kernel}, {machine}.\n\n{KernelBuildSentence(kernelBuild)}\n";
        File.WriteAllText(Path.Combine(dir, "kernel-build.md"), md);
        Console.WriteLine(md);
    }

    private static string KernelBuildSentence(object kb) =>
        "Linux 6.1 `make -j2 tinyconfig` build, the mean of two builds in mirrored order: wall time (throughput ratio to no agent; the two builds); "
        + "the build's CPU, all its processes, BPF programs included (ratio to no agent); the agent's own CPU: " + string.Join("; ",
            JsonSerializer.SerializeToElement(kb).EnumerateObject().Select(p => p.Value.ValueKind == JsonValueKind.Object
                ? $"{p.Name} {p.Value.GetProperty("wall_s")} s ({p.Value.GetProperty("ratio_to_baseline")}; {string.Join(" and ", p.Value.GetProperty("builds_s").EnumerateArray().Select(b => b + " s"))}), "
                  + $"CPU {p.Value.GetProperty("build_cpu_s")} s ({p.Value.GetProperty("build_cpu_ratio")})" + (p.Name == "baseline" ? "" : $", agent {p.Value.GetProperty("agent_cpu_s")} s")
                : $"{p.Name}: {p.Value}")) + ".";

    private static (string Date, string Kernel, string Machine) Machine()
    {
        var kernel = File.ReadAllText("/proc/sys/kernel/osrelease").Trim();
        var cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name"))?.Split(':')[1].Trim() ?? "?";
        return (DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture), kernel, $"{Environment.ProcessorCount} cores, {cpu}");
    }

    private static double Median(IEnumerable<double> values)
    {
        var s = values.Order().ToList();
        return s.Count == 0 ? 0 : s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2;
    }
}
