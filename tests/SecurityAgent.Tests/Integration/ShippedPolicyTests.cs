using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>One agent with every policy of the repository's policies/ directory, as `make run` loads them.</summary>
public sealed class ShippedPoliciesAgent : IDisposable
{
    public AgentProcess Agent { get; } = new(Directory.GetFiles(Repo.File_("policies"), "*.yaml")
        .ToDictionary(f => Path.GetFileName(f), f => File.ReadAllText(f)), "--export-extensions");

    public void Dispose() => Agent.Dispose();
}

/// <summary>Each shipped policy catches what its comment says, with processes the test starts (binaries copied
/// into a temp dir), and, being in monitor mode, enforces nothing.</summary>
[Collection("kernel")]
public class ShippedPolicyTests(ShippedPoliciesAgent shipped) : IClassFixture<ShippedPoliciesAgent>
{
    private readonly AgentProcess _agent = shipped.Agent;

    private JsonElement WaitForPolicy(string policy, string binary)
    {
        var ev = _agent.Events.WaitFor(e => Body(e, policy) is { } b && b.GetProperty("process").GetProperty("binary").GetString() == binary,
            $"{policy} event from {binary}");
        var body = Body(ev, policy)!.Value;
        Assert.Equal("monitor", body.GetProperty("securityagent").GetProperty("policy_mode").GetString());
        Assert.False(body.GetProperty("securityagent").GetProperty("enforced").GetBoolean());
        return body;
    }

    private static JsonElement? Body(JsonElement e, string policy)
    {
        foreach (var p in e.EnumerateObject())
            if (p.Value.ValueKind == JsonValueKind.Object && p.Value.TryGetProperty("policy_name", out var n) && n.GetString() == policy)
                return p.Value;
        return null;
    }

    [Fact]
    public void Every_shipped_policy_loads_in_monitor_mode()
    {
        foreach (var file in Directory.GetFiles(Repo.File_("policies"), "*.yaml"))
        {
            Assert.Contains("value: monitor", File.ReadAllText(file));
            var name = Path.GetFileNameWithoutExtension(file);
            Assert.Contains($"Policy {name} loaded", _agent.Stderr);
        }
        Assert.Contains("(mode monitor)", _agent.Stderr);
        Assert.DoesNotContain("(mode enforce)", _agent.Stderr);
    }

    [Fact]
    public void Sensitive_file_reads_reports_an_ssh_private_key_read_without_stopping_it()
    {
        using var dir = new TempDir();
        var cat = dir.CopyBinary("/usr/bin/cat", "reader");
        Directory.CreateDirectory(dir.File(".ssh"));
        File.WriteAllText(dir.File(".ssh/id_ed25519"), "KEY\n");
        Assert.Equal((0, "KEY\n"), (Run.Wait(cat, [dir.File(".ssh/id_ed25519")]).Code, Run.Wait(cat, [dir.File(".ssh/id_ed25519")]).Stdout));
        var body = WaitForPolicy("sensitive-file-reads", cat);
        Assert.Equal(dir.File(".ssh/id_ed25519"), body.GetProperty("args")[0].GetProperty("string_arg").GetString());
        Assert.Equal("path", body.GetProperty("args")[0].GetProperty("label").GetString());
    }

