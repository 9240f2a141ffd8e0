using SecurityAgent.Export.Compact;
using System.Text;

namespace SecurityAgent.Cli;

/// <summary>Columns aligned on the widest cell, headers in capitals, as kubectl prints them.</summary>
public static class Table
{
    public static string Render(IReadOnlyList<string> headers, IEnumerable<IReadOnlyList<string>> rows)
    {
        var all = rows.Prepend(headers).Select(r => r.Select(c => CompactRenderer.Escape(c)).ToList()).ToList();
        var widths = headers.Select((_, i) => all.Max(r => i < r.Count ? r[i].Length : 0)).ToList();
        var b = new StringBuilder();
        foreach (var row in all)
        {
            for (int i = 0; i < row.Count; i++)
                b.Append(i == row.Count - 1 ? row[i] : row[i].PadRight(widths[i] + 2));
            b.Append('\n');
        }
        return b.ToString();
    }
}
