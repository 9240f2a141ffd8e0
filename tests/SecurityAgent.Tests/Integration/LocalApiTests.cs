using System.Text.Json;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>The CLI against a running agent through its local API socket.</summary>
[Collection("kernel")]
public class LocalApiTests
{
    private static (int Code, string Stdout, string Stderr) Cli(AgentProcess agent, params string[] args) =>
        Run.Wait("dotnet", [Repo.AgentDll, .. args, "--api-socket", agent.Socket]);

    [Fact]
    public void Policy_add_list_mode_and_delete_work_against_a_running_agent_and_status_shows_the_hooks()
    {
        using var dir = new TempDir();
        var victim = dir.CopyBinary("/usr/bin/cat", "api-victim");
        File.WriteAllText(dir.File("secret"), "S\n");
        File.WriteAllText(dir.File("p.yaml"), TestPolicies.OpenatKill("api-policy", victim, dir.File("secret")));
        using var agent = new AgentProcess();

        var add = Cli(agent, "policy", "add", dir.File("p.yaml"));
        Assert.True(add.Code == 0, add.Stderr);
        Assert.Equal(137, Run.Wait(victim, [dir.File("secret")]).Code);

        var list = JsonDocument.Parse(Cli(agent, "policy", "list", "-o", "json").Stdout).RootElement;
        var p = list.EnumerateArray().Single(x => x.GetProperty("name").GetString() == "api-policy");
        Assert.Equal("enforce", p.GetProperty("mode").GetString());
        Assert.Equal("tracepoint", p.GetProperty("hooks")[0].GetProperty("mechanism").GetString());
        Assert.True(p.GetProperty("hooks")[0].GetProperty("enforced").GetInt64() >= 1);

        Assert.Equal(0, Cli(agent, "policy", "mode", "api-policy", "monitor").Code);
        Assert.Equal(0, Run.Wait(victim, [dir.File("secret")]).Code);

        var status = JsonDocument.Parse(Cli(agent, "status", "-o", "json").Stdout).RootElement;
        Assert.True(status.GetProperty("kernel").GetProperty("mechanisms").GetProperty("tracepoint").GetBoolean());
        Assert.Equal("monitor", status.GetProperty("policies").EnumerateArray().Single(x => x.GetProperty("name").GetString() == "api-policy").GetProperty("mode").GetString());
        Assert.True(status.GetProperty("events").GetProperty("exported").GetInt64() > 0);

        Assert.Equal(0, Cli(agent, "policy", "delete", "api-policy").Code);
        Assert.DoesNotContain("api-policy", Cli(agent, "policy", "list").Stdout);
    }

