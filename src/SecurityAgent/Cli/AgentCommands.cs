using System.CommandLine;
using System.Text;
using System.Text.Json;

namespace SecurityAgent.Cli;

/// <summary>Commands that talk to a running agent over its API socket: status and policy list|add|delete|enable|disable|mode.
/// Tables for people, -o json for scripts.</summary>
public static class AgentCommands
{
    public static Command Status()
    {
        var socket = Commands.ApiSocketOption();
        var output = Commands.TableOrJson();
        var c = new Command("status", "The running agent: kernel features, each policy hook with its kernel counters, losses, exporters") { socket, output };
        c.SetAction(async pr =>
        {
            using var api = new ApiClient(pr.GetValue(socket));
            var status = await api.GetJson("/v1/status");
            Console.Write(pr.GetValue(output) == "json" ? Indented(status) : StatusText(status));
        });
        return c;
    }

    /// <summary>policy list, add, delete, enable, disable, mode: the policy subcommands that need the agent.</summary>
    public static IEnumerable<Command> PolicyCommands()
    {
        var socket = Commands.ApiSocketOption();
        var output = Commands.TableOrJson();
        var list = new Command("list", "The running agent's policies: mode, state, hooks, file") { socket, output };
        list.SetAction(async pr =>
        {
            using var api = new ApiClient(pr.GetValue(socket));
            var policies = await api.GetJson("/v1/policies");
            Console.Write(pr.GetValue(output) == "json" ? Indented(policies) : PoliciesText(policies));
        });
        yield return list;

        var file = new Argument<FileInfo>("file") { Description = "A policy file (YAML)" }.AcceptExistingOnly();
        var replace = new Option<bool>("--replace") { Description = "Overwrite a policy of the same name" };
        var add = new Command("add", "Validate a policy, store it in the agent's policy directory and load it") { file, replace, socket };
        add.SetAction(async pr =>
        {
            using var api = new ApiClient(pr.GetValue(socket));
            var yaml = await File.ReadAllTextAsync(pr.GetValue(file)!.FullName);
            var result = await ApiClient.ReadJson(await api.Send(new HttpRequestMessage(HttpMethod.Post, "/v1/policies" + (pr.GetValue(replace) ? "?replace=true" : ""))
            {
                Content = new StringContent(yaml, Encoding.UTF8, "application/yaml"),
            }));
            Console.WriteLine($"added {Names(result, "loaded")}{From(result)}");
        });
        yield return add;

        yield return NameCommand("delete", "Remove a policy (its file) and unload it", socket, "DELETE", name => $"/v1/policies/{Uri.EscapeDataString(name)}", "deleted");
        yield return NameCommand("enable", "Load a disabled policy again", socket, "POST", name => $"/v1/policies/{Uri.EscapeDataString(name)}/enable", "enabled");
        yield return NameCommand("disable", "Unload a policy, keeping its file (NAME.yaml.disabled)", socket, "POST", name => $"/v1/policies/{Uri.EscapeDataString(name)}/disable", "disabled");

        var modeName = new Argument<string>("name") { Description = "The policy" };
        var mode = new Argument<string>("mode") { Description = "enforce: carry out the policy's actions; monitor: report what they would do" }.Choices("enforce", "monitor");
        var modeCmd = new Command("mode", "Switch a policy between enforce and monitor") { modeName, mode, socket };
        modeCmd.SetAction(async pr =>
        {
            using var api = new ApiClient(pr.GetValue(socket));
            using var _ = await api.Send(new HttpRequestMessage(HttpMethod.Post, $"/v1/policies/{Uri.EscapeDataString(pr.GetValue(modeName)!)}/mode/{pr.GetValue(mode)}"));
            Console.WriteLine($"{pr.GetValue(modeName)}: {pr.GetValue(mode)}");
        });
        yield return modeCmd;
    }

    /// <summary>Takes the method's name and a path, not a request: building the command tree then needs no System.Net.Http
    /// type, so `secagent run` never loads that assembly.</summary>
    private static Command NameCommand(string verb, string description, Option<string> socket, string method, Func<string, string> path, string done)
    {
        var name = new Argument<string>("name") { Description = "The policy" };
        var c = new Command(verb, description) { name, socket };
        c.SetAction(async pr =>
        {
            using var api = new ApiClient(pr.GetValue(socket));
            using var _ = await api.Send(new HttpRequestMessage(new HttpMethod(method), path(pr.GetValue(name)!)));
            Console.WriteLine($"{done} {pr.GetValue(name)}");
        });
        return c;
    }

