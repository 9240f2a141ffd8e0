using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using SecurityAgent.Api;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>The API socket is the agent's own attack surface: born private, owned by one agent, bounded.</summary>
[Collection("kernel")]
public class ApiSocketTests
{
    /// <summary>As user nobody: connect to PATH in a loop for MS milliseconds; on a connection, ask for /healthz.
    /// Prints attempts, attempts that found the socket file, connections, connections that got an answer.</summary>
    private const string HammerSource = """
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include <unistd.h>
        #include <time.h>
        #include <sys/socket.h>
        #include <sys/stat.h>
        #include <sys/un.h>
        static long ms(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000 + t.tv_nsec / 1000000; }
        int main(int argc, char **argv) {
            struct sockaddr_un a = { .sun_family = AF_UNIX };
            strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
            long end = ms() + atol(argv[2]), attempts = 0, existed = 0, connected = 0, answered = 0;
            while (ms() < end) {
                struct stat st;
                attempts++;
                if (lstat(argv[1], &st) == 0) existed++;
                int fd = socket(AF_UNIX, SOCK_STREAM, 0);
                if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
                    connected++;
                    const char *req = "GET /healthz HTTP/1.0\r\n\r\n";
                    char buf[64];
                    if (write(fd, req, strlen(req)) > 0 && read(fd, buf, sizeof buf) > 0) answered++;
                }
                close(fd);
            }
            printf("attempts=%ld existed=%ld connected=%ld answered=%ld\n", attempts, existed, connected, answered);
            return 0;
        }
        """;

    private static Dictionary<string, long> Counts(string output) =>
        output.Trim().Split(' ').Select(kv => kv.Split('=')).ToDictionary(kv => kv[0], kv => long.Parse(kv[1]));

    [Fact]
    public async Task User_nobody_never_gets_a_connection_while_the_agent_starts_under_umask_000_and_a_loosened_socket_still_refuses_it()
    {
        using var dir = new TempDir();
        File.SetUnixFileMode(dir.Path, (UnixFileMode)0b111_101_101); // others may traverse: only the socket's own mode guards it
        File.WriteAllText(dir.File("hammer.c"), HammerSource);
        var cc = Run.Wait("cc", ["-O2", "-o", dir.File("hammer"), dir.File("hammer.c")]);
        Assert.True(cc.Code == 0, cc.Stderr);
        var socket = dir.File("agent.sock");
        Directory.CreateDirectory(dir.File("policies"));

        using var hammer = Run.Start("runuser", ["-u", "nobody", "--", dir.File("hammer"), socket, "15000"]);
        var output = hammer.StandardOutput.ReadToEndAsync();
        using var agent = Run.Start("/bin/sh", ["-c", "umask 000 && exec \"$0\" \"$@\"", "dotnet", Repo.AgentDll, "run", "--policy-dir", dir.File("policies"),
            "--export-file", dir.File("events.json"), "--api-socket", socket]);
        var stderr = new StringBuilder();
        agent.ErrorDataReceived += (_, e) => { lock (stderr) stderr.AppendLine(e.Data); };
        agent.BeginErrorReadLine();
        agent.BeginOutputReadLine();
        try
        {
            Assert.True(SpinWait.SpinUntil(() => { lock (stderr) return stderr.ToString().Contains("Agent ready"); }, 30_000), "agent not ready:\n" + stderr);
            var result = await output.WaitAsync(TimeSpan.FromSeconds(40));
            var during = Counts(result);
            Assert.True(during["existed"] > 1000, $"the hammer barely raced the start: {result}");
            Assert.Equal(0, during["connected"]);
            Assert.Equal("srw-------", Run.Wait("stat", ["-c", "%A", socket]).Stdout.Trim());

            // Even a socket someone loosened by mistake refuses a non-root peer: SO_PEERCRED, on every connection.
            File.SetUnixFileMode(socket, (UnixFileMode)0b110_110_110);
            var loosened = Counts(Run.Wait("runuser", ["-u", "nobody", "--", dir.File("hammer"), socket, "500"]).Stdout);
            Assert.True(loosened["connected"] > 0, "the loosened socket should accept the connection itself");
            Assert.Equal(0, loosened["answered"]);
            Assert.True(SpinWait.SpinUntil(() => { lock (stderr) return stderr.ToString().Contains("refused a connection from uid 65534"); }, 5000));
            Assert.Equal(0, Run.Wait("dotnet", [Repo.AgentDll, "status", "--api-socket", socket]).Code); // root still gets in
        }
        finally
        {
            if (!agent.HasExited) Process.Start("kill", ["-TERM", agent.Id.ToString()])!.WaitForExit();
            agent.WaitForExit(20_000);
        }
    }

