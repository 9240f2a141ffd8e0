using System.Text.Json;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>What the kernel reads at exec, seen from a real agent: namespaces (--enable-process-ns) and the exec's
/// privilege change (binary_properties, with --enable-process-cred).</summary>
[Collection("kernel")]
public sealed class ExecContextAgentTests : IDisposable
{
    private readonly AgentProcess _agent = new("--enable-process-ns", "--enable-process-cred");
    private readonly TempDir _dir = new();

    public void Dispose()
    {
        _agent.Dispose();
        _dir.Dispose();
    }

    private static string Marker() => "sa-" + Guid.NewGuid().ToString("N")[..12];

    private static uint HostInum(string ns) => SecurityAgent.Processes.ProcFsScanner.ReadHostNamespaces()[Array.IndexOf(SecurityAgent.Events.NamespaceInums.Names, ns)];

    private JsonElement ExecOf(string marker, string binary) =>
        _agent.Events.WaitFor(e => ExportedEvents.IsExecOf(e, marker) && e.GetProperty("process_exec").GetProperty("process").GetProperty("binary").GetString() == binary,
            $"exec of {binary} {marker}").GetProperty("process_exec").GetProperty("process");

    [Fact]
    public void A_plain_exec_reports_the_hosts_namespaces_and_no_binary_properties()
    {
        var sh = _dir.CopyBinary("/usr/bin/dash", "ns-plain");
        var marker = Marker();
        Assert.Equal(0, Run.Wait(sh, ["-c", "true", marker]).Code);

        var p = ExecOf(marker, sh);
        var uts = p.GetProperty("ns").GetProperty("uts");
        Assert.Equal(HostInum("uts"), uts.GetProperty("inum").GetUInt32());
        Assert.True(uts.GetProperty("is_host").GetBoolean());
        Assert.True(p.GetProperty("ns").GetProperty("pid").GetProperty("is_host").GetBoolean());
        Assert.True(p.GetProperty("process_credentials").GetProperty("user_ns").GetProperty("ns").GetProperty("is_host").GetBoolean());
        Assert.False(p.TryGetProperty("binary_properties", out _));
    }

    [Fact]
    public void A_binary_run_in_new_uts_and_mount_namespaces_reports_them_as_not_the_hosts()
    {
        var sh = _dir.CopyBinary("/usr/bin/dash", "ns-unshared");
        var marker = Marker();
        var r = Run.Wait("unshare", ["-u", "-m", sh, "-c", "true", marker]);
        Assert.True(r.Code == 0, r.Stderr);

        var ns = ExecOf(marker, sh).GetProperty("ns");
        foreach (var name in new[] { "uts", "mnt" })
        {
            Assert.NotEqual(HostInum(name), ns.GetProperty(name).GetProperty("inum").GetUInt32());
            Assert.False(ns.GetProperty(name).TryGetProperty("is_host", out _), ns.ToString());
        }
        Assert.Equal(HostInum("net"), ns.GetProperty("net").GetProperty("inum").GetUInt32());
        Assert.True(ns.GetProperty("net").GetProperty("is_host").GetBoolean());
    }

    [Fact]
    public void A_setuid_root_copy_run_as_nobody_reports_setuid_0_and_the_privilege_raise()
    {
        var id = _dir.CopyBinary("/usr/bin/id", "setuid-id");
        File.SetUnixFileMode(id, File.GetUnixFileMode(id) | UnixFileMode.SetUser);
        File.SetUnixFileMode(_dir.Path, File.GetUnixFileMode(_dir.Path) | UnixFileMode.OtherExecute);
        var marker = Marker();
        Run.Wait("runuser", ["-u", "nobody", "--", id, marker]); // "no such user": the exec is what matters

        var p = ExecOf(marker, id);
        Assert.Equal(65534u, p.GetProperty("process_credentials").GetProperty("uid").GetUInt32());
        Assert.Equal(0u, p.GetProperty("process_credentials").GetProperty("euid").GetUInt32());
        var bp = p.GetProperty("binary_properties");
        Assert.Equal(0u, bp.GetProperty("setuid").GetUInt32());
        Assert.Equal(["PRIVILEGES_RAISED_EXEC_FILE_SETUID"], bp.GetProperty("privileges_changed").EnumerateArray().Select(e => e.GetString()));

        var exit = _agent.Events.WaitFor(e => ExportedEvents.IsExitOf(e, marker) && e.GetProperty("process_exit").GetProperty("process").GetProperty("binary").GetString() == id, "exit of " + marker);
        Assert.False(exit.GetProperty("process_exit").GetProperty("process").TryGetProperty("binary_properties", out _));
    }
}