    private static string Names(JsonElement e, string property) =>
        e.TryGetProperty(property, out var v) && v.ValueKind == JsonValueKind.Array ? string.Join(", ", v.EnumerateArray().Select(x => x.ToString())) : "";

    private static string From(JsonElement e) => e.TryGetProperty("file", out var f) ? $" ({f})" : "";

    private static string Indented(JsonElement e) => JsonSerializer.Serialize(e, new JsonSerializerOptions { WriteIndented = true }) + "\n";

    private static string Get(JsonElement e, string property) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(property, out var v) && v.ValueKind != JsonValueKind.Null ? v.ToString() : "";

    /// <summary>"written 47, failed 0" from an object's numeric fields.</summary>
    private static string Counters(JsonElement e, params string[] skip) =>
        e.ValueKind != JsonValueKind.Object ? "" : string.Join(", ", e.EnumerateObject()
            .Where(p => !skip.Contains(p.Name) && p.Value.ValueKind is JsonValueKind.Number or JsonValueKind.String)
            .Select(p => $"{p.Name.Replace('_', ' ')} {p.Value}"));

    public static string StatusText(JsonElement s)
    {
        var b = new StringBuilder();
        if (s.TryGetProperty("kernel", out var k) && k.ValueKind == JsonValueKind.Object)
        {
            var mech = k.TryGetProperty("mechanisms", out var m) && m.ValueKind == JsonValueKind.Object ? m.EnumerateObject().ToList() : [];
            b.Append($"Kernel       {Get(k, "release")}: {string.Join(", ", mech.Where(x => x.Value.ValueKind == JsonValueKind.True).Select(x => x.Name))}");
            if (mech.Any(x => x.Value.ValueKind == JsonValueKind.False))
                b.Append($" (not: {string.Join(", ", mech.Where(x => x.Value.ValueKind == JsonValueKind.False).Select(x => x.Name))})");
            b.Append('\n');
        }
        else b.Append("Kernel       (the agent is starting)\n");
        if (s.TryGetProperty("policy_programs", out var pp) && pp.ValueKind == JsonValueKind.String)
            b.Append($"Programs     policy programs {pp.GetString()}\n");
        if (s.TryGetProperty("events", out var ev)) b.Append($"Events       {Counters(ev)}\n");
        if (s.TryGetProperty("process_cache", out var pc)) b.Append($"Processes    {Counters(pc)}\n");
        if (s.TryGetProperty("exporters", out var ex) && ex.ValueKind == JsonValueKind.Array)
            b.Append($"Exporters    {string.Join("; ", ex.EnumerateArray().Select(x => $"{Get(x, "name")}: {Counters(x, "name")}"))}\n");
        if (s.TryGetProperty("policies", out var ps) && ps.ValueKind == JsonValueKind.Array)
        {
            b.Append('\n');
            var rows = new List<string[]>();
            foreach (var p in ps.EnumerateArray())
            {
                var hooks = p.TryGetProperty("hooks", out var h) && h.ValueKind == JsonValueKind.Array ? h.EnumerateArray().ToList() : [];
                if (hooks.Count == 0)
                    rows.Add([Get(p, "name"), Get(p, "mode"), State(p), "", "", "", "", "", "", ""]);
                foreach (var hook in hooks)
                    rows.Add([Get(p, "name"), Get(p, "mode"), State(p), Get(hook, "hook"), Get(hook, "mechanism"), Get(hook, "seen"),
                        Get(hook, "matched"), Get(hook, "posted"), Get(hook, "enforced"), Get(hook, "rate_limited")]);
            }
            b.Append(rows.Count == 0 ? "No policies loaded.\n"
                : Table.Render(["POLICY", "MODE", "STATE", "HOOK", "MECHANISM", "SEEN", "MATCHED", "POSTED", "ENFORCED", "RATE-LIMITED"], rows));
        }
        return b.ToString();
    }

    public static string PoliciesText(JsonElement policies)
    {
        if (policies.ValueKind != JsonValueKind.Array || policies.GetArrayLength() == 0)
            return "No policies loaded.\n";
        return Table.Render(["NAME", "MODE", "STATE", "HOOKS", "FILE"], policies.EnumerateArray().Select(p => (IReadOnlyList<string>)[
            Get(p, "name"), Get(p, "mode"), State(p),
            p.TryGetProperty("hooks", out var h) && h.ValueKind == JsonValueKind.Array ? string.Join(",", h.EnumerateArray().Select(x => Get(x, "hook"))) : "",
            Get(p, "file")]));
    }

    private static string State(JsonElement p) =>
        Get(p, "state") is { Length: > 0 } st ? st : p.TryGetProperty("enabled", out var e) && e.ValueKind == JsonValueKind.False ? "disabled" : "enabled";
}
