using System.Text.Json;
using SecurityAgent.Kernel;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>Opens submitted through io_uring (IORING_OP_OPENAT / IORING_OP_OPENAT2) never enter sys_enter_openat: the
/// policies on openat and openat2 must see them all the same. A test-built tool opens a test-owned secret through a
/// ring it sets up with raw syscalls (no liburing), by an absolute name, a relative one, a dirfd, openat2, and through
/// an SQPOLL ring whose kernel thread submits the request; each is reported with the resolved path and killed in
/// enforce mode; an unrelated file is not reported. The policies are scoped to the tool, compiled into the temp dir.</summary>
[Collection("kernel")]
public class IoUringEvasionTests
{
    /// <summary>"uring-tool [-sqpoll] [-async] [-fixed] [-inroot] [-cd DIR] [-dir DIR] [-pre PATH] [-2] [-copy OUT] NAME":
    /// opens NAME with one io_uring request (OPENAT, or OPENAT2 with -2; relative to the fd of DIR with -dir, to the cwd
    /// DIR with -cd; under RESOLVE_IN_ROOT with -inroot; handed to an io-wq worker with -async; submitted by the ring's
    /// SQPOLL thread with -sqpoll; into the ring's fixed-file slot 0 with -fixed), then prints the file (read through the
    /// ring from a fixed slot). -pre PATH opens PATH (O_PATH) first and puts its fd in NAME's "%d". -copy OUT submits the
    /// open into slot 0 linked (IOSQE_IO_LINK) to a READ of slot 0 linked to a WRITE of what was read to OUT, all three
    /// in one io_uring_enter, then prints the three results. -unlink, -mkdir, -rename TO, -symlink TO, -link TO make the
    /// request IORING_OP_UNLINKAT, MKDIRAT, RENAMEAT, SYMLINKAT or LINKAT of NAME (relative to -dir's fd; symlink: NAME
    /// is the link's content, TO the link) and print its result.</summary>
    private const string ToolSource = """
        #define _GNU_SOURCE
        #include <fcntl.h>
        #include <linux/io_uring.h>
        #include <linux/openat2.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include <sys/mman.h>
        #include <sys/syscall.h>
        #include <unistd.h>
        static struct io_uring_params p;
        static int ring;
        static char *sq;
        static struct io_uring_sqe *sqes;
        static unsigned setup;
        static struct io_uring_sqe *next(void) {
            unsigned *tail = (unsigned *)(sq + p.sq_off.tail), t = *tail;
            ((unsigned *)(sq + p.sq_off.array))[t & *(unsigned *)(sq + p.sq_off.ring_mask)] = t & *(unsigned *)(sq + p.sq_off.ring_mask);
            struct io_uring_sqe *e = &sqes[t & *(unsigned *)(sq + p.sq_off.ring_mask)];
            memset(e, 0, sizeof *e);
            __atomic_store_n(tail, t + 1, __ATOMIC_RELEASE);
            return e;
        }
        /* Submits the n queued entries and waits for n completions; their results in res[]. */
        static int run(unsigned n, int *res) {
            unsigned flags = IORING_ENTER_GETEVENTS;
            if ((setup & IORING_SETUP_SQPOLL) && (__atomic_load_n((unsigned *)(sq + p.sq_off.flags), __ATOMIC_ACQUIRE) & IORING_SQ_NEED_WAKEUP))
                flags |= IORING_ENTER_SQ_WAKEUP;
            unsigned *head = (unsigned *)(sq + p.cq_off.head), *ctail = (unsigned *)(sq + p.cq_off.tail);
            for (unsigned got = 0; got < n;) {
                while (__atomic_load_n(ctail, __ATOMIC_ACQUIRE) == *head)
                    if (syscall(__NR_io_uring_enter, ring, (setup & IORING_SETUP_SQPOLL) || got ? 0 : n, 1, flags, NULL, 0) < 0) { perror("io_uring_enter"); return -1; }
                struct io_uring_cqe *cqe = &((struct io_uring_cqe *)(sq + p.cq_off.cqes))[*head & *(unsigned *)(sq + p.cq_off.ring_mask)];
                res[cqe->user_data] = cqe->res;
                __atomic_store_n(head, *head + 1, __ATOMIC_RELEASE);
                got++;
            }
            return 0;
        }
        int main(int argc, char **argv) {
            int op = IORING_OP_OPENAT, dfd = AT_FDCWD, i = 1, fixed = 0, async = 0, out = -1;
            unsigned long long resolve = 0;
            char name[512] = "";
            const char *pre = NULL, *to = NULL;
            fprintf(stderr, "pid %d\n", getpid());
            for (; i < argc - 1; i++) {
                if (!strcmp(argv[i], "-sqpoll")) setup |= IORING_SETUP_SQPOLL;
                else if (!strcmp(argv[i], "-2")) op = IORING_OP_OPENAT2;
                else if (!strcmp(argv[i], "-fixed")) fixed = 1;
                else if (!strcmp(argv[i], "-async")) async = 1;
                else if (!strcmp(argv[i], "-inroot")) { op = IORING_OP_OPENAT2; resolve = RESOLVE_IN_ROOT; }
                else if (!strcmp(argv[i], "-pre")) pre = argv[++i];
                else if (!strcmp(argv[i], "-copy")) { fixed = 1; out = open(argv[++i], O_WRONLY | O_CREAT | O_TRUNC, 0600); if (out < 0) { perror("copy"); return 3; } }
                else if (!strcmp(argv[i], "-cd")) { if (chdir(argv[++i])) { perror("chdir"); return 3; } }
                else if (!strcmp(argv[i], "-dir")) { dfd = open(argv[++i], O_PATH | O_DIRECTORY); if (dfd < 0) { perror("dir"); return 3; } }
                else if (!strcmp(argv[i], "-unlink")) op = IORING_OP_UNLINKAT;
                else if (!strcmp(argv[i], "-mkdir")) op = IORING_OP_MKDIRAT;
                else if (!strcmp(argv[i], "-rename")) { op = IORING_OP_RENAMEAT; to = argv[++i]; }
                else if (!strcmp(argv[i], "-symlink")) { op = IORING_OP_SYMLINKAT; to = argv[++i]; }
                else if (!strcmp(argv[i], "-link")) { op = IORING_OP_LINKAT; to = argv[++i]; }
            }
            if (i != argc - 1) return 2;
            if (pre) {
                int fd = open(pre, O_PATH);
                if (fd < 0) { perror("pre"); return 3; }
                snprintf(name, sizeof name, argv[i], fd);
            } else {
                snprintf(name, sizeof name, "%s", argv[i]);
            }
            p.flags = setup; p.sq_thread_idle = 2000;
            ring = syscall(__NR_io_uring_setup, 4, &p);
            if (ring < 0) { perror("io_uring_setup"); return 3; }
            size_t sqsz = p.sq_off.array + p.sq_entries * sizeof(unsigned), cqsz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
            if (cqsz > sqsz) sqsz = cqsz;
            sq = mmap(0, sqsz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
            sqes = mmap(0, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
            if (sq == MAP_FAILED || sqes == MAP_FAILED) { perror("mmap"); return 3; }
            if (fixed) {
                int none = -1;
                if (syscall(__NR_io_uring_register, ring, IORING_REGISTER_FILES, &none, 1) < 0) { perror("register"); return 3; }
            }
            struct open_how how = { .flags = O_RDONLY, .resolve = resolve };
            static char buf[256];
            int res[3] = { -1, -1, -1 };
            struct io_uring_sqe *e = next();
            if (op != IORING_OP_OPENAT && op != IORING_OP_OPENAT2) {
                /* A path operation: NAME relative to the dirfd (both names for rename and link); symlink: NAME is the
                   link's content, TO the link made. */
                e->opcode = op; e->fd = dfd; e->addr = (unsigned long)name;
                if (op == IORING_OP_MKDIRAT) e->len = 0700;
                if (op == IORING_OP_RENAMEAT || op == IORING_OP_LINKAT) { e->len = dfd; e->addr2 = (unsigned long)to; }
                if (op == IORING_OP_SYMLINKAT) e->addr2 = (unsigned long)to;
                if (run(1, res)) return 3;
                printf("res %d\n", res[0]);
                return res[0] < 0 ? 3 : 0;
            }
            e->opcode = op; e->fd = dfd; e->addr = (unsigned long)name; e->user_data = 0;
            if (op == IORING_OP_OPENAT2) { e->addr2 = (unsigned long)&how; e->len = sizeof how; }
            else e->open_flags = O_RDONLY;
            if (fixed) e->file_index = 1;
            if (async) e->flags |= IOSQE_ASYNC;
            if (out >= 0) {
                e->flags |= IOSQE_IO_LINK;
                e = next();
                e->opcode = IORING_OP_READ; e->fd = 0; e->flags = IOSQE_FIXED_FILE | IOSQE_IO_LINK; e->addr = (unsigned long)buf; e->len = 11; e->user_data = 1; /* the secret's size: a short read would fail the link */
                e = next();
                e->opcode = IORING_OP_WRITE; e->fd = out; e->addr = (unsigned long)buf; e->len = 11; e->user_data = 2;
                if (run(3, res)) return 3;
                printf("open %d read %d write %d\n", res[0], res[1], res[2]);
                return 0;
            }
            if (run(1, res)) return 3;
            if (res[0] < 0) { fprintf(stderr, "open: %s\n", strerror(-res[0])); return 3; }
            ssize_t n;
            if (fixed) {
                e = next();
                e->opcode = IORING_OP_READ; e->fd = 0; e->flags = IOSQE_FIXED_FILE; e->addr = (unsigned long)buf; e->len = sizeof buf; e->user_data = 1;
                if (run(1, res)) return 3;
                if (res[1] > 0) fwrite(buf, 1, res[1], stdout);
                return res[1] < 0 ? 3 : 0;
            }
            while ((n = read(res[0], buf, sizeof buf)) > 0) fwrite(buf, 1, n, stdout);
            return 0;
        }
        """;