    /// <summary>sensitive-file-reads' Postfix selector (`/.ssh/id_rsa`, ...) is first checked against the opened file's own name
    /// (no path built for an open of any other name); every name of the key still reaches it, including a bind mount of the
    /// key file itself (the file is then the root of its mount, whose path ends in the mount point's name).</summary>
    [Fact]
    public void Sensitive_file_reads_reports_an_ssh_key_by_every_name_and_not_a_file_that_only_shares_its_name_or_directory()
    {
        using var dir = new TempDir();
        var cat = dir.CopyBinary("/usr/bin/cat", "key-reader");
        Directory.CreateDirectory(dir.File(".ssh"));
        Directory.CreateDirectory(dir.File("other"));
        foreach (var f in new[] { ".ssh/id_rsa", ".ssh/id_rsa.pub", "other/id_rsa", "plain" })
            File.WriteAllText(dir.File(f), f == "plain" ? "" : "KEY\n");
        File.CreateSymbolicLink(dir.File("link"), dir.File(".ssh/id_rsa"));
        Assert.Equal(0, Run.Wait(cat, ["id_rsa"], cwd: dir.File(".ssh")).Code);
        Assert.Equal(0, Run.Wait(cat, [dir.File("link")]).Code);
        var bind = Run.Wait("/usr/bin/unshare", ["-m", "/bin/sh", "-c", $"mount --bind {dir.File(".ssh/id_rsa")} {dir.File("plain")} && exec {cat} {dir.File("plain")}"]);
        Assert.Equal((0, "KEY\n"), (bind.Code, bind.Stdout));
        Assert.Equal(0, Run.Wait(cat, [dir.File("other/id_rsa")]).Code);
        Assert.Equal(0, Run.Wait(cat, [dir.File(".ssh/id_rsa.pub")]).Code);

        foreach (var passed in new[] { "id_rsa", dir.File("link"), dir.File("plain") })
            Assert.Equal(dir.File(".ssh/id_rsa"), WaitForPassed("sensitive-file-reads", cat, passed).GetProperty("args")[0].GetProperty("string_arg").GetString());
        _agent.Events.WaitFor(e => e.TryGetProperty("process_exit", out var x) && x.GetProperty("process").GetProperty("binary").GetString() == cat
            && x.GetProperty("process").GetProperty("arguments").GetString() == dir.File(".ssh/id_rsa.pub"), "exit of the last reader");
        Thread.Sleep(300);
        var reported = _agent.Events.Where(e => Body(e, "sensitive-file-reads") is { } b && b.GetProperty("process").GetProperty("binary").GetString() == cat)
            .Select(e => Body(e, "sensitive-file-reads")!.Value.GetProperty("args")[0].GetProperty("string_arg").GetString()).ToList();
        Assert.Equal(3, reported.Count);
        Assert.All(reported, r => Assert.Equal(dir.File(".ssh/id_rsa"), r));
    }

    private JsonElement WaitForPassed(string policy, string binary, string passed) =>
        Body(_agent.Events.WaitFor(e => Body(e, policy) is { } b && b.GetProperty("process").GetProperty("binary").GetString() == binary
            && PathEvasionTests.Passed(b) == passed, $"{policy} event for '{passed}'"), policy)!.Value;

    [Fact]
    public void Sensitive_file_reads_reports_renamed_spellings_of_etc_shadow_with_the_path_the_kernel_opens()
    {
        using var dir = new TempDir();
        var cat = dir.CopyBinary("/usr/bin/cat", "renamed-reader");
        File.CreateSymbolicLink(dir.File("innocent"), "/etc/shadow");
        (string[] Args, string? Cwd, string Passed, string Resolved)[] spellings =
        [
            (["shadow"], "/etc", "shadow", "/etc/shadow"),
            (["./gshadow"], "/etc", "./gshadow", "/etc/gshadow"),
            (["/etc//shadow"], null, "/etc//shadow", "/etc/shadow"),
            (["/etc/./shadow"], null, "/etc/./shadow", "/etc/shadow"),
            (["../etc/shadow"], "/usr", "../etc/shadow", "/etc/shadow"),
            ([dir.File("innocent")], null, dir.File("innocent"), "/etc/shadow"),
        ];
        foreach (var (args, cwd, passed, resolved) in spellings)
        {
            Assert.Equal(0, Run.Wait(cat, args, cwd).Code); // monitor mode: the read goes through
            var body = WaitForPassed("sensitive-file-reads", cat, passed);
            Assert.Equal(resolved, body.GetProperty("args")[0].GetProperty("string_arg").GetString());
        }
    }

    [Fact]
    public void Exec_from_tmp_reports_a_program_run_by_a_relative_path_from_its_directory()
    {
        using var dir = new TempDir(); // under /tmp
        var tool = dir.CopyBinary("/usr/bin/true", "bin");
        var sh = dir.CopyBinary("/usr/bin/dash", "launcher");
        Assert.Equal(0, Run.Wait(sh, ["-c", "./bin"], dir.Path).Code);
        var body = WaitForPassed("exec-from-tmp", sh, "./bin");
        Assert.Equal(tool, body.GetProperty("args")[0].GetProperty("string_arg").GetString());
    }

    [Fact]
    public void Exec_from_tmp_reports_what_it_would_kill_and_the_program_still_runs()
    {
        using var dir = new TempDir(); // under /tmp
        var tool = dir.CopyBinary("/usr/bin/echo", "dropped-payload");
        Assert.Equal("ran\n", Run.Wait(tool, ["ran"]).Stdout);
        var ev = _agent.Events.WaitFor(e => Body(e, "exec-from-tmp") is { } b
            && b.GetProperty("args")[0].GetProperty("string_arg").GetString() == tool, "exec-from-tmp event");
        var body = Body(ev, "exec-from-tmp")!.Value;
        Assert.Equal("KPROBE_ACTION_SIGKILL", body.GetProperty("action").GetString());
        Assert.False(body.GetProperty("securityagent").GetProperty("enforced").GetBoolean());
    }

