using System.Text.Json;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>The spellings of a test-owned secret that need more than a shell: openat2 with a dirfd and RESOLVE_*
/// flags, execveat with a dirfd and with AT_EMPTY_PATH, a chroot and a new mount namespace with a bind mount. Each
/// is reported (and killed in enforce mode) with the path the process sees; an unrelated file by the same means is
/// not. Policies are scoped to a tool this test compiled into its temp dir (and the copies of it a chroot runs)
/// and to paths inside the temp dir or, for the chroot, under the chroot.</summary>
[Collection("kernel")]
public class PathRootEvasionTests
{
    /// <summary>openat2 / execveat by hand (no tool ships them): "openat2 DIR NAME RESOLVE" prints the file,
    /// "execveat DIR NAME" and "execveat-fd FILE" (AT_EMPTY_PATH on an O_PATH fd) run the file, "cat [DIR] FILE"
    /// prints the file (after a chdir to DIR), "pivot ROOTFS DIR FILE" is a container: a new mount namespace, DIR
    /// bind-mounted at ROOTFS/data, the root pivoted into ROOTFS and the old one detached, then FILE printed. Static,
    /// so a chroot needs nothing else.</summary>
    private const string ToolSource = """
        #define _GNU_SOURCE
        #include <fcntl.h>
        #include <stdint.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include <sched.h>
        #include <sys/mount.h>
        #include <sys/syscall.h>
        #include <unistd.h>
        struct how { uint64_t flags, mode, resolve; };
        static int dump(int fd) {
            if (fd < 0) { perror("open"); return 3; }
            char buf[256]; ssize_t n;
            while ((n = read(fd, buf, sizeof buf)) > 0) fwrite(buf, 1, n, stdout);
            return 0;
        }
        int main(int argc, char **argv) {
            if (argc < 3) return 2;
            char *args[] = { argv[argc - 1], NULL };
            if (!strcmp(argv[1], "cat") && argc == 3)
                return dump(open(argv[2], O_RDONLY));
            if (!strcmp(argv[1], "cat") && argc == 4) {
                if (chdir(argv[2])) { perror("chdir"); return 3; }
                return dump(open(argv[3], O_RDONLY));
            }
            if (!strcmp(argv[1], "pivot") && argc == 5) {
                char data[4096];
                snprintf(data, sizeof data, "%s/data", argv[2]);
                if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
                    mount(argv[2], argv[2], NULL, MS_BIND, NULL) || mount(argv[3], data, NULL, MS_BIND, NULL) ||
                    chdir(argv[2]) || syscall(SYS_pivot_root, ".", "old") || umount2("/old", MNT_DETACH) || chdir("/")) {
                    perror("pivot"); return 3;
                }
                return dump(open(argv[4], O_RDONLY));
            }
            if (!strcmp(argv[1], "openat2") && argc == 5) {
                int dir = open(argv[2], O_PATH | O_DIRECTORY);
                struct how h = { O_RDONLY, 0, strtoull(argv[4], NULL, 0) };
                return dump(syscall(SYS_openat2, dir, argv[3], &h, sizeof h));
            }
            if (!strcmp(argv[1], "execveat") && argc == 4) {
                int dir = open(argv[2], O_PATH | O_DIRECTORY);
                syscall(SYS_execveat, dir, argv[3], args, environ, 0);
                perror("execveat"); return 3;
            }
            if (!strcmp(argv[1], "execveat-fd") && argc == 3) {
                int fd = open(argv[2], O_PATH);
                syscall(SYS_execveat, fd, "", args, environ, AT_EMPTY_PATH);
                perror("execveat"); return 3;
            }
            return 2;
        }
        """;

    private const ulong ResolveNoSymlinks = 0x04, ResolveBeneath = 0x08, ResolveInRoot = 0x10;

