using System.Reflection;

namespace SecurityAgent.Hosting;

/// <summary>What was built: the version, the git commit and the build date stamped into the assembly at build
/// time (SecurityAgent.csproj); shown by `secagent --version`, in secagent_build_info and in the OTLP resource.</summary>
public static class BuildInfo
{
    private static readonly Assembly Self = typeof(BuildInfo).Assembly;

    public static string Version { get; } = Self.GetName().Version is { } v ? $"{v.Major}.{v.Minor}.{v.Build}" : "0.0.0";
    public static string Commit { get; } = Metadata("GitCommit") ?? "unknown";
    public static string Date { get; } = Metadata("BuildDate") ?? "unknown";
    public static string Runtime { get; } = System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription;

    public static string Text => $"secagent {Version} (commit {Commit}, built {Date}, {Runtime})";

    private static string? Metadata(string key) =>
        Self.GetCustomAttributes<AssemblyMetadataAttribute>().FirstOrDefault(a => a.Key == key)?.Value is { Length: > 0 } v ? v : null;
}
