using System.Diagnostics;
using System.Text.Json;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>The namespace, pid-tree and capability selectors decided in the kernel, by the real agent, against
/// binaries copied into the test's temp dir that the test starts in new namespaces (unshare, nsenter) or that
/// change their own namespaces and capabilities (a small C program compiled here). Each selector kills its own
/// copied binary when it matches: exit status 137 where it matches, 0 where it does not (the kill comes as the
/// call returns, so the call itself runs).</summary>
[Collection("kernel")]
public class NamespaceSelectorTests
{
    private const int Killed = 137;

    /// <summary>A policy on mkdir and mkdirat whose selectors each kill one copied binary when their check holds.</summary>
    private static string Policy(string name, params (string Binary, string Selector)[] selectors)
    {
        var b = new System.Text.StringBuilder($"""
            apiVersion: cilium.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: {name}
            spec:
              lists:
              - name: dircalls
                type: syscalls
                values: ["sys_mkdir", "sys_mkdirat"]
              kprobes:
              - call: "list:dircalls"
                selectors:

            """);
        foreach (var (binary, selector) in selectors)
        {
            b.Append($"    - matchBinaries:\n      - operator: In\n        values: [\"{binary}\"]\n");
            foreach (var line in selector.Split('\n'))
                b.Append("      ").Append(line).Append('\n');
            b.Append("      matchActions:\n      - action: Sigkill\n");
        }
        return b.ToString();
    }

    /// <summary>The binary's exit status (SIGKILL at the syscall's entry kills it on the way back: the call itself
    /// has run). Under unshare it runs as a child of a shell that is the new pid namespace's init, which reports it.</summary>
    private static int Mkdir(string binary, string path, string? launcher = null, params string[] launcherArgs) =>
        launcher is null ? Run.Wait(binary, [path]).Code : Run.Wait(launcher, [.. launcherArgs, "/bin/sh", "-c", $"{binary} {path}; exit $?"]).Code;

    [Fact]
    public void MatchNamespaces_host_ns_kills_in_a_new_net_namespace_with_NotIn_and_on_the_host_with_In()
    {
        using var dir = new TempDir();
        var outside = dir.CopyBinary("/usr/bin/mkdir", "ns-notin-mkdir");
        var inside = dir.CopyBinary("/usr/bin/mkdir", "ns-in-mkdir");
        using var agent = new AgentProcess(new Dictionary<string, string>
        {
            ["p.yaml"] = Policy("net-ns",
                (outside, "matchNamespaces:\n- namespace: Net\n  operator: NotIn\n  values: [host_ns]"),
                (inside, "matchNamespaces:\n- namespace: Net\n  operator: In\n  values: [host_ns]")),
        });
        Assert.Contains("Policy net-ns loaded", agent.Stderr);
        string[] unshare = ["--fork", "--pid", "--mount-proc", "--uts", "--net"];

        Assert.Equal(Killed, Mkdir(outside, dir.File("a"), "unshare", unshare));
        Assert.Equal(0, Mkdir(outside, dir.File("b")));
        Assert.True(Directory.Exists(dir.File("b")));
        Assert.Equal(Killed, Mkdir(inside, dir.File("c")));
        Assert.Equal(0, Mkdir(inside, dir.File("d"), "unshare", unshare));
        Assert.True(Directory.Exists(dir.File("d")));
    }

    [Fact]
    public void MatchPIDs_NotIn_1_with_isNamespacePID_and_followForks_spares_the_namespace_inits_tree_and_kills_an_nsenter_session()
    {
        using var dir = new TempDir();
        var victim = dir.CopyBinary("/usr/bin/mkdir", "tree-mkdir");
        var sleeper = dir.CopyBinary("/usr/bin/sleep", "tree-init-sleep");
        using var agent = new AgentProcess(new Dictionary<string, string>
        {
            ["p.yaml"] = Policy("pid-tree", (victim, "matchPIDs:\n- operator: NotIn\n  followForks: true\n  isNamespacePID: true\n  values: [1]")),
        });
        Assert.Contains("Policy pid-tree loaded", agent.Stderr);

        // Descended from the new pid namespace's init through a fork chain: init (sh, pid 1) -> sh -> victim.
        Assert.Equal(0, Run.Wait("unshare", ["--fork", "--pid", "--mount-proc", "/bin/sh", "-c", $"/bin/sh -c '{victim} {dir.File("in-tree")}; exit $?'; exit $?"]).Code);
        Assert.True(Directory.Exists(dir.File("in-tree")));

        // A session entering the same pid namespace from outside its init's tree (as kubectl exec does).
        using var init = Run.Start("unshare", ["--fork", "--pid", "--mount-proc", sleeper, "60"]);
        try
        {
            int nsInit = ChildOf(init.Id);
            Assert.Equal(Killed, Run.Wait("nsenter", ["--target", nsInit.ToString(), "--pid", "--mount", "--", victim, dir.File("entered")]).Code);
        }
        finally
        {
            init.Kill(entireProcessTree: true);
            init.WaitForExit();
        }

        // in_init_tree on the process objects, computed in the kernel by Tetragon's rule (a pid namespace's init, or a
        // child of a process in an init tree): the in-tree exec has it; the entered one inherits it from nsenter,
        // itself a descendant of the host's init (Tetragon's flag follows the fork tree, not the namespace), so
        // in_init_tree alone does not tell a kubectl exec apart: the kill above, judged on the namespace's tree, does.
        bool InTree(JsonElement e, string arg) => e.TryGetProperty("process_exec", out var x) && x.GetProperty("process").GetProperty("arguments").GetString() == arg
            && x.GetProperty("process").GetProperty("in_init_tree").GetBoolean();
        agent.Events.WaitFor(e => InTree(e, dir.File("in-tree")), "the in-tree exec with in_init_tree true");
        var entered = agent.Events.WaitFor(e => e.TryGetProperty("process_exec", out var x) && x.GetProperty("process").GetProperty("arguments").GetString() == dir.File("entered"),
            "the entered exec").GetProperty("process_exec").GetProperty("process");
        Assert.True(entered.GetProperty("in_init_tree").GetBoolean());
        Assert.Contains("inInitTree", entered.GetProperty("flags").GetString());
    }