    /// <summary>A temp dir with secret/key.txt, plain.txt, sub/, mnt/, a symlink to secret/, bins/tool (a copy of
    /// true) with a symlink to it elsewhere, the compiled tool at the top (so a chroot into the temp dir runs it as
    /// /victim-tool), and rootfs/ (the tool again, data/, plain.txt).</summary>
    private sealed class Scene : IDisposable
    {
        public TempDir Dir { get; } = new();
        public string SecretDir => Dir.File("secret");
        public string Secret => Dir.File("secret/key.txt");
        public string Rootfs => Dir.File("rootfs");
        public string Tool => Dir.File(InRootTool[1..]);
        public string Bins => Dir.File("bins");
        public const string InRootTool = "/victim-tool";

        public Scene()
        {
            foreach (var d in (string[])["secret", "sub", "bins", "elsewhere", "rootfs", "rootfs/data", "rootfs/old"])
                Directory.CreateDirectory(Dir.File(d));
            File.WriteAllText(Secret, "TOP-SECRET\n");
            File.WriteAllText(Dir.File("plain.txt"), "plain\n");
            File.WriteAllText(Dir.File("rootfs/plain.txt"), "plain\n");
            File.CreateSymbolicLink(Dir.File("linkdir"), SecretDir);
            Dir.CopyBinary("/usr/bin/true", "bins/tool");
            Dir.CopyBinary("/usr/bin/true", "elsewhere/true");
            File.CreateSymbolicLink(Dir.File("elsewhere/alias"), Dir.File("bins/tool"));
            File.WriteAllText(Dir.File("tool.c"), ToolSource);
            CProgram.Compile(Dir.File("tool.c"), Tool, "-O2", "-static");
            File.Copy(Tool, Rootfs + InRootTool);
        }

        public void Dispose() => Dir.Dispose();

        public string OpenPolicy(string name, string mode, string call, params string[] prefixes) => $"""
            apiVersion: securityagent.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: {name}
            spec:
              options:
              - name: policy-mode
                value: {mode}
              kprobes:
              - call: {call}
                syscall: true
                args:
                - index: 1
                  type: string
                  label: path
                selectors:
                - matchArgs:
                  - index: 1
                    operator: Prefix
                    values: [{string.Join(", ", prefixes.Select(p => $"\"{p}\""))}]
                  matchBinaries:
                  - operator: In
                    values: ["{Tool}", "{InRootTool}", "{Rootfs}{InRootTool}"]
                  matchActions:
                  - action: Sigkill
            """;

        public string ExecPolicy(string name, string mode) => $"""
            apiVersion: securityagent.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: {name}
            spec:
              options:
              - name: policy-mode
                value: {mode}
              tracepoints:
              - subsystem: syscalls
                event: sys_enter_execveat
                args:
                - index: 6
                  type: string
                  label: filename
                selectors:
                - matchArgs:
                  - index: 6
                    operator: Prefix
                    values: ["{Bins}/"]
                  matchBinaries:
                  - operator: In
                    values: ["{Tool}"]
                  matchActions:
                  - action: Sigkill
            """;

        /// <summary>Each openat2 of the secret: the arguments, the string passed, the path reported, and whether only
        /// the exit (the object the kernel opened) can tell.</summary>
        public IEnumerable<(string What, string[] Args, string Passed, bool AtExit)> Openat2()
        {
            var d = Dir.Path;
            yield return ("openat2 relative to a dirfd", ["openat2", d, "secret/key.txt", "0"], "secret/key.txt", false);
            yield return ("openat2 RESOLVE_BENEATH", ["openat2", SecretDir, "key.txt", $"{ResolveBeneath}"], "key.txt", false);
            yield return ("openat2 RESOLVE_NO_SYMLINKS with ..", ["openat2", Dir.File("sub"), "../secret/key.txt", $"{ResolveNoSymlinks}"], "../secret/key.txt", false);
            yield return ("openat2 through a symlinked directory", ["openat2", d, "linkdir/key.txt", "0"], "linkdir/key.txt", true);
            yield return ("openat2 RESOLVE_IN_ROOT (an absolute name under the dirfd)", ["openat2", d, "/secret/key.txt", $"{ResolveInRoot}"], "/secret/key.txt", true);
        }

