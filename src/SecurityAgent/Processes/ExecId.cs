using System.Text;

namespace SecurityAgent.Processes;

/// <summary>Node-unique execution ids in Tetragon's format: base64("node:ktime:pid").</summary>
public static class ExecId
{
    public static string Make(string node, ulong ktime, int pid) =>
        Convert.ToBase64String(Encoding.UTF8.GetBytes($"{node}:{ktime}:{pid}"));

    public static (string Node, ulong Ktime, int Pid) Parse(string execId)
    {
        var text = Encoding.UTF8.GetString(Convert.FromBase64String(execId));
        int b = text.LastIndexOf(':'), a = text.LastIndexOf(':', b - 1);
        return (text[..a], ulong.Parse(text[(a + 1)..b]), int.Parse(text[(b + 1)..]));
    }
}