    private sealed class Scene : IDisposable
    {
        public TempDir Dir { get; } = TempDir.WithFileHandles(); // the path operations are matched after the call too
        public string SecretDir => Dir.File("secret");
        public string Secret => Dir.File("secret/key.txt");
        public string Tool => Dir.File("uring-tool");

        public Scene()
        {
            Directory.CreateDirectory(SecretDir);
            Directory.CreateDirectory(Dir.File("sub"));
            File.WriteAllText(Secret, "TOP-SECRET\n");
            File.WriteAllText(Dir.File("plain.txt"), "plain\n");
            File.CreateSymbolicLink(Dir.File("link"), Secret);
            File.CreateSymbolicLink(Dir.File("linkdir"), SecretDir);
            File.CreateSymbolicLink(Dir.File("plainlink"), Dir.File("plain.txt"));
            // A jail whose own copy of the secret's path is not the secret: RESOLVE_IN_ROOT under it opens the copy.
            Directory.CreateDirectory(Jail + SecretDir);
            File.WriteAllText(Jail + Secret, "jailed\n");
            CProgram.Build(Dir, "uring-tool", ToolSource, "-O2");
        }

        public string Jail => Dir.File("jail");

        public void Dispose() => Dir.Dispose();

        public string Policy(string name, string mode) => $"""
            apiVersion: securityagent.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: {name}
            spec:
              options:
              - name: policy-mode
                value: {mode}
              kprobes:
            {Hook("sys_openat")}
            {Hook("sys_openat2")}
            """;