        /// <summary>Each read of a secret inside another root, as the process there sees it: the command, the string
        /// the open passes, the path reported.</summary>
        public IEnumerable<(string What, string File, string[] Args, string Passed, string Resolved)> InRoot()
        {
            var d = Dir.Path;
            yield return ("a chroot", "/usr/sbin/chroot", [d, InRootTool, "cat", "/secret/key.txt"], "/secret/key.txt", "/secret/key.txt");
            yield return ("a chroot, relative to the cwd", "/usr/sbin/chroot", [d, InRootTool, "cat", "/secret", "key.txt"], "key.txt", "/secret/key.txt");
            yield return ("a chroot, with .. above the root", "/usr/sbin/chroot", [d, InRootTool, "cat", "/secret", "../../../secret/key.txt"], "../../../secret/key.txt", "/secret/key.txt");
            // A new mount namespace: the secret bind-mounted into a rootfs, the tool chrooted there.
            yield return ("a bind mount in a new mount namespace, in a chroot", "/usr/bin/unshare",
                ["-m", "/bin/sh", "-c", $"mount --bind {SecretDir} {Rootfs}/data && exec /usr/sbin/chroot {Rootfs} {InRootTool} cat /data/key.txt"],
                "/data/key.txt", "/data/key.txt");
        }

        /// <summary>Each read of the secret from another root, for a policy that names its path on the host: the
        /// command, the string the open passes, the path the process sees, and whether only the exit can tell (the
        /// name under the root leads to the secret only through a mount the host does not have).</summary>
        public IEnumerable<(string What, string File, string[] Args, string Passed, string Resolved, bool AtExit)> FromOtherRoots()
        {
            var d = Dir.Path;
            yield return ("a chroot", "/usr/sbin/chroot", [d, InRootTool, "cat", "/secret/key.txt"], "/secret/key.txt", "/secret/key.txt", false);
            yield return ("a chroot, relative to the cwd", "/usr/sbin/chroot", [d, InRootTool, "cat", "/secret", "key.txt"], "key.txt", "/secret/key.txt", false);
            yield return ("a chroot, with .. above the root", "/usr/sbin/chroot", [d, InRootTool, "cat", "/sub", "../../../secret/key.txt"], "../../../secret/key.txt", "/secret/key.txt", false);
            yield return ("a container: a new mount namespace pivoted into a rootfs with the secret bind-mounted", Tool,
                ["pivot", Rootfs, SecretDir, "/data/key.txt"], "/data/key.txt", "/data/key.txt", true);
        }

        /// <summary>The same means on a file outside the secret directory.</summary>
        public IEnumerable<(string What, string File, string[] Args)> Unrelated()
        {
            var d = Dir.Path;
            yield return ("openat2 with ..", Tool, ["openat2", Dir.File("sub"), "../plain.txt", "0"]);
            yield return ("openat2 RESOLVE_IN_ROOT", Tool, ["openat2", Rootfs, "/plain.txt", $"{ResolveInRoot}"]);
            yield return ("openat2 RESOLVE_BENEATH", Tool, ["openat2", d, "plain.txt", $"{ResolveBeneath}"]);
            yield return ("chroot", "/usr/sbin/chroot", [d, InRootTool, "cat", "/plain.txt"]);
            yield return ("chroot, relative", "/usr/sbin/chroot", [d, InRootTool, "cat", "/sub", "../plain.txt"]);
            yield return ("bind mount in a new mount namespace, in a chroot", "/usr/bin/unshare",
                ["-m", "/bin/sh", "-c", $"mount --bind {Dir.File("sub")} {Rootfs}/data && exec /usr/sbin/chroot {Rootfs} {InRootTool} cat /plain.txt"]);
        }
    }

    private static bool AtExit(JsonElement body) =>
        body.GetProperty("securityagent").TryGetProperty("matched_at_exit", out var x) && x.GetBoolean();

    private static void AssertRun((int Code, string Stdout, string Stderr) r, string mode, string what)
    {
        if (mode == "monitor")
            Assert.True(r.Code == 0 && r.Stdout.Contains("TOP-SECRET"), $"{what}: monitor mode must not stop the read: {r.Code} {r.Stdout} {r.Stderr}");
        else
            Assert.True(r.Code == 137 && !r.Stdout.Contains("TOP-SECRET"), $"{what}: expected SIGKILL before any output, got {r.Code} '{r.Stdout}' {r.Stderr}");
    }

