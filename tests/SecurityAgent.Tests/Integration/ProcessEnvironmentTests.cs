using System.Text.Json;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>environment_variables, read by the kernel at exec (--enable-process-environment-variables), kept to the names
/// of --filter-environment-variables as Tetragon does.</summary>
[Collection("kernel")]
public sealed class ProcessEnvironmentTests : IDisposable
{
    private readonly AgentProcess _agent = new("--enable-process-environment-variables", "--filter-environment-variables", "SA_KEEP,SA_ALSO,SA_BIG", "--export-extensions");
    private readonly TempDir _dir = new();

    public void Dispose()
    {
        _agent.Dispose();
        _dir.Dispose();
    }

    private JsonElement ExecOf(string marker, string binary) =>
        _agent.Events.WaitFor(e => ExportedEvents.IsExecOf(e, marker) && e.GetProperty("process_exec").GetProperty("process").GetProperty("binary").GetString() == binary,
            $"exec of {binary} {marker}").GetProperty("process_exec");

    private static List<(string?, string?)> Env(JsonElement process) =>
        process.GetProperty("environment_variables").EnumerateArray()
            .Select(v => (v.TryGetProperty("Key", out var k) ? k.GetString() : null, v.TryGetProperty("Value", out var x) ? x.GetString() : null)).ToList();

    [Fact]
    public void The_filter_keeps_only_the_listed_variables_with_their_values_as_the_process_got_them()
    {
        var tool = _dir.CopyBinary("/usr/bin/true", "env-tool");
        Assert.Equal(0, Run.Wait("/usr/bin/env", ["-i", "SA_KEEP=1", "SA_DROP=secret", "SA_ALSO=a b=c", tool, "marker-filter"]).Code);

        var exec = ExecOf("marker-filter", tool);
        Assert.Equal([("SA_KEEP", "1"), ("SA_ALSO", "a b=c")], Env(exec.GetProperty("process")));
        Assert.False(exec.TryGetProperty("securityagent", out _));
    }

    [Fact]
    public void An_environment_longer_than_the_kernel_reads_leaves_out_the_cut_variable_and_says_so()
    {
        var tool = _dir.CopyBinary("/usr/bin/true", "env-long");
        Assert.Equal(0, Run.Wait("/usr/bin/env", ["-i", "SA_KEEP=first", "SA_BIG=" + new string('x', 5000), tool, "marker-long"]).Code);

        var exec = ExecOf("marker-long", tool);
        Assert.Equal([("SA_KEEP", "first")], Env(exec.GetProperty("process")));
        Assert.True(exec.GetProperty("securityagent").GetProperty("environment_truncated").GetBoolean());
    }
}
