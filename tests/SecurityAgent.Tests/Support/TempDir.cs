namespace SecurityAgent.Tests.Support;

/// <summary>A temporary directory removed (with its content) on dispose.</summary>
public sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("secagent-test-").FullName;

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
