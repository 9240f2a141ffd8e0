using System.Net;
using Newtonsoft.Json.Linq;
using SecurityAgent.Kernel;

namespace SecurityAgent.Policies;

/// <summary>What the schema cannot check: operators against argument types, Tetragon's limits, references
/// between fields, and whether this kernel can run each hook. Also the explicit "unsupported" errors: a
/// field this agent does not implement yet is never silently ignored.</summary>
internal sealed class SemanticPass(JToken doc, KernelFeatures features, string? tracefs, Action<string, string> report)
{
    private static readonly HashSet<string> StringTypes = ["string", "char_buf", "char_iovec", "fd", "file", "path", "filename", "linux_binprm", "dentry", "data_loc"];
    private static readonly HashSet<string> IntTypes = ["int", "uint", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "s8", "u8", "s16", "u16", "s32", "u32", "s64", "u64", "size_t", "long", "ulong", "auto"];
    private static readonly HashSet<string> SockTypes = ["sockaddr", "sock", "socket", "skb"];
    private static readonly HashSet<string> UnsupportedTypes = ["cred", "bpf_attr", "perf_event", "bpf_map", "user_namespace", "capability", "kiocb", "iov_iter", "load_info", "module", "kernel_cap_t", "cap_inheritable", "cap_permitted", "cap_effective", "net_device", "bpf_cmd", "pointer"];

    private static readonly HashSet<string> StringOps = ["Equal", "NotEqual", "Prefix", "NotPrefix", "Postfix", "NotPostfix"];
    private static readonly HashSet<string> IntOps = ["Equal", "NotEqual", "GreaterThan", "GT", "LessThan", "LT", "Mask", "InMap", "NotInMap", "InRange", "NotInRange"];
    private static readonly HashSet<string> SockOps = ["DAddr", "NotDAddr", "SAddr", "NotSAddr", "DPort", "NotDPort", "SPort", "NotSPort", "Family", "NotFamily", "Protocol", "NotProtocol", "State"];
    private static readonly HashSet<string> UnsupportedActions = ["FollowFD", "UnfollowFD", "CopyFD", "GetUrl", "DnsLookup", "TrackSock", "UntrackSock", "NotifyEnforcer", "CleanupEnforcerNotification", "Set"];

    public void Run()
    {
        foreach (var f in new[] { "uprobes", "usdts", "enforcers", "loader" })
            if (doc.SelectToken("spec." + f) is { } t && t.Type != JTokenType.Null)
                report("spec." + f, $"unsupported: '{f}' is not implemented by SecurityAgent yet");

        Options();
        var lists = (doc.SelectToken("spec.lists") as JArray)?.Select(l => l["name"]?.ToString()).Where(n => n is not null).ToHashSet() ?? [];

        Hooks("tracepoints", (h, path) => Tracepoint(h, path));
        Hooks("kprobes", (h, path) => Kprobe(h, path));
        Hooks("lsmhooks", (h, path) => LsmHook(h, path));

        void Hooks(string kind, Action<JToken, string> hookCheck)
        {
            if (doc.SelectToken("spec." + kind) is not JArray hooks) return;
            for (int i = 0; i < hooks.Count; i++)
            {
                var path = $"spec.{kind}[{i}]";
                hookCheck(hooks[i], path);
                Selectors(hooks[i], path, kind, lists);
            }
        }
    }

    private void Options()
    {
        if (doc.SelectToken("spec.options") is not JArray opts) return;
        for (int i = 0; i < opts.Count; i++)
        {
            var name = opts[i]["name"]?.ToString();
            var value = opts[i]["value"]?.ToString();
            if (name == "policy-mode")
            {
                if (value is not ("enforce" or "monitor"))
                    report($"spec.options[{i}].value", $"policy-mode must be 'enforce' or 'monitor', not '{value}'");
            }
            else
            {
                report($"spec.options[{i}].name", $"unsupported option '{name}' (supported: policy-mode)");
            }
        }
    }

    private void Tracepoint(JToken h, string path)
    {
        var subsystem = h["subsystem"]!.ToString();
        var ev = h["event"]!.ToString();
        if (h["raw"]?.Value<bool>() == true)
            report(path + ".raw", "unsupported: raw tracepoints in policies are not implemented yet");
        var format = TracepointFormat.TryRead(tracefs, subsystem, ev);
        if (tracefs is not null && Directory.Exists(Path.Combine(tracefs, "events")) && format is null)
            report(path + ".event", $"unknown tracepoint '{subsystem}/{ev}' on this kernel (no {subsystem}/{ev}/format under {tracefs}/events)");
        Args(h, path, a => format is not null && a >= format.Fields.Count ? $"tracepoint {subsystem}/{ev} has {format.Fields.Count} fields (index 0..{format.Fields.Count - 1})" : null);
    }

