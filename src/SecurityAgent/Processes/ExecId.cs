using System.Text;

namespace SecurityAgent.Processes;

/// <summary>Node-unique execution ids in Tetragon's format: base64("node:ktime:pid").</summary>
public static class ExecId
{
    public static string Make(string node, ulong ktime, int pid)
    {
        Span<byte> text = stackalloc byte[node.Length * 3 + 2 + 20 + 11];
        int n = Encoding.UTF8.GetBytes(node, text);
        text[n++] = (byte)':';
        ktime.TryFormat(text[n..], out int w);
        n += w;
        text[n++] = (byte)':';
        pid.TryFormat(text[n..], out w);
        return Convert.ToBase64String(text[..(n + w)]);
    }

    public static (string Node, ulong Ktime, int Pid) Parse(string execId)
    {
        var text = Encoding.UTF8.GetString(Convert.FromBase64String(execId));
        int b = text.LastIndexOf(':'), a = text.LastIndexOf(':', b - 1);
        return (text[..a], ulong.Parse(text[(a + 1)..b]), int.Parse(text[(b + 1)..]));
    }
}