    /// <summary>unshare --fork's child: the new pid namespace's init, once it has exec'd.</summary>
    private static int ChildOf(int pid)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(10))
        {
            var children = File.ReadAllText($"/proc/{pid}/task/{pid}/children").Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (children.Length == 1 && File.ReadAllText($"/proc/{children[0]}/comm").Trim().StartsWith("tree-init"))
                return int.Parse(children[0]);
            Thread.Sleep(20);
        }
        throw new TimeoutException("unshare's child did not start");
    }

    /// <summary>mkdir(argv[1]) after, when asked, unshare(CLONE_NEWUTS) or dropping CAP_SYS_ADMIN from its effective set.</summary>
    private const string ChangeSource = """
        #define _GNU_SOURCE
        #include <sched.h>
        #include <string.h>
        #include <sys/stat.h>
        #include <sys/syscall.h>
        #include <unistd.h>
        #include <linux/capability.h>

        int main(int argc, char **argv)
        {
            if (argc > 2 && !strcmp(argv[2], "uts") && unshare(CLONE_NEWUTS))
                return 2;
            if (argc > 2 && !strcmp(argv[2], "drop")) {
                struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
                struct __user_cap_data_struct d[2];
                if (syscall(SYS_capget, &h, d))
                    return 3;
                d[0].effective &= ~(1u << CAP_SYS_ADMIN);
                if (syscall(SYS_capset, &h, d))
                    return 4;
            }
            return mkdir(argv[1], 0700) ? 1 : 0;
        }
        """;

    private static string Compile(TempDir dir, string name) => CProgram.Build(dir, name, ChangeSource, "-O1");

    [Fact]
    public void MatchNamespaceChanges_kills_a_process_after_it_unshares_its_uts_namespace_and_not_before()
    {
        using var dir = new TempDir();
        var changer = Compile(dir, "ns-changer");
        using var agent = new AgentProcess(new Dictionary<string, string>
        {
            ["p.yaml"] = Policy("ns-changes", (changer, "matchNamespaceChanges:\n- operator: In\n  values: [Uts]")),
        });
        Assert.Contains("Policy ns-changes loaded", agent.Stderr);

        Assert.Equal(0, Run.Wait(changer, [dir.File("same")]).Code);
        Assert.True(Directory.Exists(dir.File("same")));
        Assert.Equal(Killed, Run.Wait(changer, [dir.File("changed"), "uts"]).Code);
        // A process forked into a new uts namespace has not changed it since its exec (as in Tetragon, the namespaces
        // compared with are those of the first exec after the fork: an exec without a fork keeps the earlier ones).
        Assert.Equal(0, Run.Wait("unshare", ["--fork", "--uts", changer, dir.File("born-there")]).Code);
    }

    [Fact]
    public void MatchCapabilityChanges_kills_a_process_after_it_drops_cap_sys_admin_and_not_one_that_keeps_it()
    {
        using var dir = new TempDir();
        var changer = Compile(dir, "cap-changer");
        using var agent = new AgentProcess(new Dictionary<string, string>
        {
            ["p.yaml"] = Policy("cap-changes", (changer, "matchCapabilityChanges:\n- type: Effective\n  operator: In\n  values: [CAP_SYS_ADMIN]")),
        });
        Assert.Contains("Policy cap-changes loaded", agent.Stderr);

        Assert.Equal(0, Run.Wait(changer, [dir.File("kept")]).Code);
        Assert.True(Directory.Exists(dir.File("kept")));
        Assert.Equal(Killed, Run.Wait(changer, [dir.File("dropped"), "drop"]).Code);
        // A change of another capability only is NotIn's, not In's: the uts change does not count either.
        Assert.Equal(0, Run.Wait(changer, [dir.File("uts-only"), "uts"]).Code);
    }
}
