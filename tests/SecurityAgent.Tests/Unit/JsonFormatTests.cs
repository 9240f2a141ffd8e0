using System.Text;
using System.Text.Json;
using NJsonSchema;
using SecurityAgent.Events;
using SecurityAgent.Export;
using SecurityAgent.Processes;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Unit;

public class JsonFormatTests
{
    internal static readonly Lazy<JsonSchema> Schema = new(() => JsonSchema.FromFileAsync(Repo.File_("schemas", "events.schema.json")).GetAwaiter().GetResult());

    internal static void AssertValid(string line)
    {
        var errors = Schema.Value.Validate(line);
        Assert.True(errors.Count == 0, $"schema errors: {string.Join("; ", errors.Select(e => e.Path + ": " + e.Kind))}\n{line}");
    }

    private static ProcessInfo Proc(int pid, string? parent) => new()
    {
        ExecId = ExecId.Make("n1", 1000, pid), Pid = pid, Tid = pid, StartTime = 1_000_000_000, Ktime = 1_000_000_000,
        Binary = "/usr/bin/cat", Args = ["cat", "/etc/passwd"], Cwd = "/tmp", Creds = new Credentials(1000, 1000, 100, 100),
        Caps = new Capabilities(1UL << 21, 0, 0), ParentExecId = parent, Origin = ProcessOrigin.Exec,
    };

    private static string Render(AgentEvent e, bool credentials = true)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
            new JsonEventFormatter("n1", new BootClock(1_700_000_000_000_000_000), credentials).Write(w, e);
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    [Fact]
    public void An_exec_event_has_tetragons_shape_and_validates_against_the_schema()
    {
        var line = Render(new ProcessExecEvent(2_000_000_000, Proc(20, ExecId.Make("n1", 1, 10)), Proc(10, null)));
        AssertValid(line);
        var root = JsonDocument.Parse(line).RootElement;
        var p = root.GetProperty("process_exec").GetProperty("process");
        Assert.Equal("/usr/bin/cat", p.GetProperty("binary").GetString());
        Assert.Equal("/etc/passwd", p.GetProperty("arguments").GetString());
        Assert.Equal(["CAP_SYS_ADMIN"], p.GetProperty("cap").GetProperty("permitted").EnumerateArray().Select(x => x.GetString()));
        Assert.Equal("n1", root.GetProperty("node_name").GetString());
        Assert.Equal("2023-11-14T22:13:22.000000000Z", root.GetProperty("time").GetString());
    }

    [Fact]
    public void Credentials_and_capabilities_are_only_rendered_when_asked_for_as_in_tetragon()
    {
        var line = Render(new ProcessExecEvent(2_000_000_000, Proc(20, null), null), credentials: false);
        AssertValid(line);
        var p = JsonDocument.Parse(line).RootElement.GetProperty("process_exec").GetProperty("process");
        Assert.False(p.TryGetProperty("cap", out _));
        Assert.False(p.TryGetProperty("process_credentials", out _));
        Assert.Equal(1000, p.GetProperty("uid").GetInt32());
    }

    [Fact]
    public void An_exit_by_signal_names_the_signal()
    {
        var line = Render(new ProcessExitEvent(2_000_000_000, Proc(20, null), null, 0, 9));
        AssertValid(line);
        var exit = JsonDocument.Parse(line).RootElement.GetProperty("process_exit");
        Assert.Equal("SIGKILL", exit.GetProperty("signal").GetString());
        Assert.Equal(0, exit.GetProperty("status").GetInt32());
    }

    [Fact]
    public void The_schema_rejects_an_event_without_a_type()
    {
        Assert.NotEmpty(Schema.Value.Validate("""{"node_name":"n","time":"2023-11-14T22:13:22.000000000Z"}"""));
    }
}
