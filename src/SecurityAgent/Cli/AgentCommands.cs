using System.Text;
using System.Text.Json;

namespace SecurityAgent.Cli;

/// <summary>Commands that talk to a running agent: status, events, policy list|add|delete|enable|disable|mode.</summary>
public static class AgentCommands
{
    /// <summary>Removes "--name value" from args and returns the value.</summary>
    public static string? Option(ref string[] args, params string[] names)
    {
        for (int i = 0; i < args.Length - 1; i++)
            if (names.Contains(args[i]))
            {
                var v = args[i + 1];
                args = [.. args[..i], .. args[(i + 2)..]];
                return v;
            }
        return null;
    }

    public static async Task<int> Status(string[] args)
    {
        using var api = new ApiClient(Option(ref args, "--api-socket"));
        return await api.Call(async h => await ApiClient.Print(await h.GetAsync("/v1/status")));
    }

    public static async Task<int> Policy(string[] args)
    {
        using var api = new ApiClient(Option(ref args, "--api-socket"));
        return args switch
        {
            ["list"] => await api.Call(async h => await ApiClient.Print(await h.GetAsync("/v1/policies"))),
            ["add", var file, ..] => await api.Call(async h => await ApiClient.Print(await h.PostAsync(
                "/v1/policies" + (args.Contains("--replace") ? "?replace=true" : ""), new StringContent(await File.ReadAllTextAsync(file), Encoding.UTF8, "application/yaml")))),
            ["delete", var name] => await api.Call(async h => await ApiClient.Print(await h.DeleteAsync($"/v1/policies/{name}"))),
            ["enable" or "disable", var name] => await api.Call(async h => await ApiClient.Print(await h.PostAsync($"/v1/policies/{name}/{args[0]}", null))),
            ["mode", var name, var mode] => await api.Call(async h => await ApiClient.Print(await h.PostAsync($"/v1/policies/{name}/mode/{mode}", null))),
            _ => Usage(),
        };
    }

    private static int Usage()
    {
        Console.Error.WriteLine("usage: secagent policy list | add FILE [--replace] | delete NAME | enable NAME | disable NAME | mode NAME enforce|monitor   [--api-socket PATH]");
        return 2;
    }

    public static async Task<int> Events(string[] args)
    {
        var output = Option(ref args, "-o", "--output") ?? "json";
        using var api = new ApiClient(Option(ref args, "--api-socket"));
        var query = new List<string>();
        while (Option(ref args, "--type") is { } t) query.Add("type=" + Uri.EscapeDataString(t));
        if (Option(ref args, "--binary-regex") is { } b) query.Add("binary_regex=" + Uri.EscapeDataString(b));
        if (Option(ref args, "--policy") is { } p) query.Add("policy=" + Uri.EscapeDataString(p));
        if (Option(ref args, "--allow") is { } a) query.Add("allow=" + Uri.EscapeDataString(a));
        if (Option(ref args, "--deny") is { } d) query.Add("deny=" + Uri.EscapeDataString(d));
        bool color = !Console.IsOutputRedirected;
        return await api.Call(async h =>
        {
            using var r = await h.GetAsync("/v1/events" + (query.Count > 0 ? "?" + string.Join('&', query) : ""), HttpCompletionOption.ResponseHeadersRead);
            using var reader = new StreamReader(await r.Content.ReadAsStreamAsync());
            while (await reader.ReadLineAsync() is { } line)
            {
                Console.WriteLine(output == "compact" ? Compact.Line(line, color) : line);
                Console.Out.Flush();
            }
            return 0;
        });
    }
}

/// <summary>One readable line per event, like `tetra getevents -o compact`.</summary>
public static class Compact
{
    public static string Line(string json, bool color)
    {
        var root = JsonDocument.Parse(json).RootElement;
        var (type, body) = root.EnumerateObject().Where(p => p.Value.ValueKind == JsonValueKind.Object).Select(p => (p.Name, p.Value)).First();
        var proc = body.GetProperty("process");
        var who = $"{proc.GetProperty("binary").GetString()} {proc.GetProperty("arguments").GetString()}".TrimEnd();
        var pid = proc.GetProperty("pid").GetInt32();
        string text, paint;
        switch (type)
        {
            case "process_exec":
                (text, paint) = ($"process  {pid,-7} {who}", "32");
                break;
            case "process_exit":
                var sig = body.TryGetProperty("signal", out var s) ? " " + s.GetString() : "";
                (text, paint) = ($"exit     {pid,-7} {who} {body.GetProperty("status").GetInt32()}{sig}", sig.Length > 0 ? "31" : "90");
                break;
            default:
                var args = string.Join(' ', body.GetProperty("args").EnumerateArray().Select(Arg));
                var hook = body.TryGetProperty("function_name", out var f) ? f.GetString() : $"{body.GetProperty("subsys").GetString()}/{body.GetProperty("event").GetString()}";
                var enforced = body.GetProperty("enforced").GetBoolean();
                var action = body.GetProperty("action").GetString()!.Replace("KPROBE_ACTION_", "").ToLowerInvariant();
                var verdict = body.GetProperty("policy_mode").GetString() == "monitor" && action != "post" ? $"would {action}" : enforced ? action : action == "post" ? "" : $"{action} refused";
                (text, paint) = ($"{body.GetProperty("policy_name").GetString(),-8} {pid,-7} {proc.GetProperty("binary").GetString()} {hook} {args} {verdict}".TrimEnd(), enforced ? "31;1" : "33");
                break;
        }
        return color ? $"\u001b[{paint}m{text}\u001b[0m" : text;
    }

    private static string Arg(JsonElement a)
    {
        var p = a.EnumerateObject().First(x => x.Name != "label");
        return p.Value.ValueKind switch
        {
            JsonValueKind.Object when p.Value.TryGetProperty("path", out var path) => path.GetString()!,
            JsonValueKind.Object => $"{p.Value.GetProperty("addr").GetString()}:{p.Value.GetProperty("port").GetInt32()}",
            _ => p.Value.ToString(),
        };
    }
}