    [Fact]
    public void A_second_agent_on_the_same_socket_refuses_to_start_and_the_first_keeps_working()
    {
        using var first = new AgentProcess();
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("policies"));
        var second = Run.Wait("dotnet", [Repo.AgentDll, "run", "--policy-dir", dir.File("policies"), "--export-file", dir.File("e.json"), "--api-socket", first.Socket]);
        Assert.Equal(1, second.Code);
        Assert.Contains($"another agent (pid {first.Pid}) is running with --api-socket {first.Socket}", second.Stderr);
        Assert.DoesNotContain("Agent ready", second.Stderr);
        Assert.True(File.Exists(first.Socket));
        var status = Run.Wait("dotnet", [Repo.AgentDll, "status", "--api-socket", first.Socket]);
        Assert.True(status.Code == 0, status.Stderr);
        Assert.Contains("Kernel", status.Stdout);
    }

    [Fact]
    public void A_stale_socket_is_replaced_and_anything_else_at_the_path_is_left_alone()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("policies"));
        var path = dir.File("stale.sock");
        using (var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
            s.Bind(new UnixDomainSocketEndPoint(path)); // closed without unlink: what a killed agent leaves
        using (var agent = new AgentProcess("--api-socket", path))
            Assert.Equal(0, Run.Wait("dotnet", [Repo.AgentDll, "status", "--api-socket", path]).Code);
        Assert.False(File.Exists(path), "the agent removes its socket when it stops");

        File.WriteAllText(dir.File("notes.txt"), "keep me");
        var refused = Run.Wait("dotnet", [Repo.AgentDll, "run", "--policy-dir", dir.File("policies"), "--export-file", dir.File("e.json"), "--api-socket", dir.File("notes.txt")]);
        Assert.Equal(1, refused.Code);
        Assert.Contains("exists and is not a socket", refused.Stderr);
        Assert.Equal("keep me", File.ReadAllText(dir.File("notes.txt")));
    }

    private static async Task<string> Raw(string socket, byte[] request, int readTimeoutMs = 15_000)
    {
        using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await s.ConnectAsync(new UnixDomainSocketEndPoint(socket));
        try { await s.SendAsync(request); }
        catch (SocketException) { } // the server may close before it has read everything
        var buf = new byte[4096];
        using var cts = new CancellationTokenSource(readTimeoutMs);
        var text = new StringBuilder();
        try
        {
            int n;
            while ((n = await s.ReceiveAsync(buf, cts.Token)) > 0) text.Append(Encoding.ASCII.GetString(buf, 0, n));
        }
        catch (SocketException) { }
        return text.ToString();
    }

    [Fact]
    public async Task Oversized_slow_malformed_and_excess_requests_are_refused_and_memory_comes_back_after_a_large_one()
    {
        using var agent = new AgentProcess();
        using var api = new HttpClient(new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                await s.ConnectAsync(new UnixDomainSocketEndPoint(agent.Socket), ct);
                return new NetworkStream(s, true);
            },
        }) { Timeout = TimeSpan.FromSeconds(60) };
        async Task<int> Post(string yaml)
        {
            var r = await api.PostAsync("http://agent/v1/policies", new StringContent(yaml, Encoding.UTF8, "application/yaml"));
            if (r.IsSuccessStatusCode) await api.DeleteAsync("http://agent/v1/policies/big-policy");
            return (int)r.StatusCode;
        }
        var values = string.Join(", ", Enumerable.Range(0, 28_000).Select(i => $"\"/nonexistent/{i:D8}\""));
        var big = TestPolicies.OpenatKill("big-policy", "/nonexistent/bin", "/nonexistent/x", mode: "monitor").Replace("[\"/nonexistent/x\"]", $"[{values}]");
        Assert.InRange(Encoding.UTF8.GetByteCount(big), 600_000, ApiServer.MaxRequestBodyBytes);
        await Post(TestPolicies.OpenatKill("warm-up", "/nonexistent/bin", "/nonexistent/x").Replace("selectors:", "selectros:")); // the parser's code loaded
        await Task.Delay(1000);
        double baseline = ProcStat.RssMb(agent.Pid);

        var huge = new string('#', 5 * 1024 * 1024);
        var tooLarge = await Raw(agent.Socket, Encoding.ASCII.GetBytes($"POST /v1/policies HTTP/1.1\r\nHost: a\r\nContent-Type: application/yaml\r\nContent-Length: {huge.Length}\r\n\r\n{huge}"));
        Assert.StartsWith("HTTP/1.1 413", tooLarge);
        double afterRefused = ProcStat.RssMb(agent.Pid);

        // A policy just under the limit is parsed (and refused or loaded: either way the memory it took comes back).
        int status = await Post(big);
        Assert.NotEqual(500, status);
        await Task.Delay(1000);
        double afterLarge = ProcStat.RssMb(agent.Pid);
        await Post(big);
        await Task.Delay(1000);
        double afterSecond = ProcStat.RssMb(agent.Pid);
        Console.WriteLine($"RSS: {baseline:F0} MB before, {afterRefused:F0} MB after a refused 5 MB request, {afterLarge:F0} MB after a " +
            $"{Encoding.UTF8.GetByteCount(big) / 1024} KB policy (answered {status}), {afterSecond:F0} MB after the same again");
        Assert.True(afterRefused - baseline < 20, $"a refused 5 MB request grew RSS from {baseline:F0} to {afterRefused:F0} MB");
        Assert.True(afterLarge - baseline < 60, $"RSS stayed at {afterLarge:F0} MB after the large policy (from {baseline:F0} MB)");
        Assert.True(afterSecond - afterLarge < 15, $"RSS grows with each large policy: {afterLarge:F0} then {afterSecond:F0} MB");

        Assert.StartsWith("HTTP/1.1 400", await Raw(agent.Socket, "GET /v1/status HTTP/1.1\r\nHost: a\r\nno colon here\r\n\r\n"u8.ToArray()));
        Assert.StartsWith("HTTP/1.1 400", await Raw(agent.Socket, [0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x0d, 0x0a, 0x0d, 0x0a])); // a TLS hello
        Assert.StartsWith("HTTP/1.1 431", await Raw(agent.Socket, Encoding.ASCII.GetBytes($"GET /v1/status HTTP/1.1\r\nHost: a\r\nX: {new string('x', 20_000)}\r\n\r\n")));

        var slow = Stopwatch.StartNew();
        var unfinished = await Raw(agent.Socket, "GET /v1/status HTTP/1.1\r\nHost: a\r\n"u8.ToArray(), readTimeoutMs: 20_000);
        Assert.True(slow.Elapsed < TimeSpan.FromSeconds(12), $"a request whose headers never end was held {slow.Elapsed.TotalSeconds:F1} s");
        Assert.DoesNotContain("200 OK", unfinished);

        var held = new List<Socket>();
        try
        {
            for (int i = 0; i < 64; i++)
            {
                var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                await s.ConnectAsync(new UnixDomainSocketEndPoint(agent.Socket));
                held.Add(s);
            }
            await Task.Delay(1000); // every held connection accepted and counted before the next one arrives
            Assert.Equal("", await Raw(agent.Socket, "GET /healthz HTTP/1.0\r\n\r\n"u8.ToArray(), readTimeoutMs: 5000)); // the 65th is closed
        }
        finally
        {
            foreach (var s in held) s.Dispose();
        }
        await Task.Delay(500);
        Assert.StartsWith("HTTP/1.1 200", await Raw(agent.Socket, "GET /readyz HTTP/1.0\r\n\r\n"u8.ToArray()));
    }

    [Fact]
    public void A_filter_the_agent_cannot_use_reaches_the_user_with_its_message_and_a_nonzero_exit()
    {
        using var agent = new AgentProcess();
        var r = Run.Wait("dotnet", [Repo.AgentDll, "events", "--allow", "{\"binary_regex\":[\"([\"]}", "--api-socket", agent.Socket], timeoutMs: 20_000);
        Assert.Equal(1, r.Code);
        Assert.Contains("secagent: ", r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
    }
}