    [Theory]
    [InlineData("monitor")]
    [InlineData("enforce")]
    public void Openat2_a_chroot_and_a_new_mount_namespace_cannot_hide_a_secret_file(string mode)
    {
        using var s = new Scene();
        string open2 = "openat2-" + mode, rooted = "rooted-" + mode;
        using var agent = new AgentProcess(new Dictionary<string, string>
        {
            ["p.yaml"] = s.OpenPolicy(open2, mode, "sys_openat2", s.SecretDir + "/"),
            // In the chroot the secret is /secret/key.txt, in the rootfs /data/key.txt (the tool is the only binary).
            ["q.yaml"] = s.OpenPolicy(rooted, mode, "sys_openat", "/secret/", "/data/"),
        }, "--export-extensions");
        Assert.Contains($"Policy {open2} loaded", agent.Stderr);
        foreach (var (what, args, passed, atExit) in s.Openat2())
        {
            int from = agent.Events.All.Count;
            AssertRun(Run.Wait(s.Tool, args), mode, what);
            var body = PathEvasionTests.WaitFor(agent, from, open2, passed, what);
            Assert.Equal(s.Secret, body.GetProperty("args")[0].GetProperty("string_arg").GetString());
            Assert.True(atExit == AtExit(body), $"{what}: matched_at_exit should be {atExit}");
            Assert.Equal(mode == "enforce", body.GetProperty("securityagent").GetProperty("enforced").GetBoolean());
        }
        foreach (var (what, file, args, passed, resolved) in s.InRoot())
        {
            int from = agent.Events.All.Count;
            AssertRun(Run.Wait(file, args), mode, what);
            var body = PathEvasionTests.WaitFor(agent, from, rooted, passed, what);
            Assert.Equal(resolved, body.GetProperty("args")[0].GetProperty("string_arg").GetString());
            Assert.Equal(mode == "enforce", body.GetProperty("securityagent").GetProperty("enforced").GetBoolean());
        }
        int after = agent.Events.All.Count;
        foreach (var (what, file, args) in s.Unrelated())
        {
            var r = Run.Wait(file, args);
            Assert.True(r.Code == 0 && r.Stdout == "plain\n", $"{what}: an unrelated file is read: {r.Code} '{r.Stdout}' {r.Stderr}");
        }
        Thread.Sleep(500);
        Assert.DoesNotContain(agent.Events.All.Skip(after), e => PathEvasionTests.Body(e, open2) is not null || PathEvasionTests.Body(e, rooted) is not null);
    }