    private void Kprobe(JToken h, string path)
    {
        var call = h["call"]!.ToString();
        bool syscall = h["syscall"]?.Value<bool>() == true;
        if (h["returnArg"] is not null || h["return"]?.Value<bool>() == true)
            report(path + (h["returnArg"] is not null ? ".returnArg" : ".return"), "unsupported: return probes are not implemented yet");
        if (syscall)
        {
            var name = SyscallName(call);
            if (!features.Has(Mechanism.Kprobe) && !features.Has(Mechanism.Fentry) && tracefs is not null
                && Directory.Exists(Path.Combine(tracefs, "events", "syscalls"))
                && TracepointFormat.TryRead(tracefs, "syscalls", "sys_enter_" + name) is null)
                report(path + ".call", $"unknown syscall '{call}': no tracepoint syscalls/sys_enter_{name} on this kernel");
        }
        else if (!features.Has(Mechanism.Kprobe) && !features.Has(Mechanism.Fentry))
        {
            report(path + ".call", $"needs kprobes or fentry to hook '{call}', and this kernel has neither (kprobe: {Detail(Mechanism.Kprobe)}; fentry: {Detail(Mechanism.Fentry)}); only syscall kprobes fall back to tracepoints");
        }
        Args(h, path, _ => null);
    }

    private void LsmHook(JToken h, string path)
    {
        var hook = h["hook"]!.ToString();
        if (!features.Has(Mechanism.Lsm))
        {
            if (hook == "socket_connect" && features.Has(Mechanism.CgroupSockAddr))
                return; // runs on cgroup connect4/connect6 hooks here
            report(path + ".hook", $"needs BPF LSM to run 'lsmhooks: {hook}' ({Detail(Mechanism.Lsm)}); boot a kernel with CONFIG_BPF_LSM and lsm=...,bpf");
        }
        Args(h, path, _ => null);
    }

    private string Detail(Mechanism m) => features.Mechanisms.TryGetValue(m, out var a) ? a.Detail : "unknown";

    /// <summary>"sys_openat", "__x64_sys_openat" or "openat" → "openat".</summary>
    public static string SyscallName(string call)
    {
        foreach (var prefix in new[] { "__x64_sys_", "__ia32_sys_", "__arm64_sys_", "sys_" })
            if (call.StartsWith(prefix)) return call[prefix.Length..];
        return call;
    }

    private void Args(JToken h, string path, Func<int, string?> indexProblem)
    {
        if (h["args"] is not JArray args) return;
        var seen = new HashSet<int>();
        for (int i = 0; i < args.Count; i++)
        {
            int index = args[i]["index"]!.Value<int>();
            var type = args[i]["type"]!.ToString();
            if (!seen.Add(index))
                report($"{path}.args[{i}].index", $"argument index {index} is listed twice");
            if (indexProblem(index) is { } p)
                report($"{path}.args[{i}].index", p);
            if (UnsupportedTypes.Contains(type))
                report($"{path}.args[{i}].type", $"unsupported: argument type '{type}' is not implemented yet");
        }
    }

    private void Selectors(JToken h, string path, string kind, HashSet<string?> lists)
    {
        if (h["selectors"] is not JArray selectors) return;
        if (selectors.Count > PolicyValidator.MaxSelectors)
            report(path + ".selectors", $"{selectors.Count} selectors, at most {PolicyValidator.MaxSelectors} per hook");
        var args = (h["args"] as JArray)?.ToList() ?? [];
        for (int s = 0; s < selectors.Count; s++)
        {
            var sp = $"{path}.selectors[{s}]";
            foreach (var f in new[] { "matchData", "matchReturnArgs", "matchNamespaceChanges", "matchCapabilityChanges", "matchReturnActions" })
                if (selectors[s][f] is not null)
                    report($"{sp}.{f}", $"unsupported: '{f}' is not implemented yet");
            MatchArgs(selectors[s]["matchArgs"] as JArray, sp + ".matchArgs", args, lists, kind);
            Actions(selectors[s]["matchActions"] as JArray, sp + ".matchActions", kind);
            if (selectors[s]["matchPIDs"] is JArray pids)
                for (int i = 0; i < pids.Count; i++)
                    foreach (var v in (pids[i]["values"] as JArray) ?? [])
                        if (!int.TryParse(v.ToString(), out _))
                            report($"{sp}.matchPIDs[{i}].values", $"'{v}' is not a pid");
        }
    }

