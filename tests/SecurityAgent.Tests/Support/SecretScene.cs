namespace SecurityAgent.Tests.Support;

/// <summary>A temp dir with secret/key.txt, a plain file, a sub directory, links to the secret and to the plain file, and
/// copies of cat, grep and dash named <c>{prefix}-cat</c>... (the only processes a test's policies may kill), with the
/// ways to name the secret that a path selector must not be evaded by.</summary>
internal sealed class SecretScene : IDisposable
{
    public TempDir Dir { get; } = new();
    public string SecretDir => Dir.File("secret");
    public string Secret => Dir.File("secret/key.txt");
    public string Cat { get; }
    public string Grep { get; }
    public string Sh { get; }

    public SecretScene(string prefix)
    {
        Directory.CreateDirectory(SecretDir);
        Directory.CreateDirectory(Dir.File("sub"));
        Directory.CreateDirectory(Dir.File("mnt"));
        File.WriteAllText(Secret, "TOP-SECRET\n");
        File.WriteAllText(Dir.File("plain.txt"), "plain\n");
        File.CreateSymbolicLink(Dir.File("link"), Secret);
        File.CreateSymbolicLink(Dir.File("linkdir"), SecretDir);
        File.CreateSymbolicLink(Dir.File("secreu"), SecretDir);
        File.CreateSymbolicLink(Dir.File("plainlink"), Dir.File("plain.txt"));
        Assert.Equal(0, Run.Wait("/usr/bin/ln", [Secret, Dir.File("hardlink")]).Code);
        Cat = Dir.CopyBinary("/usr/bin/cat", prefix + "-cat");
        Grep = Dir.CopyBinary("/usr/bin/grep", prefix + "-grep");
        Sh = Dir.CopyBinary("/usr/bin/dash", prefix + "-sh");
    }

    public void Dispose() => Dir.Dispose();

    /// <summary>An openat hook with a Prefix on the secret directory for <paramref name="binaries"/>;
    /// <paramref name="action"/> null: the selector only posts.</summary>
    public string OpenPolicy(string name, string mode, string? action, params string[] binaries) => $"""
        apiVersion: securityagent.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: {name}
        spec:
          options:
          - name: policy-mode
            value: {mode}
          kprobes:
          - call: sys_openat
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
                values: [{string.Join(", ", binaries.Select(b => $"\"{b}\""))}]{(action is null ? "" : $"\n      matchActions:\n      - action: {action}")}
        """;

    /// <summary>Each way to read the secret: what runs, from where, the string the open passes and the path the event
    /// reports (the secret's, except for a hard link: the name it was opened by, caught by inode).
    /// <paramref name="bindMount"/>: with the read through a bind mount in a private mount namespace.</summary>
    public IEnumerable<(string What, string File, string[] Args, string? Cwd, string Passed, string Resolved)> Spellings(bool bindMount)
    {
        foreach (var (what, file, args, cwd, passed) in bindMount ? Spelled(Cat, Grep) : Renamed(Cat, Grep))
            yield return (what, file, args, cwd, passed, Secret);
        yield return ("through a hard link", Cat, [Dir.Path + "/hardlink"], null, Dir.Path + "/hardlink", Dir.Path + "/hardlink");
    }

    /// <summary>The spellings of the secret's own path that need no mount, read by the given copies of cat and grep.</summary>
    public IEnumerable<(string What, string File, string[] Args, string? Cwd, string Passed)> Renamed(string cat, string grep) =>
        Spelled(cat, grep).Where(s => s.File != "/usr/bin/unshare");

    private IEnumerable<(string What, string File, string[] Args, string? Cwd, string Passed)> Spelled(string cat, string grep)
    {
        var d = Dir.Path;
        yield return ("relative to the cwd", cat, ["key.txt"], SecretDir, "key.txt");
        yield return ("with ./", cat, ["./key.txt"], SecretDir, "./key.txt");
        yield return ("with ..", cat, ["../secret/key.txt"], Dir.File("sub"), "../secret/key.txt");
        yield return ("with //", cat, [d + "//secret//key.txt"], null, d + "//secret//key.txt");
        yield return ("with /./", cat, [d + "/./secret/./key.txt"], null, d + "/./secret/./key.txt");
        yield return ("with sub/..", cat, [d + "/sub/../secret/key.txt"], null, d + "/sub/../secret/key.txt");
        yield return ("relative to a dirfd (grep -r: openat(dirfd, \"key.txt\"))", grep, ["-r", "TOP", SecretDir], null, "key.txt");
        yield return ("through a symlink to the file", cat, [d + "/link"], null, d + "/link");
        yield return ("through a symlink to its directory", cat, [d + "/linkdir/key.txt"], null, d + "/linkdir/key.txt");
        // The exit skips its re-check when the opened file's path is the name passed: a name of the same length
        // that differs in one byte must not pass for it.
        yield return ("through a symlinked directory whose name has the secret's length", cat, [d + "/secreu/key.txt"], null, d + "/secreu/key.txt");
        yield return ("through /proc/self/fd of an fd the shell opened", Sh, ["-c", $"exec 3< {Secret}; exec {cat} /proc/self/fd/3"], null, "/proc/self/fd/3");
        yield return ("through a bind mount in a private mount namespace", "/usr/bin/unshare",
            ["-m", Sh, "-c", $"mount --bind {SecretDir} {d}/mnt && exec {cat} {d}/mnt/key.txt"], null, d + "/mnt/key.txt");
    }
}