    [Theory]
    [InlineData("monitor")]
    [InlineData("enforce")]
    public void Execveat_by_a_dirfd_or_by_an_fd_of_the_binary_opened_through_a_symlink_is_caught(string mode)
    {
        using var s = new Scene();
        var policy = "execveat-" + mode;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = s.ExecPolicy(policy, mode) }, "--export-extensions");
        Assert.Contains($"Policy {policy} loaded", agent.Stderr);
        int expected = mode == "enforce" ? 137 : 0;
        var tool = s.Dir.File("bins/tool");

        Assert.Equal(expected, Run.Wait(s.Tool, ["execveat", s.Bins, "tool"]).Code);
        var rel = PathEvasionTests.WaitFor(agent, 0, policy, "tool", "execveat(dirfd, \"tool\")");
        Assert.Equal(tool, rel.GetProperty("args")[0].GetProperty("string_arg").GetString());
        Assert.False(AtExit(rel));

        // AT_EMPTY_PATH on an O_PATH fd opened through a symlink elsewhere: the fd is the binary itself.
        Assert.Equal(expected, Run.Wait(s.Tool, ["execveat-fd", s.Dir.File("elsewhere/alias")]).Code);
        var fd = PathEvasionTests.WaitFor(agent, 0, policy, tool, "execveat(fd, \"\", AT_EMPTY_PATH)");
        Assert.Equal(tool, fd.GetProperty("args")[0].GetProperty("string_arg").GetString());
        Assert.Equal(mode == "enforce", fd.GetProperty("securityagent").GetProperty("enforced").GetBoolean());

        // execveat(dirfd, "alias") through a symlink: only the executed file can tell (checked at sched_process_exec:
        // 6.18 does not fire sys_exit_execveat after an execveat that succeeded).
        Assert.Equal(expected, Run.Wait(s.Tool, ["execveat", s.Dir.File("elsewhere"), "alias"]).Code);
        var link = PathEvasionTests.WaitFor(agent, 0, policy, "alias", "execveat(dirfd, \"alias\") through a symlink");
        Assert.Equal(tool, link.GetProperty("args")[0].GetProperty("string_arg").GetString());
        Assert.True(AtExit(link));
        Assert.Equal(mode == "enforce", link.GetProperty("securityagent").GetProperty("enforced").GetBoolean());

        int after = agent.Events.All.Count;
        Assert.Equal(0, Run.Wait(s.Tool, ["execveat", s.Dir.File("elsewhere"), "true"]).Code);
        Assert.Equal(0, Run.Wait(s.Tool, ["execveat-fd", s.Dir.File("elsewhere/true")]).Code);
        Thread.Sleep(500);
        Assert.DoesNotContain(agent.Events.All.Skip(after), e => PathEvasionTests.Body(e, policy) is not null);
    }
    private static string? HostArg(JsonElement body)
    {
        if (body.GetProperty("securityagent").TryGetProperty("host_args", out var list))
            foreach (var a in list.EnumerateArray())
                if (a.GetProperty("arg").GetInt32() == 0) return a.GetProperty("string_arg").GetString();
        return null;
    }

    [Theory]
    [InlineData("monitor")]
    [InlineData("enforce")]
    public void A_policy_on_the_host_path_of_a_file_catches_it_read_from_a_chroot_or_a_container_and_reports_both_paths(string mode)
    {
        using var s = new Scene();
        var policy = "host-" + mode;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = s.OpenPolicy(policy, mode, "sys_openat", s.SecretDir + "/") },
            "--export-extensions");
        Assert.Contains($"Policy {policy} loaded", agent.Stderr);
        foreach (var (what, file, args, passed, resolved, atExit) in s.FromOtherRoots())
        {
            int from = agent.Events.All.Count;
            AssertRun(Run.Wait(file, args), mode, what);
            var body = PathEvasionTests.WaitFor(agent, from, policy, passed, what);
            Assert.True(resolved == body.GetProperty("args")[0].GetProperty("string_arg").GetString(), $"{what}: {body}");
            Assert.True(s.Secret == HostArg(body), $"{what}: host_args should hold {s.Secret}: {body}");
            Assert.True(atExit == AtExit(body), $"{what}: matched_at_exit should be {atExit}");
            Assert.Equal(mode == "enforce", body.GetProperty("securityagent").GetProperty("enforced").GetBoolean());
        }
        int after = agent.Events.All.Count;
        foreach (var (what, file, args) in s.Unrelated().Append(("a container reading an unrelated file", s.Tool, ["pivot", s.Rootfs, s.Dir.File("sub"), "/plain.txt"])))
        {
            var r = Run.Wait(file, args);
            Assert.True(r.Code == 0 && r.Stdout == "plain\n", $"{what}: an unrelated file is read: {r.Code} '{r.Stdout}' {r.Stderr}");
        }
        // The host's own read of the secret is caught by its one path, with no host_args.
        int own = agent.Events.All.Count;
        AssertRun(Run.Wait(s.Tool, ["cat", s.Secret]), mode, "the host's read");
        Assert.Null(HostArg(PathEvasionTests.WaitFor(agent, own, policy, s.Secret, "the host's read")));
        Thread.Sleep(500);
        Assert.DoesNotContain(agent.Events.All.Skip(after).Take(own - after), e => PathEvasionTests.Body(e, policy) is not null);
    }
    [Theory]
    [InlineData("monitor")]
    [InlineData("enforce")]
    public void A_hard_link_made_after_the_policy_was_loaded_to_a_watched_file_is_caught_by_inode(string mode)
    {
        using var s = new Scene();
        var policy = "hardlink-" + mode;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = s.OpenPolicy(policy, mode, "sys_openat", s.SecretDir + "/") },
            "--export-extensions");
        Assert.Contains($"Policy {policy} loaded", agent.Stderr);
        var link = s.Dir.File("elsewhere/innocent.txt");
        Assert.Equal(0, Run.Wait("/usr/bin/ln", [s.Secret, link]).Code);
        AssertRun(Run.Wait(s.Tool, ["cat", link]), mode, "a hard link made after loading");
        var body = PathEvasionTests.WaitFor(agent, 0, policy, link, "a hard link made after loading");
        Assert.True(AtExit(body));
        Assert.Equal(mode == "enforce", body.GetProperty("securityagent").GetProperty("enforced").GetBoolean());
        int after = agent.Events.All.Count;
        Assert.Equal(0, Run.Wait(s.Tool, ["cat", s.Dir.File("plain.txt")]).Code);
        Thread.Sleep(500);
        Assert.DoesNotContain(agent.Events.All.Skip(after), e => PathEvasionTests.Body(e, policy) is not null);
    }

    /// <summary>An overlay whose layers are on two file systems, without xino: a file's st_dev there is
    /// a device of its layer, while the inode the kernel opens is the overlay's; the agent must know the file by the
    /// overlay's device, or a hard link to it goes unreported.</summary>
    [Theory]
    [InlineData("monitor")]
    [InlineData("enforce")]
    public void A_hard_link_on_an_overlay_with_layers_on_two_file_systems_is_caught_by_inode(string mode)
    {
        using var s = new Scene();
        string lower = s.Dir.File("ovl-lower"), upper = s.Dir.File("ovl-upper"), merged = s.Dir.File("ovl");
        var mounted = new List<string>();
        void Mount(string target, params string[] args)
        {
            Directory.CreateDirectory(target);
            var r = Run.Wait("mount", [.. args, target]);
            Assert.True(r.Code == 0, $"mount {string.Join(' ', args)} {target}: {r.Stderr}");
            mounted.Add(target);
        }
        try
        {
            Mount(lower, "-t", "tmpfs", "tmpfs");
            Mount(upper, "-t", "tmpfs", "tmpfs");
            foreach (var d in (string[])[upper + "/data", upper + "/work", lower + "/secret", lower + "/elsewhere"])
                Directory.CreateDirectory(d);
            Mount(merged, "-t", "overlay", "overlay", "-o", $"lowerdir={lower},upperdir={upper}/data,workdir={upper}/work,xino=off");
            var secret = merged + "/secret/key.txt";
            File.WriteAllText(secret, "TOP-SECRET\n");
            string Dev(string path) => Run.Wait("stat", ["-c", "%d", path]).Stdout.Trim();
            Assert.True(Dev(secret) != Dev(merged + "/secret"), "the file's st_dev should be its layer's, not the overlay's, for this test to mean anything");
            var policy = "overlay-hardlink-" + mode;
            using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = s.OpenPolicy(policy, mode, "sys_openat", merged + "/secret/") },
                "--export-extensions");
            Assert.Contains($"Policy {policy} loaded", agent.Stderr);
            var link = merged + "/elsewhere/innocent.txt";
            Assert.Equal(0, Run.Wait("/usr/bin/ln", [secret, link]).Code);
            AssertRun(Run.Wait(s.Tool, ["cat", link]), mode, "a hard link on the overlay");
            var body = PathEvasionTests.WaitFor(agent, 0, policy, link, "a hard link on the overlay");
            Assert.Equal(mode == "enforce", body.GetProperty("securityagent").GetProperty("enforced").GetBoolean());
            int after = agent.Events.All.Count;
            File.WriteAllText(merged + "/elsewhere/plain.txt", "plain\n");
            Assert.Equal(0, Run.Wait(s.Tool, ["cat", merged + "/elsewhere/plain.txt"]).Code);
            Thread.Sleep(500);
            Assert.DoesNotContain(agent.Events.All.Skip(after), e => PathEvasionTests.Body(e, policy) is not null);
        }
        finally
        {
            foreach (var m in Enumerable.Reverse(mounted))
                Run.Wait("umount", ["-l", m]);
        }
    }
}
