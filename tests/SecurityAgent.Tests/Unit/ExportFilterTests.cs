using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using SecurityAgent.Events;
using SecurityAgent.Export;
using SecurityAgent.Processes;

namespace SecurityAgent.Tests.Unit;

public class ExportFilterTests
{
    private sealed class Collect : IEventExporter
    {
        public List<AgentEvent> Events { get; } = [];
        public void Export(AgentEvent e) => Events.Add(e);
        public void Flush() { }
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    private static ProcessInfo Proc(string binary, params string[] args) => new()
    {
        ExecId = "x", Pid = 7, StartTime = 1, Ktime = 1, Binary = binary, Args = [binary, .. args], Cwd = "/",
        Creds = new Credentials(0, 0, 0, 0), Origin = ProcessOrigin.Exec,
    };

    private static AgentEvent Exec(string binary, params string[] args) => new ProcessExecEvent(1, Proc(binary, args), null);
    private static AgentEvent Exit(string binary) => new ProcessExitEvent(1, Proc(binary), null, 0, 0);

    [Fact]
    public void The_allow_list_keeps_matching_events_and_the_deny_list_removes_them()
    {
        var sink = new Collect();
        var f = new FilteringExporter([sink],
            ExportFilter.ParseList("""{"event_set":["PROCESS_EXEC"],"binary_regex":["^/usr/bin/"]}"""),
            ExportFilter.ParseList("""{"binary_regex":["curl$"]}"""), 0, TimeProvider.System);
        f.Export(Exec("/usr/bin/ls"));
        f.Export(Exit("/usr/bin/ls"));       // not in event_set
        f.Export(Exec("/tmp/x"));            // binary not allowed
        f.Export(Exec("/usr/bin/curl"));     // denied
        Assert.Equal(["/usr/bin/ls"], sink.Events.Select(e => e.Process.Binary));
        Assert.Equal(3, f.Filtered);
    }

    [Fact]
    public void Several_filter_lines_are_alternatives()
    {
        var allow = ExportFilter.ParseList("{\"binary_regex\":[\"ls$\"]}\n{\"event_set\":[\"PROCESS_EXIT\"]}");
        Assert.Contains(allow, x => x.Matches(Exec("/bin/ls")));
        Assert.Contains(allow, x => x.Matches(Exit("/bin/cat")));
        Assert.DoesNotContain(allow, x => x.Matches(Exec("/bin/cat")));
    }

    [Fact]
    public void An_unknown_filter_field_is_an_error_not_ignored()
    {
        Assert.Contains("binary_regexp", Assert.Throws<FormatException>(() => ExportFilter.ParseList("""{"binary_regexp":["x"]}""")).Message);
    }

    [Fact]
    public void Redaction_replaces_the_captured_secret_in_arguments()
    {
        var r = Redactor.Parse("""{"match":{"binary_regex":["mysql$"]},"redact":["--password(?:\\s+|=)(\\S+)"]}""");
        Assert.Equal("-u root --password *****", r.Redact("/usr/bin/mysql", "-u root --password hunter2"));
        Assert.Equal("-u root --password=*****", r.Redact("/usr/bin/mysql", "-u root --password=hunter2"));
        Assert.Equal("--password hunter2", r.Redact("/usr/bin/other", "--password hunter2"));
        Assert.Throws<FormatException>(() => Redactor.Parse("""{"redact":["--password \\S+"]}""")); // nothing to redact
    }

    [Fact]
    public void Field_filters_include_or_exclude_paths_of_the_event()
    {
        var line = """{"process_exec":{"process":{"pid":1,"binary":"/bin/ls","arguments":"-l"},"parent":{"pid":0}},"node_name":"n","time":"t"}""";
        var include = JsonDocument.Parse(FieldFilter.Apply(FieldFilter.ParseList("""{"fields":"process.binary,process.pid","action":"INCLUDE"}"""), line)).RootElement;
        Assert.Equal("""{"process":{"binary":"/bin/ls","pid":1}}""", include.GetProperty("process_exec").GetRawText());
        Assert.Equal("n", include.GetProperty("node_name").GetString());
        var exclude = JsonDocument.Parse(FieldFilter.Apply(FieldFilter.ParseList("""{"fields":"parent,process.arguments","action":"EXCLUDE"}"""), line)).RootElement;
        Assert.Equal("""{"process":{"pid":1,"binary":"/bin/ls"}}""", exclude.GetProperty("process_exec").GetRawText());
    }