    [Fact]
    public void Etc_writes_reports_an_open_for_writing_under_etc()
    {
        using var dir = new TempDir();
        var perl = dir.CopyBinary("/usr/bin/perl", "etc-writer");
        // Opens for append and writes nothing: /etc is left as it was.
        Assert.Equal(0, Run.Wait(perl, ["-e", "open(my $f, '>>', '/etc/hostname') or die $!; close $f"]).Code);
        var body = WaitForPolicy("etc-writes", perl);
        Assert.Equal("/etc/hostname", body.GetProperty("args")[0].GetProperty("string_arg").GetString());
    }

    [Fact]
    public void Privilege_escalation_reports_setuid_to_root()
    {
        using var dir = new TempDir();
        var perl = dir.CopyBinary("/usr/bin/perl", "setuid-caller");
        Assert.Equal(0, Run.Wait(perl, ["-e", "syscall(105, 0) == 0 or die $!"]).Code); // setuid(0), already root
        var body = WaitForPolicy("privilege-escalation", perl);
        Assert.Equal("__x64_sys_setuid", body.GetProperty("function_name").GetString());
        Assert.Equal(0, body.GetProperty("args")[0].GetProperty("int_arg").GetInt32());
    }

    [Fact]
    public void Ptrace_attach_reports_an_attach_to_another_process()
    {
        using var dir = new TempDir();
        var perl = dir.CopyBinary("/usr/bin/perl", "tracer");
        var sleeper = dir.CopyBinary("/usr/bin/sleep", "tracee");
        using var target = Run.Start(sleeper, ["30"]);
        try
        {
            Run.Wait(perl, ["-e", $"syscall(101, 16, {target.Id}, 0, 0)"]); // PTRACE_ATTACH; detaches when perl exits
            var body = WaitForPolicy("ptrace-attach", perl);
            Assert.Equal("16", body.GetProperty("args")[0].GetProperty("long_arg").GetString()); // int64: a string in protojson
            Assert.Equal(target.Id, body.GetProperty("args")[1].GetProperty("int_arg").GetInt32());
        }
        finally
        {
            target.Kill();
        }
    }

    [Fact]
    public void Mount_reports_a_mount_call()
    {
        using var dir = new TempDir();
        var perl = dir.CopyBinary("/usr/bin/perl", "mounter");
        // mount("none", <temp dir>, "bogusfs") fails with ENODEV: nothing is mounted.
        var r = Run.Wait(perl, ["-e", $"my ($s, $t, $f) = ('none', '{dir.Path}', 'bogusfs'); syscall(165, $s, $t, $f, 0, 0) == -1 or die 'mounted'"]);
        Assert.Equal(0, r.Code);
        var body = WaitForPolicy("mount", perl);
        Assert.Equal(dir.Path, body.GetProperty("args")[1].GetProperty("string_arg").GetString());
        Assert.Equal("bogusfs", body.GetProperty("args")[2].GetProperty("string_arg").GetString());
    }

    [Fact]
    public void Kernel_module_load_reports_a_finit_module_attempt()
    {
        using var dir = new TempDir();
        var perl = dir.CopyBinary("/usr/bin/perl", "insmod-like");
        var r = Run.Wait(perl, ["-e", "my $p = ''; syscall(313, -1, $p, 0) == -1 or die 'loaded'"]); // bad fd: fails, loads nothing
        Assert.Equal(0, r.Code);
        var body = WaitForPolicy("kernel-module-load", perl);
        Assert.Equal("""{"id":313,"abi":"x64"}""", body.GetProperty("args")[0].GetProperty("syscall_id").GetRawText());
    }

    [Fact]
    public void Outbound_connect_reports_a_connect_to_a_port_outside_the_allow_list_and_lets_it_through()
    {
        using var dir = new TempDir();
        var bash = dir.CopyBinary("/usr/bin/bash", "connector");
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var r = Run.Wait(bash, ["-c", $"exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected"]);
        Assert.Contains("connected", r.Stdout);
        var body = WaitForPolicy("outbound-connect", bash);
        Assert.Equal("KPROBE_ACTION_OVERRIDE", body.GetProperty("action").GetString());
        Assert.Equal(port, body.GetProperty("args")[0].GetProperty("sockaddr_arg").GetProperty("port").GetInt32());
    }
}
