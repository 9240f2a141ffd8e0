using System.Text.Json;
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
    /// <summary>"open [-sqpoll] [-cd DIR] [-dir DIR] [-2] NAME": opens NAME with one io_uring request (OPENAT, or OPENAT2
    /// with -2; relative to the fd of DIR with -dir, to the cwd DIR with -cd; submitted by the ring's SQPOLL thread with
    /// -sqpoll), then prints the file.</summary>
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
        int main(int argc, char **argv) {
            unsigned setup = 0; int op = IORING_OP_OPENAT, dfd = AT_FDCWD, i = 1;
            fprintf(stderr, "pid %d\n", getpid());
            for (; i < argc - 1; i++) {
                if (!strcmp(argv[i], "-sqpoll")) setup |= IORING_SETUP_SQPOLL;
                else if (!strcmp(argv[i], "-2")) op = IORING_OP_OPENAT2;
                else if (!strcmp(argv[i], "-cd")) { if (chdir(argv[++i])) { perror("chdir"); return 3; } }
                else if (!strcmp(argv[i], "-dir")) { dfd = open(argv[++i], O_PATH | O_DIRECTORY); if (dfd < 0) { perror("dir"); return 3; } }
            }
            if (i != argc - 1) return 2;
            struct io_uring_params p; memset(&p, 0, sizeof p);
            p.flags = setup; p.sq_thread_idle = 2000;
            int ring = syscall(__NR_io_uring_setup, 4, &p);
            if (ring < 0) { perror("io_uring_setup"); return 3; }
            size_t sqsz = p.sq_off.array + p.sq_entries * sizeof(unsigned), cqsz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
            if (cqsz > sqsz) sqsz = cqsz;
            char *sq = mmap(0, sqsz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
            struct io_uring_sqe *sqes = mmap(0, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
            if (sq == MAP_FAILED || sqes == MAP_FAILED) { perror("mmap"); return 3; }
            char *cq = sq;
            struct open_how how = { .flags = O_RDONLY };
            struct io_uring_sqe *e = &sqes[0];
            memset(e, 0, sizeof *e);
            e->opcode = op; e->fd = dfd; e->addr = (unsigned long)argv[i];
            if (op == IORING_OP_OPENAT2) { e->addr2 = (unsigned long)&how; e->len = sizeof how; }
            else e->open_flags = O_RDONLY;
            unsigned *tail = (unsigned *)(sq + p.sq_off.tail);
            ((unsigned *)(sq + p.sq_off.array))[*tail & *(unsigned *)(sq + p.sq_off.ring_mask)] = 0;
            __atomic_store_n(tail, *tail + 1, __ATOMIC_RELEASE);
            unsigned flags = IORING_ENTER_GETEVENTS;
            if ((setup & IORING_SETUP_SQPOLL) && (__atomic_load_n((unsigned *)(sq + p.sq_off.flags), __ATOMIC_ACQUIRE) & IORING_SQ_NEED_WAKEUP))
                flags |= IORING_ENTER_SQ_WAKEUP;
            unsigned *head = (unsigned *)(cq + p.cq_off.head), *ctail = (unsigned *)(cq + p.cq_off.tail);
            while (__atomic_load_n(ctail, __ATOMIC_ACQUIRE) == *head)
                if (syscall(__NR_io_uring_enter, ring, (setup & IORING_SETUP_SQPOLL) ? 0 : 1, 1, flags, NULL, 0) < 0) { perror("io_uring_enter"); return 3; }
            struct io_uring_cqe *cqe = &((struct io_uring_cqe *)(cq + p.cq_off.cqes))[*head & *(unsigned *)(cq + p.cq_off.ring_mask)];
            int fd = cqe->res;
            if (fd < 0) { fprintf(stderr, "open: %s\n", strerror(-fd)); return 3; }
            char buf[256]; ssize_t n;
            while ((n = read(fd, buf, sizeof buf)) > 0) fwrite(buf, 1, n, stdout);
            return 0;
        }
        """;

    private sealed class Scene : IDisposable
    {
        public TempDir Dir { get; } = new();
        public string SecretDir => Dir.File("secret");
        public string Secret => Dir.File("secret/key.txt");
        public string Tool => Dir.File("uring-tool");

        public Scene()
        {
            Directory.CreateDirectory(SecretDir);
            Directory.CreateDirectory(Dir.File("sub"));
            File.WriteAllText(Secret, "TOP-SECRET\n");
            File.WriteAllText(Dir.File("plain.txt"), "plain\n");
            CProgram.Build(Dir, "uring-tool", ToolSource, "-O2");
        }

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

        private string Hook(string call) => $"""
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


    [Theory]
    [InlineData("monitor")]
    [InlineData("enforce")]
    public void An_open_submitted_through_io_uring_is_reported_with_the_resolved_path_and_killed_in_enforce_mode(string mode)
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
}