        /// <summary>Hooks on the path syscalls whose io_uring operations run them, on the name in the secret dir.</summary>
        public string PathPolicy(string name, string mode) => $"""
            apiVersion: securityagent.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: {name}
            spec:
              options:
              - name: policy-mode
                value: {mode}
              kprobes:
            {Hook("sys_unlinkat")}
            {Hook("sys_renameat2")}
            {Hook("sys_mkdirat")}
            {Hook("sys_symlinkat", 2)}
            {Hook("sys_linkat")}
            """;

        private string Hook(string call, int index = 1) => $"""
              - call: {call}
                syscall: true
                args:
                - index: {index}
                  type: string
                  label: path
                selectors:
                - matchArgs:
                  - index: {index}
                    operator: Prefix
                    values: ["{SecretDir}/"]
                  matchBinaries:
                  - operator: In
                    values: ["{Tool}"]
                  matchActions:
                  - action: Sigkill
            """;

        /// <summary>Each io_uring open of the secret: the tool's arguments, the string passed, whether the ring's SQPOLL
        /// thread submits it.</summary>
        public IEnumerable<(string What, string[] Args, string Passed, bool SqPoll)> Opens()
        {
            yield return ("IORING_OP_OPENAT, an absolute name", [Secret], Secret, false);
            yield return ("IORING_OP_OPENAT, a name relative to the cwd", ["-cd", Dir.Path, "secret/../secret/key.txt"], "secret/../secret/key.txt", false);
            yield return ("IORING_OP_OPENAT, a name relative to a dirfd", ["-dir", Dir.File("sub"), "../secret//key.txt"], "../secret//key.txt", false);
            yield return ("IORING_OP_OPENAT2, a name relative to a dirfd", ["-2", "-dir", SecretDir, "key.txt"], "key.txt", false);
            yield return ("IORING_OP_OPENAT2, an absolute name", ["-2", Secret], Secret, false);
            yield return ("IORING_OP_OPENAT from an SQPOLL ring", ["-sqpoll", Secret], Secret, true);
            yield return ("IORING_OP_OPENAT2 from an SQPOLL ring, relative to a dirfd", ["-sqpoll", "-2", "-dir", Dir.Path, "secret/key.txt"], "secret/key.txt", true);
        }
    }