    [Fact]
    public void A_broken_policy_added_through_the_api_is_refused_with_file_line_column()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("bad.yaml"), TestPolicies.OpenatKill("bad", "/x", "/y").Replace("selectors:", "selectros:"));
        using var agent = new AgentProcess();
        var r = Cli(agent, "policy", "add", dir.File("bad.yaml"));
        Assert.Equal(1, r.Code);
        Assert.Matches(@"\(request\):15:5: spec\.tracepoints\[0\]\.selectros: unknown field", r.Stderr);
    }

    [Fact]
    public async Task Events_stream_in_compact_form_one_readable_line_per_event()
    {
        using var agent = new AgentProcess();
        using var dir = new TempDir();
        var tool = dir.CopyBinary("/usr/bin/true", "compact-tool");
        using var stream = Run.Start("dotnet", [Repo.AgentDll, "events", "-o", "compact", "--binary-regex", "compact-tool$",
            "--deny", """{"event_set":["PROCESS_KPROBE"]}""", "--api-socket", agent.Socket]);
        var lines = new List<string>();
        var reader = Task.Run(async () => { while (await stream.StandardOutput.ReadLineAsync() is { } l) lock (lines) lines.Add(l); });
        // A stream attached between a process's exec and its exit sees only the exit: run the tool until both arrived.
        WaitUntil(() => Status(agent).GetProperty("clients").GetArrayLength() == 1, "the events client attached");
        for (int i = 0; i < 50 && !(Has(lines, "🚀 process ") && Has(lines, "💥 exit ")); i++)
        {
            Run.Wait(tool, ["arg-one"]);
            Thread.Sleep(200);
        }
        stream.Kill();
        stream.WaitForExit();
        await reader.WaitAsync(TimeSpan.FromSeconds(10));
        List<string> seen;
        lock (lines) seen = [.. lines];
        Assert.Contains(seen, l => l.StartsWith("🚀 process ") && l.Contains(tool + " arg-one"));
        Assert.Contains(seen, l => l.StartsWith("💥 exit    ") && l.Contains(tool));
        Assert.All(seen, l => Assert.Contains("compact-tool", l)); // the binary filter applied
    }

    private static bool Has(List<string> lines, string prefix) { lock (lines) return lines.Any(l => l.StartsWith(prefix)); }

    [Fact]
    public async Task Prometheus_metrics_show_event_counts_kernel_hook_counters_and_losses()
    {
        using var dir = new TempDir();
        var victim = dir.CopyBinary("/usr/bin/cat", "metrics-victim");
        File.WriteAllText(dir.File("s"), "x");
        int port;
        using (var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0)) { probe.Start(); port = ((System.Net.IPEndPoint)probe.LocalEndpoint).Port; }
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = TestPolicies.OpenatKill("metrics-policy", victim, dir.File("s"), mode: "monitor") },
            "--metrics-address", $"127.0.0.1:{port}");
        Run.Wait(victim, [dir.File("s")]);
        agent.Events.WaitFor(e => e.TryGetProperty("process_tracepoint", out _), "policy event");
        using var http = new HttpClient();
        var text = await http.GetStringAsync($"http://127.0.0.1:{port}/metrics");
        double Value(string series) => double.Parse(text.Split('\n').Single(l => l.StartsWith(series + " ")).Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(Value("secagent_events_total{type=\"process_exec\",policy=\"\"}") >= 1);
        Assert.Equal(1, Value("secagent_events_total{type=\"process_tracepoint\",policy=\"metrics-policy\"}"));
        Assert.True(Value("secagent_hook_seen_total{policy=\"metrics-policy\",hook=\"syscalls/sys_enter_openat\"}") > Value("secagent_hook_matched_total{policy=\"metrics-policy\",hook=\"syscalls/sys_enter_openat\"}"));
        Assert.Equal(0, Value("secagent_observer_ringbuf_events_lost_total"));
        Assert.Contains("# TYPE secagent_process_cache_size gauge", text);
        // The TCP listener serves metrics only: the API stays on the root-only socket.
        Assert.Equal(System.Net.HttpStatusCode.NotFound, (await http.GetAsync($"http://127.0.0.1:{port}/v1/policies")).StatusCode);
    }

    [Fact]
    public void A_client_gets_every_event_of_a_burst_in_order_and_one_that_does_not_read_is_dropped_counted_and_disconnected_while_the_file_gets_all()
    {
        using var dir = new TempDir();
        var loop = dir.CopyBinary(Repo.File_("build", "bench", "openloop"), "openloop");
        var watched = dir.File("watched.txt");
        File.WriteAllText(watched, "x\n");
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = TestPolicies.OpenatKill("live-burst", loop, watched, mode: "monitor") });
        using var reading = new StreamClient(agent.Socket, "/v1/events?policy=live-burst", read: true);
        using var stalled = new StreamClient(agent.Socket, "/v1/events?policy=live-burst", read: false);
        WaitUntil(() => Status(agent).GetProperty("clients").GetArrayLength() == 2, "both clients attached");
        long stalledId = Status(agent).GetProperty("clients").EnumerateArray().Max(c => c.GetProperty("id").GetInt64());

        // A burst within a client's bound (8 chunks of 256 KiB, about 2,000 events of ~1 KB): the reading client gets all of it, in the file's order.
        const int First = 1500, Second = 20_000;
        Assert.Equal(0, Run.Wait(loop, [watched, First.ToString()]).Code);
        WaitUntil(() => reading.Count >= First, $"{First} events on the reading client");
        var fileTimes = FileTimes(agent, "live-burst");
        Assert.Equal(fileTimes.Take(First), reading.Events.Take(First).Select(Time));

        // A burst far over the bound: the client that never reads is dropped, counted, then disconnected; the file gets every event.
        Assert.Equal(0, Run.Wait(loop, [watched, Second.ToString()]).Code);
        WaitUntil(() => Status(agent).GetProperty("disconnected").GetInt64() == 1, "the stalled client disconnected", TimeSpan.FromSeconds(60));
        WaitUntil(() => FileTimes(agent, "live-burst").Count == First + Second, "every event in the export file");
        var stalledLines = stalled.ReadToEnd(TimeSpan.FromSeconds(30));
        var status = Status(agent);
        var remaining = status.GetProperty("clients").EnumerateArray().ToList();
        Assert.True(remaining.Count == 1 && remaining[0].GetProperty("id").GetInt64() != stalledId,
            $"only the reading client is attached: {status} (the reading client has {reading.Events.Count} events, its connection {(reading.Ended ? "ended" : "open")})");
        long readingDropped = remaining[0].GetProperty("dropped").GetInt64();
        long stalledDropped = status.GetProperty("dropped").GetInt64() - readingDropped;
        int stalledEvents = stalledLines.Count(l => l.Contains("process_tracepoint"));
        Assert.True(stalledDropped > 0 && stalledEvents + stalledDropped >= First + Second,
            $"the stalled client received {stalledEvents} and {stalledDropped} were counted as dropped, of {First + Second}");
        Assert.Equal(fileTimes.Take(stalledEvents), stalledLines.Where(l => l.Contains("process_tracepoint")).Select(l => Time(JsonDocument.Parse(l).RootElement)));
        Assert.Equal(1, Metric(agent, "secagent_api_stream_disconnected_total"));
        Assert.Equal(status.GetProperty("dropped").GetInt64(), Metric(agent, "secagent_export_dropped_total{exporter=\"api-stream\"}"));

        // The reading client: its events are in the file's order with nothing skipped except where a notice says how many.
        WaitUntil(() => reading.Count + reading.NoticedDrops + Status(agent).GetProperty("clients")[0].GetProperty("dropped").GetInt64() >= First + Second,
            "every event on the reading client or counted as dropped for it");
        var all = FileTimes(agent, "live-burst");
        int at = 0;
        foreach (var t in reading.Events.Select(Time))
        {
            while (at < all.Count && all[at] != t) at++;
            Assert.True(at < all.Count, $"an event on the reading client out of the file's order: {t}");
        }
    }

    private static string Time(JsonElement e) => e.GetProperty("time").GetString()!;

    private static List<string> FileTimes(AgentProcess agent, string policy) =>
        agent.Events.Where(e => e.TryGetProperty("process_tracepoint", out var b) && b.GetProperty("policy_name").GetString() == policy).Select(Time).ToList();

    private static JsonElement Status(AgentProcess agent) =>
        JsonDocument.Parse(Cli(agent, "status", "-o", "json").Stdout).RootElement.GetProperty("exporters").EnumerateArray().Single(x => x.GetProperty("name").GetString() == "api-stream");

    private static double Metric(AgentProcess agent, string series)
    {
        using var c = new StreamClient(agent.Socket, "/metrics", read: false);
        var text = string.Join('\n', c.ReadToEnd(TimeSpan.FromSeconds(10)));
        return double.Parse(text.Split('\n').Single(l => l.StartsWith(series + " ")).Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
    }

    private static void WaitUntil(Func<bool> done, string what, TimeSpan? timeout = null)
    {
        for (var until = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(20)); !done(); Thread.Sleep(100))
            if (DateTime.UtcNow > until) throw new TimeoutException("waited for " + what);
    }

    /// <summary>A raw HTTP/1.1 GET on the API socket; with read, a thread collects the NDJSON body's events and the drop
    /// notices as they come; without, nothing is read until <see cref="ReadToEnd"/>.</summary>
    private sealed class StreamClient : IDisposable
    {
        private readonly System.Net.Sockets.Socket _s = new(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        private readonly List<string> _events = [];
        private volatile bool _ended;
        public bool Ended => _ended;
        private long _noticed;
        private readonly Thread? _reader;

        public StreamClient(string socket, string target, bool read)
        {
            _s.Connect(new System.Net.Sockets.UnixDomainSocketEndPoint(socket));
            _s.Send(System.Text.Encoding.ASCII.GetBytes($"GET {target} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n"));
            if (read) (_reader = new Thread(() => ReadLines(Timeout.InfiniteTimeSpan, Add)) { IsBackground = true }).Start();
        }

        public List<JsonElement> Events { get { lock (_events) return [.. _events.Select(l => JsonDocument.Parse(l).RootElement.Clone())]; } }
        public int Count { get { lock (_events) return _events.Count; } }
        public long NoticedDrops => Interlocked.Read(ref _noticed);

        private void Add(string line)
        {
            if (!line.StartsWith('{')) return;
            if (line.StartsWith("{\"stream_drop_info\""))
                Interlocked.Add(ref _noticed, long.Parse(JsonDocument.Parse(line).RootElement.GetProperty("stream_drop_info").GetProperty("number_of_dropped_process_events").GetString()!));
            else lock (_events) _events.Add(line);
        }

        public List<string> ReadToEnd(TimeSpan timeout)
        {
            var lines = new List<string>();
            ReadLines(timeout, lines.Add);
            return lines;
        }

        private void ReadLines(TimeSpan timeout, Action<string> line)
        {
            _s.ReceiveTimeout = timeout == Timeout.InfiniteTimeSpan ? 0 : (int)timeout.TotalMilliseconds;
            var buf = new byte[64 * 1024];
            var pending = new List<byte>();
            try
            {
                int n;
                while ((n = _s.Receive(buf)) > 0)
                {
                    pending.AddRange(buf.AsSpan(0, n));
                    int start = 0, nl;
                    while ((nl = pending.IndexOf((byte)'\n', start)) >= 0)
                    {
                        line(System.Text.Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(pending)[start..nl]).TrimEnd('\r'));
                        start = nl + 1;
                    }
                    pending.RemoveRange(0, start);
                }
            }
            catch (System.Net.Sockets.SocketException) { }
            catch (ObjectDisposedException) { }
            _ended = true;
        }

        public void Dispose()
        {
            _s.Dispose();
            _reader?.Join(TimeSpan.FromSeconds(5));
        }
    }

    [Fact]
    public void A_non_root_user_gets_a_permission_error_from_the_socket()
    {
        using var agent = new AgentProcess();
        File.SetUnixFileMode(agent.Dir.Path, (UnixFileMode)0b111_101_101); // the directory is open: only the socket's 0600 guards it
        var r = Run.Wait("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "env", "HOME=/tmp", "DOTNET_CLI_HOME=/tmp",
            "dotnet", Repo.AgentDll, "status", "--api-socket", agent.Socket]);
        Assert.NotEqual(0, r.Code);
        Assert.Contains("permission denied", r.Stderr);
        Assert.Contains("root only", r.Stderr);
    }
}