    private void MatchArgs(JArray? matchArgs, string path, List<JToken> args, HashSet<string?> lists, string kind)
    {
        if (matchArgs is null) return;
        for (int i = 0; i < matchArgs.Count; i++)
        {
            var m = matchArgs[i];
            var mp = $"{path}[{i}]";
            var op = m["operator"]!.ToString();
            JToken? arg;
            if (m["args"] is JArray refs && refs.Count > 0)
            {
                int n = refs[0].Value<int>();
                arg = n < args.Count ? args[n] : null;
                if (arg is null) { report(mp + ".args", $"args[{n}] names the {n + 1}th entry of the hook's args, which has {args.Count}"); continue; }
            }
            else if (m["index"] is { } idx)
            {
                int n = idx.Value<int>();
                arg = args.FirstOrDefault(a => a["index"]!.Value<int>() == n);
                // Tetragon's own tracepoint examples count matchArgs.index by position in args
                // (index 0 with args: [{index: 4}]); the same YAML must mean the same thing here.
                if (arg is null && kind == "tracepoints" && n < args.Count)
                    arg = args[n];
                if (arg is null) { report(mp + ".index", $"no argument with index {n} in the hook's args (indexes: {string.Join(", ", args.Select(a => a["index"]))})"); continue; }
            }
            else
            {
                report(mp, "needs 'index' or 'args'");
                continue;
            }
            var type = arg["type"]!.ToString();
            var values = (m["values"] as JArray)?.Select(v => v.ToString()).ToList() ?? [];
            var allowed = StringTypes.Contains(type) ? StringOps : IntTypes.Contains(type) ? IntOps : SockTypes.Contains(type) ? SockOps
                : type == "syscall64" ? ["Equal", "NotEqual", "InMap", "NotInMap"] : [];
            if (!allowed.Contains(op))
            {
                report(mp + ".operator", $"operator {op} does not apply to an argument of type '{type}'" + (allowed.Count > 0 ? $" (use one of {string.Join(", ", allowed)})" : ""));
                continue;
            }
            if (values.Count == 0)
                report(mp + ".values", $"operator {op} needs at least one value");
            for (int v = 0; v < values.Count; v++)
            {
                var problem = ValueProblem(op, type, values[v], lists);
                if (problem is not null)
                    report($"{mp}.values[{v}]", problem);
            }
        }
    }

    private static string? ValueProblem(string op, string type, string value, HashSet<string?> lists)
    {
        switch (op)
        {
            case "InMap" or "NotInMap":
                if (value.StartsWith("list:"))
                    return lists.Contains(value[5..]) ? null : $"no list named '{value[5..]}' in spec.lists";
                return IsInteger(value) ? null : $"'{value}' is neither an integer nor a list:NAME reference";
            case "DAddr" or "NotDAddr" or "SAddr" or "NotSAddr":
                return IPNetwork.TryParse(value, out _) || IPAddress.TryParse(value, out _) ? null : $"'{value}' is not an address or CIDR";
            case "DPort" or "NotDPort" or "SPort" or "NotSPort" or "Family" or "NotFamily" or "Protocol" or "NotProtocol":
                return IsInteger(value) || op.Contains("Family") || op.Contains("Protocol") ? null : $"'{value}' is not a port number";
            case "GreaterThan" or "GT" or "LessThan" or "LT" or "Mask":
                return IsInteger(value) ? null : $"'{value}' is not an integer";
            case "InRange" or "NotInRange":
                return value.Split(':') is [var a, var b] && IsInteger(a) && IsInteger(b) ? null : $"'{value}' is not a range 'min:max'";
            case "Equal" or "NotEqual" when IntTypes.Contains(type):
                return IsInteger(value) ? null : $"'{value}' is not an integer (argument type '{type}')";
            default:
                return null;
        }
    }

    private static bool IsInteger(string s) =>
        long.TryParse(s, out _) || ulong.TryParse(s, out _) || (s.StartsWith("0x") && ulong.TryParse(s[2..], System.Globalization.NumberStyles.HexNumber, null, out _));

    private void Actions(JArray? actions, string path, string kind)
    {
        if (actions is null) return;
        for (int i = 0; i < actions.Count; i++)
        {
            var a = actions[i];
            var ap = $"{path}[{i}]";
            var action = a["action"]!.ToString();
            if (UnsupportedActions.Contains(action))
                report(ap + ".action", $"unsupported: action {action} is not implemented yet");
            if (action == "Signal" && a["argSig"] is null)
                report(ap, "action Signal needs argSig (the signal number)");
            if (action == "Override")
            {
                if (a["argError"] is null)
                    report(ap, "action Override needs argError (a negative errno, e.g. -1 for EPERM)");
                if (kind == "tracepoints")
                    report(ap + ".action", "Override cannot change a tracepoint's outcome; use an lsmhook or a kprobe");
            }
            if (a["rateLimit"] is not null && action != "Post")
                report(ap + ".rateLimit", "rateLimit applies to the Post action only");
        }
    }
}