    /// <summary>The event of <paramref name="policy"/> exported after the first <paramref name="from"/> whose passed
    /// string starts with <paramref name="passed"/>.</summary>
    private static JsonElement WaitForPassedPrefix(AgentProcess agent, int from, string policy, string passed, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            var all = agent.Events.All;
            for (int i = from; i < all.Count; i++)
                if (PathEvasionTests.Body(all[i], policy) is { } b && PathEvasionTests.Passed(b)?.StartsWith(passed, StringComparison.Ordinal) == true)
                    return b;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"no {policy} event for {what} ({passed}...)");
            Thread.Sleep(50);
        }
    }

    [RequiresKernel(Mechanism.Tracepoint)]
    public void An_io_uring_open_of_another_name_of_the_secret_is_reported_on_the_file_opened_in_monitor_mode() => OtherNames("monitor");

    [RequiresKernel(Mechanism.Tracepoint)]
    public void An_io_uring_open_of_another_name_of_the_secret_is_killed_on_the_file_opened_in_enforce_mode() => OtherNames("enforce");

    private static void OtherNames(string mode)
    {
        using var s = new Scene();
        var policy = "uring-exit-" + mode;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = s.Policy(policy, mode) }, "--export-extensions");
        Assert.Contains($"Policy {policy} loaded", agent.Stderr);
        (string What, string[] Args, string Passed)[] opens =
        [
            ("IORING_OP_OPENAT of a symlink to the secret", [s.Dir.File("link")], s.Dir.File("link")),
            ("IORING_OP_OPENAT2 through a symlinked directory, completed by an io-wq worker", ["-2", "-async", s.Dir.File("linkdir/key.txt")], s.Dir.File("linkdir/key.txt")),
            ("IORING_OP_OPENAT through /proc/self/fd of the temp dir", ["-pre", s.Dir.Path, "/proc/self/fd/%d/secret/key.txt"], "/proc/self/fd/"),
            ("IORING_OP_OPENAT of a symlink into the ring's fixed-file table", ["-fixed", s.Dir.File("link")], s.Dir.File("link")),
            ("IORING_OP_OPENAT of a symlink from an SQPOLL ring", ["-sqpoll", s.Dir.File("link")], s.Dir.File("link")),
        ];
        foreach (var (what, args, passed) in opens)
        {
            int from = agent.Events.All.Count;
            var r = Run.Wait(s.Tool, args);
            if (mode == "monitor")
                Assert.True(r.Code == 0 && r.Stdout == "TOP-SECRET\n", $"{what}: monitor mode must not stop the read: {r.Code} '{r.Stdout}' {r.Stderr}");
            else
                Assert.True(r.Code == 137 && r.Stdout == "", $"{what}: expected SIGKILL before any output, got {r.Code} '{r.Stdout}' {r.Stderr}");
            var body = WaitForPassedPrefix(agent, from, policy, passed, what);
            Assert.Equal(s.Secret, body.GetProperty("args")[0].GetProperty("string_arg").GetString());
            var ext = body.GetProperty("securityagent");
            Assert.True(ext.TryGetProperty("io_uring", out var uring) && uring.GetBoolean(), $"{what}: securityagent.io_uring missing: {body}");
            Assert.True(ext.TryGetProperty("matched_at_exit", out var atExit) && atExit.GetBoolean(), $"{what}: not matched on the file opened: {body}");
            Assert.Equal(mode == "enforce", ext.GetProperty("enforced").GetBoolean());
            var process = body.GetProperty("process");
            Assert.True(r.Stderr.StartsWith($"pid {process.GetProperty("pid").GetInt32()}\n", StringComparison.Ordinal),
                $"{what}: the event's pid {process.GetProperty("pid")} is not the tool's: {r.Stderr}");
        }
        int after = agent.Events.All.Count;
        foreach (var args in (string[][])[[s.Dir.File("plainlink")], ["-fixed", "-async", s.Dir.File("plainlink")]])
        {
            var r = Run.Wait(s.Tool, args);
            Assert.True(r.Code == 0 && r.Stdout == "plain\n", $"a symlink to an unrelated file read through io_uring ({string.Join(' ', args)}): {r.Code} '{r.Stdout}' {r.Stderr}");
        }
        Thread.Sleep(500);
        Assert.DoesNotContain(agent.Events.All.Skip(after), e => PathEvasionTests.Body(e, policy) is not null);
    }

    [RequiresKernel(Mechanism.Tracepoint)]
    public void An_io_uring_openat2_under_RESOLVE_IN_ROOT_is_matched_on_the_name_joined_to_its_dirfd()
    {
        using var s = new Scene();
        const string policy = "uring-inroot";
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = s.Policy(policy, "enforce") }, "--export-extensions");
        Assert.Contains($"Policy {policy} loaded", agent.Stderr);
        int from = agent.Events.All.Count;
        // "/secret/key.txt" in the temp dir as root is the secret, matched at submission (not on the file opened).
        var r = Run.Wait(s.Tool, ["-inroot", "-dir", s.Dir.Path, "/secret/key.txt"]);
        Assert.True(r.Code == 137 && r.Stdout == "", $"expected SIGKILL before any output, got {r.Code} '{r.Stdout}' {r.Stderr}");
        var body = WaitForPassedPrefix(agent, from, policy, "secret/key.txt", "RESOLVE_IN_ROOT");
        Assert.Equal(s.Secret, body.GetProperty("args")[0].GetProperty("string_arg").GetString());
        Assert.False(body.GetProperty("securityagent").TryGetProperty("matched_at_exit", out _), $"matched only on the file opened: {body}");
        // The secret's own absolute name in a jail as root is the jail's copy: not the secret, not killed.
        int after = agent.Events.All.Count;
        r = Run.Wait(s.Tool, ["-inroot", "-dir", s.Jail, s.Secret]);
        Assert.True(r.Code == 0 && r.Stdout == "jailed\n", $"the jail's copy under RESOLVE_IN_ROOT: {r.Code} '{r.Stdout}' {r.Stderr}");
        Thread.Sleep(500);
        Assert.DoesNotContain(agent.Events.All.Skip(after), e => PathEvasionTests.Body(e, policy) is not null);
    }

    [RequiresKernel(Mechanism.Tracepoint)]
    public void An_open_submitted_through_io_uring_is_reported_with_the_resolved_path_in_monitor_mode() => Opens("monitor");

    [RequiresKernel(Mechanism.Tracepoint)]
    public void An_open_submitted_through_io_uring_is_killed_in_enforce_mode() => Opens("enforce");

    private static void Opens(string mode)
    {
        using var s = new Scene();
        var policy = "uring-" + mode;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = s.Policy(policy, mode) }, "--export-extensions");
        Assert.Contains($"Policy {policy} loaded", agent.Stderr);
        foreach (var (what, args, passed, sqpoll) in s.Opens())
        {
            int from = agent.Events.All.Count;
            var r = Run.Wait(s.Tool, args);
            if (mode == "monitor")
                Assert.True(r.Code == 0 && r.Stdout == "TOP-SECRET\n", $"{what}: monitor mode must not stop the read: {r.Code} '{r.Stdout}' {r.Stderr}");
            else
                Assert.True(r.Code == 137 && r.Stdout == "", $"{what}: expected SIGKILL before any output, got {r.Code} '{r.Stdout}' {r.Stderr}");
            var body = PathEvasionTests.WaitFor(agent, from, policy, passed, what);
            Assert.Equal(s.Secret, body.GetProperty("args")[0].GetProperty("string_arg").GetString());
            var ext = body.GetProperty("securityagent");
            Assert.True(ext.TryGetProperty("io_uring", out var uring) && uring.GetBoolean(), $"{what}: securityagent.io_uring missing: {body}");
            Assert.Equal(mode == "enforce", ext.GetProperty("enforced").GetBoolean());
            // The process that set the ring up, also when its SQPOLL thread (another thread of it) submitted the request.
            var process = body.GetProperty("process");
            Assert.Equal(s.Tool, process.GetProperty("binary").GetString());
            Assert.True(r.Stderr.StartsWith($"pid {process.GetProperty("pid").GetInt32()}\n", StringComparison.Ordinal),
                $"{what}{(sqpoll ? " (SQPOLL)" : "")}: the event's pid {process.GetProperty("pid")} is not the tool's: {r.Stderr}");
        }
        int after = agent.Events.All.Count;
        foreach (var args in (string[][])[[s.Dir.File("plain.txt")], ["-sqpoll", "-2", "-dir", s.Dir.File("sub"), "../plain.txt"]])
        {
            var r = Run.Wait(s.Tool, args);
            Assert.True(r.Code == 0 && r.Stdout == "plain\n", $"an unrelated file read through io_uring ({string.Join(' ', args)}): {r.Code} '{r.Stdout}' {r.Stderr}");
        }
        Thread.Sleep(500);
        Assert.DoesNotContain(agent.Events.All.Skip(after), e => PathEvasionTests.Body(e, policy) is not null);
    }
    [RequiresKernel(Mechanism.Tracepoint)]
    public void Io_uring_path_operations_are_reported_by_the_hooks_of_their_syscalls_in_monitor_mode() => PathOperations("monitor");

    [RequiresKernel(Mechanism.Tracepoint)]
    public void Io_uring_path_operations_are_killed_by_the_hooks_of_their_syscalls_in_enforce_mode() => PathOperations("enforce");

    private static void PathOperations(string mode)
    {
        using var s = new Scene();
        var policy = "uring-paths-" + mode;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = s.PathPolicy(policy, mode) }, "--export-extensions");
        Assert.Contains($"Policy {policy} loaded", agent.Stderr);
        (string What, string[] Args, string Passed, string Path)[] ops =
        [
            ("IORING_OP_MKDIRAT in the secret dir (sys_mkdirat's hook)", ["-mkdir", "-dir", s.SecretDir, "made"], "made", s.SecretDir + "/made"),
            ("IORING_OP_SYMLINKAT of a link in the secret dir (sys_symlinkat's hook)", ["-dir", s.SecretDir, "-symlink", "evil", "/etc/hostname"], "evil", s.SecretDir + "/evil"),
            ("IORING_OP_LINKAT of the secret (sys_linkat's hook)", ["-dir", s.Dir.Path, "-link", "hardlink", "sub/../secret/key.txt"], "sub/../secret/key.txt", s.Secret),
            ("IORING_OP_RENAMEAT of the secret (sys_renameat2's hook)", ["-dir", s.Dir.Path, "-rename", "stolen", "secret//key.txt"], "secret//key.txt", s.Secret),
            ("IORING_OP_UNLINKAT of the secret (sys_unlinkat's hook)", ["-unlink", "-dir", s.SecretDir, "key.txt"], "key.txt", s.Secret),
        ];
        foreach (var (what, args, passed, path) in ops)
        {
            if (!File.Exists(s.Secret))
                File.WriteAllText(s.Secret, "TOP-SECRET\n");
            int from = agent.Events.All.Count;
            var r = Run.Wait(s.Tool, args);
            if (mode == "monitor")
                Assert.True(r.Code == 0 && r.Stdout == "res 0\n", $"{what}: monitor mode must not stop it: {r.Code} '{r.Stdout}' {r.Stderr}");
            else
                Assert.True(r.Code == 137 && r.Stdout == "", $"{what}: expected SIGKILL before any output, got {r.Code} '{r.Stdout}' {r.Stderr}");
            var body = WaitForPassedPrefix(agent, from, policy, passed, what);
            Assert.Equal(path, body.GetProperty("args")[0].GetProperty("string_arg").GetString());
            var ext = body.GetProperty("securityagent");
            Assert.True(ext.TryGetProperty("io_uring", out var uring) && uring.GetBoolean(), $"{what}: securityagent.io_uring missing: {body}");
            Assert.Equal(mode == "enforce", ext.GetProperty("enforced").GetBoolean());
            Assert.True(r.Stderr.StartsWith($"pid {body.GetProperty("process").GetProperty("pid").GetInt32()}\n", StringComparison.Ordinal),
                $"{what}: the event's pid is not the tool's: {r.Stderr}");
        }
        int after = agent.Events.All.Count;
        foreach (var args in (string[][])[["-unlink", "-dir", s.Dir.Path, "plain.txt"], ["-mkdir", "-dir", s.Dir.Path, "other"]])
        {
            var r = Run.Wait(s.Tool, args);
            Assert.True(r.Code == 0 && r.Stdout == "res 0\n", $"an unrelated path operation through io_uring ({string.Join(' ', args)}): {r.Code} '{r.Stdout}' {r.Stderr}");
        }
        Thread.Sleep(500);
        Assert.DoesNotContain(agent.Events.All.Skip(after), e => PathEvasionTests.Body(e, policy) is not null);
    }

    /// <summary>The path hooks are matched twice: at submission on the name (bpf/iouring.bpf.c) and after the call on the
    /// real path (fanotify). An io_uring unlink is run by an io-wq worker (a thread of the tool), which fanotify names, and
    /// noted at submission for the tool's process: the two matches of one call must be one event, a user counts them. By
    /// the secret's name (matched at submission and seen by fanotify) and through a symlinked directory (only fanotify can
    /// tell), repeatedly, each tool exiting as soon as its unlink completed.</summary>
    [RequiresKernel(Mechanism.Tracepoint)]
    public void One_io_uring_unlink_of_a_watched_file_is_one_event()
    {
        using var s = new Scene();
        const string policy = "uring-unlink-once";
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = s.PathPolicy(policy, "monitor") }, "--export-extensions");
        Assert.Contains($"Policy {policy} loaded", agent.Stderr);
        (string What, string[] Args, bool AfterCall)[] unlinks =
        [
            ("IORING_OP_UNLINKAT of the secret by a dirfd and its name", ["-unlink", "-dir", s.SecretDir, "key.txt"], false),
            ("IORING_OP_UNLINKAT of the secret by its absolute name", ["-unlink", s.Secret], false),
            ("IORING_OP_UNLINKAT of the secret through a symlinked directory", ["-unlink", s.Dir.File("linkdir/key.txt")], true),
        ];
        var runs = new List<(string What, int Pid, bool AfterCall)>();
        foreach (var (what, args, afterCall) in unlinks)
            for (int i = 0; i < 4; i++)
            {
                File.WriteAllText(s.Secret, "TOP-SECRET\n");
                var r = Run.Wait(s.Tool, args);
                Assert.True(r.Code == 0 && r.Stdout == "res 0\n" && !File.Exists(s.Secret), $"{what}: {r.Code} '{r.Stdout}' {r.Stderr}");
                runs.Add(($"{what} #{i}", int.Parse(r.Stderr["pid ".Length..r.Stderr.IndexOf('\n')], System.Globalization.CultureInfo.InvariantCulture), afterCall));
            }
        // Events are counted per tool process (the event's pid), once every unlink matched at submission has its event
        // and both notifications of each change (FAN_DELETE, the watched file's link count) have been read.
        int Events(int pid) => agent.Events.All.Count(e => PathEvasionTests.Body(e, policy) is { } b && b.GetProperty("process").GetProperty("pid").GetInt32() == pid);
        var deadline = DateTime.UtcNow.AddSeconds(Environment.GetEnvironmentVariable("SECAGENT_IN_VM") == "1" ? 60 : 10);
        while (runs.Any(r => Events(r.Pid) == 0) && DateTime.UtcNow < deadline)
            Thread.Sleep(100);
        Thread.Sleep(1500);
        var counts = runs.Select(r => $"{r.What}: {Events(r.Pid)} (, tool pid {r.Pid}").ToList();
        // Matched at submission or only after the call (through the symlinked directory): exactly one event each.
        Assert.True(counts.All(c => c.Contains(": 1 (", StringComparison.Ordinal)),
            "events per unlink:\n" + string.Join("\n", counts) + AfterCallDiagnostics(agent, s.Dir.Path) + PathEvasionTests.Diagnostics(agent, 0));
    }

    /// <summary>An IORING_OP_UNLINKAT of the secret through a symlink to its directory: the name at submission is not in
    /// the secret dir, so only fanotify's after-call match sees the change, made by an io-wq worker (a thread of the
    /// tool) that is gone with the tool by the time the agent reads it. Each unlink is reported once, on the secret's real
    /// path with the name the tool passed, for the tool's process and binary (matchBinaries names the tool), however late
    /// the agent reads it.</summary>
    [RequiresKernel(Mechanism.Tracepoint)]
    public void An_io_uring_unlink_through_a_symlinked_directory_is_reported_for_the_tool_that_submitted_it()
    {
        using var s = new Scene();
        const string policy = "uring-unlink-symlinked";
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = s.PathPolicy(policy, "monitor") }, "--export-extensions");
        Assert.Contains($"Policy {policy} loaded", agent.Stderr);
        var pids = new List<int>();
        for (int i = 0; i < 4; i++)
        {
            File.WriteAllText(s.Secret, "TOP-SECRET\n");
            var r = Run.Wait(s.Tool, ["-unlink", s.Dir.File("linkdir/key.txt")]);
            Assert.True(r.Code == 0 && r.Stdout == "res 0\n" && !File.Exists(s.Secret), $"unlink #{i}: {r.Code} '{r.Stdout}' {r.Stderr}");
            pids.Add(int.Parse(r.Stderr["pid ".Length..r.Stderr.IndexOf('\n')], System.Globalization.CultureInfo.InvariantCulture));
        }
        List<JsonElement> Of(int pid) => agent.Events.All.Select(e => PathEvasionTests.Body(e, policy)).OfType<JsonElement>()
            .Where(b => b.GetProperty("process").GetProperty("pid").GetInt32() == pid).ToList();
        var deadline = DateTime.UtcNow.AddSeconds(Environment.GetEnvironmentVariable("SECAGENT_IN_VM") == "1" ? 60 : 10);
        while (pids.Any(p => Of(p).Count == 0) && DateTime.UtcNow < deadline)
            Thread.Sleep(100);
        Thread.Sleep(1500); // a second event of one unlink would come with the first
        var report = string.Join("\n", pids.Select((p, i) => $"unlink #{i} (tool pid {p}): {Of(p).Count} event(s)"));
        Assert.True(pids.All(p => Of(p).Count == 1), "events per unlink:\n" + report + AfterCallDiagnostics(agent, s.Dir.Path) + PathEvasionTests.Diagnostics(agent, 0));
        foreach (var body in pids.Select(p => Of(p)[0]))
        {
            Assert.Equal(s.Secret, body.GetProperty("args")[0].GetProperty("string_arg").GetString());
            Assert.Equal(s.Dir.File("linkdir/key.txt"), PathEvasionTests.Passed(body));
            Assert.Equal(s.Tool, body.GetProperty("process").GetProperty("binary").GetString());
            Assert.Equal("fanotify", body.GetProperty("securityagent").GetProperty("decided_by").GetString());
        }
    }

    /// <summary>What a missed after-the-call match needs: the file system the scene is on, the agent's fanotify marks
    /// (its fdinfo) and what it logged about them, the io_uring worker program and the workers it recorded.</summary>
    private static string AfterCallDiagnostics(AgentProcess agent, string dir)
    {
        var fs = Run.Wait("stat", ["-f", "-c", "%T", dir]).Stdout.Trim();
        var marks = agent.FanotifyMarks();
        var logged = agent.Stderr.Split('\n').Where(l => l.Contains("fanotify", StringComparison.Ordinal));
        var worker = Run.Bpftool("prog", "show", "name", SecurityAgent.Bpf.BpfNames.Programs.UringWorker);
        var id = worker.Split(':')[0].Trim();
        var links = Run.Bpftool("link", "show").Split('\n').Where(l => id.Length > 0 && l.Contains($"prog {id}", StringComparison.Ordinal));
        return $"\nscene on {fs}\nfanotify marks ({marks.Count}):\n{string.Join("\n", marks)}\nfanotify in the log:\n{string.Join("\n", logged)}"
            + $"\nsa_uring_worker: {worker}links: {string.Join("; ", links)}\nsa_io_workers:\n{Run.Bpftool("map", "dump", "name", SecurityAgent.Bpf.BpfNames.Maps.IoWorkers)}";
    }

    /// <summary>An open linked (IOSQE_IO_LINK) to a READ of its fixed-file slot, linked to a WRITE of what was read to
    /// another file, all submitted in one io_uring_enter: without the agent the chain copies the secret; with the open
    /// killed at submission (inline, by an io-wq worker, or submitted by the SQPOLL thread) the process dies and the copy
    /// stays empty: the kill lands before the linked requests run.</summary>
    [RequiresKernel(Mechanism.Tracepoint)]
    public void A_read_and_write_linked_to_an_io_uring_open_killed_at_submission_do_not_copy_the_secret()
    {
        using var s = new Scene();
        var copy = s.Dir.File("copy.txt");
        var r = Run.Wait(s.Tool, ["-copy", copy, s.Secret]);
        Assert.True(r.Code == 0 && r.Stdout == "open 0 read 11 write 11\n" && File.ReadAllText(copy) == "TOP-SECRET\n",
            $"without the agent the linked chain copies the secret: {r.Code} '{r.Stdout}' {r.Stderr}");
        const string policy = "uring-linked";
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = s.Policy(policy, "enforce") }, "--export-extensions");
        Assert.Contains($"Policy {policy} loaded", agent.Stderr);
        foreach (var how in (string[][])[[], ["-async"], ["-sqpoll"]])
            for (int i = 0; i < 3; i++)
            {
                File.Delete(copy);
                int from = agent.Events.All.Count;
                r = Run.Wait(s.Tool, [.. how, "-copy", copy, s.Secret]);
                var what = $"a linked chain after an open killed at submission ({string.Join(' ', how)})";
                Assert.True(r.Code == 137 && r.Stdout == "", $"{what}: expected SIGKILL, got {r.Code} '{r.Stdout}' {r.Stderr}");
                PathEvasionTests.WaitFor(agent, from, policy, s.Secret, what);
                // The process is gone (waited for); its ring's requests were cancelled with it.
                Assert.Equal("", File.Exists(copy) ? File.ReadAllText(copy) : "");
            }
    }
}
