namespace SecurityAgent.Tests.Support;

/// <summary>Paths of the source tree and the team's shared folder, found from the test binary.</summary>
public static class Repo
{
    public static string Root { get; } = FindRoot();

    private static string FindRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "SecurityAgent.sln")))
                return d.FullName;
        throw new DirectoryNotFoundException("SecurityAgent.sln not found above " + AppContext.BaseDirectory);
    }

    public static string File_(params string[] parts) => Path.Combine([Root, .. parts]);

    /// <summary>../shared beside the clone (CI lays it there), or SECAGENT_SHARED_DIR.</summary>
    public static string Shared { get; } =
        Environment.GetEnvironmentVariable("SECAGENT_SHARED_DIR") is { Length: > 0 } s ? s : Path.GetFullPath(Path.Combine(Root, "..", "shared"));

    /// <summary>The agent's entry assembly, copied beside the tests by the project reference.</summary>
    public static string AgentDll { get; } = Path.Combine(AppContext.BaseDirectory, "secagent.dll");
}
