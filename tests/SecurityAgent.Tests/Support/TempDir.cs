namespace SecurityAgent.Tests.Support;

/// <summary>A temporary directory removed (with its content) on dispose.</summary>
public sealed class TempDir : IDisposable
{
    public string Path { get; }

    public TempDir() : this(null) { }

    private TempDir(string? parent) => Path = parent is null
        ? Directory.CreateTempSubdirectory("secagent-test-").FullName
        : Directory.CreateDirectory(System.IO.Path.Combine(parent, "secagent-test-" + System.IO.Path.GetRandomFileName())).FullName;

    /// <summary>A temporary directory on a file system whose changes fanotify reports with file handles (the after-call
    /// match of name-only syscalls): the usual one, except in the VM lane, whose root (overlayfs over 9p) Linux 6.1
    /// refuses such marks on (EOPNOTSUPP): there a tmpfs the lane mounts (SECAGENT_TEST_FID_TMPDIR).</summary>
    public static TempDir WithFileHandles() =>
        new(Environment.GetEnvironmentVariable("SECAGENT_TEST_FID_TMPDIR") is { Length: > 0 } dir ? dir : null);

    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>Copies a system binary into the temp dir under a unique name, so policies and
    /// assertions can target exactly the processes this test starts.</summary>
    public string CopyBinary(string source, string name)
    {
        var dest = File(name);
        System.IO.File.Copy(source, dest, overwrite: true);
        System.IO.File.SetUnixFileMode(dest, UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.UserWrite | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        return dest;
    }

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