    [Fact]
    public void The_rate_limit_counts_what_it_drops_and_reports_it_when_the_minute_is_over()
    {
        var clock = new ManualClock();
        var sink = new Collect();
        var reported = new List<long>();
        var f = new FilteringExporter([sink], [], [], ratePerMinute: 10, clock, reported.Add);
        for (int i = 0; i < 25; i++) f.Export(Exec("/bin/x"));
        Assert.Equal(10, sink.Events.Count);
        Assert.Equal(15, f.RateLimited);
        clock.Advance(TimeSpan.FromSeconds(61));
        f.Export(Exec("/bin/x"));
        Assert.Equal([15L], reported);
        Assert.Equal(11, sink.Events.Count);
    }

    [Fact]
    public void The_rate_limit_notice_is_a_valid_event_line()
    {
        using var ms = new MemoryStream();
        var exporter = new JsonLinesExporter(new StreamSink(ms), new JsonEventFormatter("n", new BootClock(0)), NullLogger.Instance);
        exporter.WriteRateLimitInfo(42);
        exporter.Flush();
        var line = Encoding.UTF8.GetString(ms.ToArray()).Trim();
        JsonFormatTests.AssertValid(line);
        Assert.StartsWith("""{"rate_limit_info":{"number_of_dropped_process_events":"42"},""", line); // uint64: a string in protojson
    }

    [Fact]
    public void An_event_rendered_into_the_file_batch_reads_the_same_for_the_next_exporter_and_after_the_batch_is_written()
    {
        using var ms = new MemoryStream();
        var formatter = new JsonEventFormatter("n", new BootClock(0));
        var exporter = new JsonLinesExporter(new StreamSink(ms), formatter, NullLogger.Instance);
        var first = Exec("/bin/first", "a");
        var second = Exec("/bin/second", "b");
        var alone = Encoding.UTF8.GetString(new JsonEventFormatter("n", new BootClock(0)).Render(first));

        exporter.Export(first);
        Assert.Equal(alone, Encoding.UTF8.GetString(formatter.Render(first))); // as an OTLP exporter after the file one reads it
        exporter.Flush();
        Assert.Equal(alone, Encoding.UTF8.GetString(formatter.Render(first))); // the batch was reused: rendered again
        exporter.Export(second);
        exporter.Export(first); // rendered already for another exporter: copied, not rendered again
        exporter.Flush();

        var lines = Encoding.UTF8.GetString(ms.ToArray()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Length);
        Assert.Equal(alone, lines[0]);
        Assert.Contains("/bin/second", lines[1]);
        Assert.Equal(alone, lines[2]);
    }

    [Fact]
    public void A_name_that_comes_back_is_the_same_string_and_names_sharing_a_slot_keep_their_own_text()
    {
        var once = Utf8Strings.Get("/tmp/secagent-cache-test/watched/f"u8);
        Assert.Same(once, Utf8Strings.Get("/tmp/secagent-cache-test/watched/f"u8.ToArray()));
        // Same length, first and last 8 bytes: the same slot; each still reads as itself.
        Assert.Equal("/tmp/secagent-AAAA-test/f", Utf8Strings.Get("/tmp/secagent-AAAA-test/f"u8));
        Assert.Equal("/tmp/secagent-BBBB-test/f", Utf8Strings.Get("/tmp/secagent-BBBB-test/f"u8));
        Assert.Equal("/tmp/secagent-AAAA-test/f", Utf8Strings.Get("/tmp/secagent-AAAA-test/f"u8));
        Assert.Equal("", Utf8Strings.Get(""u8));
        Assert.Equal("a\uFFFDb", Utf8Strings.Get([(byte)'a', 0xff, (byte)'b'])); // invalid UTF-8 as the decoder replaces it
        var longName = new string('x', 300);
        Assert.Equal(longName, Utf8Strings.Get(Encoding.UTF8.GetBytes(longName)));
    }
}
