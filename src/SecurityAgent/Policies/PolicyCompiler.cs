using System.Net;
using Newtonsoft.Json.Linq;
using SecurityAgent.Export;
using SecurityAgent.Kernel;

namespace SecurityAgent.Policies;

/// <summary>A policy that validated but cannot be compiled for this kernel (or uses a combination the
/// kernel side does not implement). Carries diagnostics like the validator.</summary>
public sealed class PolicyCompileException(IReadOnlyList<PolicyDiagnostic> diagnostics)
    : Exception(string.Join(Environment.NewLine, diagnostics))
{
    public IReadOnlyList<PolicyDiagnostic> Diagnostics { get; } = diagnostics;
}

/// <summary>Pure function from a validated policy to a <see cref="PolicyPlan"/>: no kernel calls. The kernel's
/// features and tracepoint formats come in as arguments, so it is tested without a kernel.</summary>
public sealed class PolicyCompiler(KernelFeatures features, Func<string, string, TracepointFormat?> formats, SyscallTable? syscalls = null)
{
    private readonly SyscallTable _syscalls = syscalls ?? SyscallTable.X86_64;

    /// <summary>Common fields plus __syscall_nr: a syscall's first argument is format field 5.</summary>
    private const int SyscallFirstField = 5;

    public static Func<string, string, TracepointFormat?> TraceFsFormats(string tracefs = KernelMounts.TraceFs) =>
        (subsys, ev) => TracepointFormat.TryRead(tracefs, subsys, ev);

    public PolicyPlan Compile(ValidatedPolicy policy)
    {
        if (!policy.Ok || policy.Json is null)
            throw new PolicyCompileException(policy.Diagnostics);
        var ctx = new Context(policy, _syscalls, (policy.Json.SelectToken("spec.lists") as JArray) ?? []);
        var json = policy.Json;
        var hooks = new List<HookPlan>();
        Each(json, "tracepoints", (h, p) => hooks.Add(Tracepoint(h, p, ctx)));
        Each(json, "kprobes", (h, p) => hooks.Add(Kprobe(h, p, ctx)));
        Each(json, "lsmhooks", (h, p) => hooks.Add(LsmHook(h, p, ctx)));
        if (hooks.Count == 0)
            ctx.Error("spec", "the policy has no tracepoints, kprobes or lsmhooks");
        if (ctx.Errors.Count > 0)
            throw new PolicyCompileException(ctx.Errors);
        return new PolicyPlan(policy.Name!, policy.File, Mode(json) != "monitor", hooks, ctx.Sets, Scope(json));
    }

    /// <summary>podSelector, containerSelector and a TracingPolicyNamespaced's namespace; null: every process.</summary>
    private static PolicyScope? Scope(JToken json)
    {
        var ns = json.SelectToken("kind")?.ToString() == "TracingPolicyNamespaced" ? json.SelectToken("metadata.namespace")?.ToString() ?? "default" : null;
        var pods = Selector(json.SelectToken("spec.podSelector"));
        var containers = Selector(json.SelectToken("spec.containerSelector"));
        return ns is null && pods is null && containers is null ? null : new PolicyScope(ns, pods, containers);
    }

    private static LabelSelector? Selector(JToken? t)
    {
        if (t is null || t.Type == JTokenType.Null) return null;
        var labels = (t["matchLabels"] as JObject)?.Properties().ToDictionary(p => p.Name, p => p.Value.ToString()) ?? [];
        var exprs = (t["matchExpressions"] as JArray)?.Select(e => (e["key"]!.ToString(), e["operator"]!.ToString(),
            (IReadOnlyList<string>)((e["values"] as JArray)?.Select(v => v.ToString()).ToList() ?? []))).ToList() ?? [];
        return new LabelSelector(labels, exprs);
    }

    private static string Mode(JToken json) =>
        (json.SelectToken("spec.options") as JArray)?.FirstOrDefault(o => o["name"]?.ToString() == "policy-mode")?["value"]?.ToString() ?? "enforce";

    private static void Each(JToken json, string kind, Action<JToken, string> f)
    {
        if (json.SelectToken("spec." + kind) is JArray a)
            for (int i = 0; i < a.Count; i++)
                f(a[i], $"spec.{kind}[{i}]");
    }

    private sealed class Context(ValidatedPolicy policy, SyscallTable syscalls, JArray lists)
    {
        public SyscallTable Syscalls => syscalls;
        public JToken? List(string name) => lists.FirstOrDefault(l => l["name"]?.ToString() == name);

        public List<PolicyDiagnostic> Errors { get; } = [];
        public List<ValueSet> Sets { get; } = [];

        public void Error(string field, string message)
        {
            var m = policy.Source?.PositionOf(field);
            Errors.Add(new PolicyDiagnostic(policy.File, (int)(m?.Line ?? 0), (int)(m?.Column ?? 0), field, message));
        }

        public int AddSet(ValueSetKind kind, IEnumerable<string> values)
        {
            Sets.Add(new ValueSet(kind, values.ToList()));
            return Sets.Count - 1;
        }
    }

    private HookPlan Tracepoint(JToken h, string path, Context ctx)
    {
        var subsys = h["subsystem"]!.ToString();
        var ev = h["event"]!.ToString();
        var format = formats(subsys, ev);
        if (format is null)
        {
            ctx.Error(path + ".event", $"no tracepoint {subsys}/{ev} on this kernel");
            return Empty(HookKind.Tracepoint, subsys + "/" + ev);
        }
        var args = Args(h, path, ctx, index => index < format.Fields.Count ? format.Fields[index] : null);
        return new HookPlan(HookKind.Tracepoint, Mechanism.Tracepoint, $"{subsys}/{ev}", $"{subsys}/{ev}",
            "tracepoint: read by the generic tracepoint program, arguments at their format offsets",
            args, Selectors(h, path, args, HookKind.Tracepoint, ctx), h["message"]?.ToString(), Tags(h));
    }

    private HookPlan Kprobe(JToken h, string path, Context ctx)
    {
        var call = h["call"]!.ToString();
        if (h["syscall"]?.Value<bool>() != true)
        {
            if (!features.Has(Mechanism.Kprobe))
            {
                ctx.Error(path + ".call", features.Has(Mechanism.Fentry)
                    ? $"unsupported: '{call}' needs a kprobe; fentry-based hooks are not implemented yet"
                    : $"needs kprobes or fentry to hook '{call}', and this kernel has neither");
                return Empty(HookKind.Kprobe, call);
            }
            var fargs = FunctionArgs(h, path, ctx);
            return new HookPlan(HookKind.Kprobe, Mechanism.Kprobe, call, call, "kprobe on the kernel function; arguments from the registers",
                fargs, Selectors(h, path, fargs, HookKind.Kprobe, ctx), h["message"]?.ToString(), Tags(h));
        }
        var name = SemanticPass.SyscallName(call);
        var format = formats("syscalls", "sys_enter_" + name);
        if (format is null)
        {
            ctx.Error(path + ".call", $"no tracepoint syscalls/sys_enter_{name} for syscall '{call}'");
            return Empty(HookKind.Kprobe, call);
        }
        // A syscall kprobe's argument i is the syscall's argument i: format field 5 + i, same meaning.
        var args = Args(h, path, ctx, index => SyscallFirstField + index < format.Fields.Count ? format.Fields[SyscallFirstField + index] : null);
        var why = features.Has(Mechanism.Kprobe) || features.Has(Mechanism.Fentry)
            ? "syscall kprobe: runs on the syscall's entry tracepoint (same arguments, no kprobe needed)"
            : "syscall kprobe: this kernel has no kprobes or fentry, so it runs on the syscall's entry tracepoint with the same arguments";
        return new HookPlan(HookKind.Kprobe, Mechanism.Tracepoint, $"syscalls/sys_enter_{name}", "__x64_sys_" + name, why,
            args, Selectors(h, path, args, HookKind.Kprobe, ctx), h["message"]?.ToString(), Tags(h));
    }

    private HookPlan LsmHook(JToken h, string path, Context ctx)
    {
        var hook = h["hook"]!.ToString();
        if (hook == "socket_connect" && !features.Has(Mechanism.Lsm) && features.Has(Mechanism.CgroupSockAddr))
        {
            var args = Args(h, path, ctx, index => index == 1 ? new TracepointField("address", "struct sockaddr *", 0, Events.Contract.SockaddrSize, false) : null);
            return new HookPlan(HookKind.LsmHook, Mechanism.CgroupSockAddr, features.Cgroup2Path ?? "/sys/fs/cgroup", hook,
                "lsmhooks socket_connect: this kernel has no BPF LSM, so it runs on cgroup connect4/connect6 hooks at the cgroup v2 root, which deny in the kernel",
                args, Selectors(h, path, args, HookKind.LsmHook, ctx), h["message"]?.ToString(), Tags(h));
        }
        if (!features.Has(Mechanism.Lsm))
        {
            ctx.Error(path + ".hook", $"needs BPF LSM to run 'lsmhooks: {hook}'");
            return Empty(HookKind.LsmHook, hook);
        }
        if (!Sensors.PolicySensor.LsmHooks.Contains(hook))
        {
            ctx.Error(path + ".hook", $"unsupported: lsmhooks '{hook}' (supported: {string.Join(", ", Sensors.PolicySensor.LsmHooks)})");
            return Empty(HookKind.LsmHook, hook);
        }
        var largs = FunctionArgs(h, path, ctx);
        return new HookPlan(HookKind.LsmHook, Mechanism.Lsm, hook, hook, "BPF LSM hook: returning the policy's errno denies the operation in the kernel",
            largs, Selectors(h, path, largs, HookKind.LsmHook, ctx), h["message"]?.ToString(), Tags(h));
    }

    /// <summary>Arguments of a kernel function (LSM hook, kprobe): Offset is the argument number.</summary>
    private static List<ArgPlan> FunctionArgs(JToken h, string path, Context ctx)
    {
        var plans = new List<ArgPlan>();
        var args = h["args"] as JArray ?? [];
        for (int i = 0; i < Math.Min(args.Count, 5); i++)
        {
            int index = args[i]["index"]!.Value<int>();
            var type = args[i]["type"]!.ToString();
            if (index > 4)
            {
                ctx.Error($"{path}.args[{i}].index", "only the first 5 function arguments can be read");
                continue;
            }
            var (kt, size) = type switch
            {
                "file" => (ArgType.File, 8),
                "path" => (ArgType.Path, 8),
                "linux_binprm" => (ArgType.Bprm, 8),
                "sockaddr" => (ArgType.KSockAddr, 8),
                "string" or "char_buf" or "filename" => (ArgType.KString, 8),
                _ => KernelType(type, new TracepointField("arg", "long", 0, 8, true)),
            };
            if (kt is ArgType.None or ArgType.String or ArgType.SockAddr)
            {
                ctx.Error($"{path}.args[{i}].type", $"unsupported: type '{type}' for a kernel function argument");
                continue;
            }
            plans.Add(new ArgPlan(plans.Count, index, type, kt, index, size, args[i]["label"]?.ToString()));
        }
        return plans;
    }

    private static HookPlan Empty(HookKind kind, string name) => new(kind, Mechanism.Tracepoint, name, name, "", [], [], null, []);

    private static IReadOnlyList<string> Tags(JToken h) => (h["tags"] as JArray)?.Select(t => t.ToString()).ToList() ?? [];

    private static List<ArgPlan> Args(JToken h, string path, Context ctx, Func<int, TracepointField?> field)
    {
        var plans = new List<ArgPlan>();
        var args = h["args"] as JArray ?? [];
        if (args.Count > 5)
            ctx.Error(path + ".args", $"{args.Count} arguments, at most 5 per hook");
        for (int i = 0; i < Math.Min(args.Count, 5); i++)
        {
            int index = args[i]["index"]!.Value<int>();
            var type = args[i]["type"]!.ToString();
            var f = field(index);
            if (f is null)
            {
                ctx.Error($"{path}.args[{i}].index", $"no argument {index} at this hook");
                continue;
            }
            var (kernelType, size) = KernelType(type, f);
            if (kernelType == ArgType.None)
            {
                ctx.Error($"{path}.args[{i}].type", $"unsupported: type '{type}' for '{f.CType} {f.Name}' at this hook");
                continue;
            }
            plans.Add(new ArgPlan(plans.Count, index, type, kernelType, f.Offset, size, args[i]["label"]?.ToString()));
        }
        return plans;
    }

    /// <summary>How the kernel reads a policy type from a record field.</summary>
    internal static (ArgType, int) KernelType(string type, TracepointField f)
    {
        bool pointer = f.CType.Contains('*') || f.Size == 8 && f.CType.Contains("long");
        return type switch
        {
            "int" or "int32" or "s32" => (ArgType.Int, 4),
            "int8" or "s8" => (ArgType.Int, 1),
            "int16" or "s16" => (ArgType.Int, 2),
            "int64" or "s64" or "long" => (ArgType.Int, 8),
            "uint" or "uint32" or "u32" => (ArgType.UInt, 4),
            "uint8" or "u8" => (ArgType.UInt, 1),
            "uint16" or "u16" => (ArgType.UInt, 2),
            "uint64" or "u64" or "size_t" or "ulong" or "syscall64" => (ArgType.UInt, 8),
            "auto" => f.Signed ? (ArgType.Int, Math.Min(f.Size, 8)) : (ArgType.UInt, Math.Min(f.Size, 8)),
            "fd" => (ArgType.Fd, 4),
            "string" or "filename" or "char_buf" when pointer => (ArgType.String, 8),
            "sockaddr" when pointer => (ArgType.SockAddr, 8),
            "nop" => (ArgType.UInt, Math.Min(f.Size, 8)),
            _ => (ArgType.None, 0),
        };
    }

    private static List<SelectorPlan> Selectors(JToken h, string path, List<ArgPlan> args, HookKind kind, Context ctx)
    {
        var list = new List<SelectorPlan>();
        if (h["selectors"] is not JArray selectors)
            return list;
        for (int s = 0; s < selectors.Count; s++)
            list.Add(Selector(selectors[s], $"{path}.selectors[{s}]", args, kind, ctx, h));
        return list;
    }

    private static SelectorPlan Selector(JToken sel, string path, List<ArgPlan> args, HookKind kind, Context ctx, JToken hook)
    {
        var actions = Actions.None;
        int signal = 0, error = 0;
        ulong rate = 0;
        bool noPost = false;
        if (sel["matchActions"] is JArray acts)
            for (int i = 0; i < acts.Count; i++)
            {
                var a = acts[i];
                switch (a["action"]!.ToString())
                {
                    case "Post":
                        actions |= Actions.Post;
                        if (a["rateLimit"] is { } rl) rate = RateLimitNs(rl.ToString());
                        break;
                    case "NoPost": noPost = true; break;
                    case "Sigkill": actions |= Actions.Sigkill; break;
                    case "Signal": actions |= Actions.Signal; signal = a["argSig"]!.Value<int>(); break;
                    case "Override": actions |= Actions.Override; error = a["argError"]!.Value<int>(); break;
                    default: ctx.Error($"{path}.matchActions[{i}].action", $"unsupported: action {a["action"]}"); break;
                }
            }
        if (!noPost) actions |= Actions.Post; // events are posted unless NoPost, as in Tetragon
        if (actions.HasFlag(Actions.Override) && kind != HookKind.LsmHook)
            ctx.Error(path + ".matchActions", "Override needs an lsmhook (or a cgroup-backed socket_connect)");
        if (kind == HookKind.LsmHook && (actions & (Actions.Sigkill | Actions.Signal)) != 0)
            ctx.Error(path + ".matchActions", "unsupported: Sigkill/Signal on socket_connect through cgroup hooks (no signal helper there); use Override to deny");
        if (kind == HookKind.LsmHook && sel["matchCapabilities"] is not null)
            ctx.Error(path + ".matchCapabilities", "unsupported: matchCapabilities on socket_connect through cgroup hooks");

        var (binCmp, binSet) = Binaries(sel["matchBinaries"] as JArray, path + ".matchBinaries", ctx);
        var (pidCmp, pids, follow, pidNs) = Pids(sel["matchPIDs"] as JArray, path + ".matchPIDs", ctx);
        var (capCmp, capSet, capMask) = Caps(sel["matchCapabilities"] as JArray, path + ".matchCapabilities", ctx);
        if (sel["matchNamespaces"] is not null)
            ctx.Error(path + ".matchNamespaces", "unsupported: matchNamespaces is not implemented yet");
        var parents = (sel["matchParentBinaries"] as JArray)?.Select(p => new ParentBinaryRule(p["operator"]!.ToString(),
            (p["values"] as JArray)!.Select(v => v.ToString()).ToList())).ToList() ?? [];
        var filters = ArgFilters(sel["matchArgs"] as JArray, path + ".matchArgs", args, kind, ctx, hook);
        return new SelectorPlan(actions, signal, rate, error, binCmp, binSet, pidCmp, pids, follow, pidNs, capCmp, capSet, capMask, filters, parents);
    }

    internal static ulong RateLimitNs(string s)
    {
        ulong unit = s[^1] switch { 'm' => 60, 'h' => 3600, _ => 1 };
        var digits = char.IsDigit(s[^1]) ? s : s[..^1];
        return ulong.Parse(digits) * unit * 1_000_000_000UL;
    }

    private static (Cmp, int?) Binaries(JArray? m, string path, Context ctx)
    {
        if (m is null || m.Count == 0) return (Cmp.None, null);
        if (m.Count > 1) ctx.Error(path, "unsupported: one matchBinaries entry per selector (use several selectors)");
        var e = m[0];
        if (e["followChildren"]?.Value<bool>() == true)
            ctx.Error(path + "[0].followChildren", "unsupported: followChildren is not implemented yet");
        var values = (e["values"] as JArray)!.Select(v => v.ToString()).ToList();
        var (cmp, kind) = e["operator"]!.ToString() switch
        {
            "In" => (Cmp.In, ValueSetKind.StringExact),
            "NotIn" => (Cmp.NotIn, ValueSetKind.StringExact),
            "Prefix" => (Cmp.Prefix, ValueSetKind.StringPrefix),
            "NotPrefix" => (Cmp.NotPrefix, ValueSetKind.StringPrefix),
            "Postfix" => (Cmp.Postfix, ValueSetKind.StringPostfix),
            _ => (Cmp.NotPostfix, ValueSetKind.StringPostfix),
        };
        CheckStringLengths(values, kind, path + "[0].values", ctx);
        return (cmp, ctx.AddSet(kind, values));
    }

    private static (Cmp, IReadOnlyList<uint>, bool, bool) Pids(JArray? m, string path, Context ctx)
    {
        if (m is null || m.Count == 0) return (Cmp.None, [], false, false);
        bool Flag(JToken e, string f) => e[f]?.Value<bool>() == true;
        var first = m[0];
        var op = first["operator"]!.ToString();
        // Several NotIn entries with the same flags are one NotIn of their union (AND of NotIns).
        if (m.Count > 1 && !m.All(e => e["operator"]!.ToString() == "NotIn"
                && Flag(e, "followForks") == Flag(first, "followForks") && Flag(e, "isNamespacePID") == Flag(first, "isNamespacePID")))
            ctx.Error(path, "unsupported: several matchPIDs entries are supported only as NotIn entries with the same flags");
        var pids = m.SelectMany(e => (e["values"] as JArray)!.Select(v => uint.Parse(v.ToString()))).Distinct().ToList();
        if (pids.Count > 4) ctx.Error(path, $"{pids.Count} pids, at most 4 per selector");
        return (op == "In" ? Cmp.In : Cmp.NotIn, pids.Take(4).ToList(), Flag(first, "followForks"), Flag(first, "isNamespacePID"));
    }

    private static (Cmp, byte, ulong) Caps(JArray? m, string path, Context ctx)
    {
        if (m is null || m.Count == 0) return (Cmp.None, 0, 0);
        if (m.Count > 1) ctx.Error(path, "unsupported: one matchCapabilities entry per selector");
        var e = m[0];
        if (e["isNamespaceCapability"]?.Value<bool>() == true)
            ctx.Error(path + "[0].isNamespaceCapability", "unsupported: namespace capabilities are not implemented yet");
        ulong mask = 0;
        var values = (e["values"] as JArray)!;
        for (int i = 0; i < values.Count; i++)
        {
            if (LinuxNames.CapabilityNumber(values[i].ToString()) is { } n) mask |= 1UL << n;
            else ctx.Error($"{path}[0].values[{i}]", $"unknown capability '{values[i]}'");
        }
        byte set = e["type"]?.ToString() switch { "Permitted" => 1, "Inheritable" => 2, _ => 0 };
        return (e["operator"]!.ToString() == "In" ? Cmp.In : Cmp.NotIn, set, mask);
    }

    private static List<ArgFilterPlan> ArgFilters(JArray? m, string path, List<ArgPlan> args, HookKind kind, Context ctx, JToken hook)
    {
        var list = new List<ArgFilterPlan>();
        if (m is null) return list;
        if (m.Count > 4) ctx.Error(path, $"{m.Count} matchArgs entries, at most 4 per selector");
        var declared = (hook["args"] as JArray) ?? [];
        for (int i = 0; i < Math.Min(m.Count, 4); i++)
        {
            var e = m[i];
            var ep = $"{path}[{i}]";
            ArgPlan? arg;
            if (e["args"] is JArray refs && refs.Count > 0)
                arg = refs[0].Value<int>() < declared.Count ? args.FirstOrDefault(a => a.Index == declared[refs[0].Value<int>()]["index"]!.Value<int>()) : null;
            else
            {
                int n = e["index"]!.Value<int>();
                arg = args.FirstOrDefault(a => a.Index == n) ?? (kind == HookKind.Tracepoint && n < args.Count ? args[n] : null);
            }
            if (arg is null)
            {
                ctx.Error(ep, "refers to an argument this hook does not read");
                continue;
            }
            var values = (e["values"] as JArray)?.Select(v => v.ToString()).ToList() ?? [];
            var op = e["operator"]!.ToString();
            list.Add(ArgFilter(op, arg, values, ep, ctx));
        }
        return list;
    }

    private static ArgFilterPlan ArgFilter(string op, ArgPlan arg, List<string> values, string path, Context ctx)
    {
        bool str = arg.KernelType is ArgType.String or ArgType.File or ArgType.Path or ArgType.Bprm or ArgType.KString;
        switch (op)
        {
            case "Equal" or "NotEqual" or "InMap" or "NotInMap":
            {
                var cmp = op is "Equal" or "InMap" ? Cmp.In : Cmp.NotIn;
                if (str)
                    return new(arg.Slot, cmp, ctx.AddSet(ValueSetKind.StringExact, values), 0);
                var ints = values.SelectMany(v => v.StartsWith("list:") ? SyscallList(v, ctx, path) : [Integer(v)]);
                return new(arg.Slot, cmp, ctx.AddSet(ValueSetKind.Int, ints.Select(x => x.ToString())), 0);
            }
            case "Prefix" or "NotPrefix":
                CheckStringLengths(values, ValueSetKind.StringPrefix, path + ".values", ctx);
                return new(arg.Slot, op == "Prefix" ? Cmp.Prefix : Cmp.NotPrefix, ctx.AddSet(ValueSetKind.StringPrefix, values), 0);
            case "Postfix" or "NotPostfix":
                CheckStringLengths(values, ValueSetKind.StringPostfix, path + ".values", ctx);
                return new(arg.Slot, op == "Postfix" ? Cmp.Postfix : Cmp.NotPostfix, ctx.AddSet(ValueSetKind.StringPostfix, values), 0);
            case "GreaterThan" or "GT":
                return new(arg.Slot, Cmp.GreaterThan, null, Integer(values[0]));
            case "LessThan" or "LT":
                return new(arg.Slot, Cmp.LessThan, null, Integer(values[0]));
            case "Mask":
                return new(arg.Slot, Cmp.Mask, null, values.Aggregate(0UL, (m, v) => m | Integer(v)));
            case "DAddr" or "NotDAddr":
                return new(arg.Slot, op == "DAddr" ? Cmp.DAddr : Cmp.NotDAddr, ctx.AddSet(ValueSetKind.Address, values), 0);
            case "DPort" or "NotDPort":
                return new(arg.Slot, op == "DPort" ? Cmp.DPort : Cmp.NotDPort, ctx.AddSet(ValueSetKind.Int, values), 0);
            case "Family" or "NotFamily":
                return new(arg.Slot, op == "Family" ? Cmp.Family : Cmp.NotFamily,
                    ctx.AddSet(ValueSetKind.Int, values.Select(v => v switch { "AF_INET" => "2", "AF_INET6" => "10", "AF_UNIX" => "1", _ => v })), 0);
            default:
                ctx.Error(path + ".operator", $"unsupported: operator {op} is not implemented in the kernel filter yet");
                return new(arg.Slot, Cmp.None, null, 0);
        }
    }

    private static void CheckStringLengths(List<string> values, ValueSetKind kind, string path, Context ctx)
    {
        int max = kind == ValueSetKind.StringExact ? 255 : 248;
        foreach (var v in values.Where(v => System.Text.Encoding.UTF8.GetByteCount(v) > max))
            ctx.Error(path, $"'{v[..20]}...' is longer than the {max} bytes the kernel filter compares");
    }

    internal static ulong Integer(string v) =>
        v.StartsWith("0x") ? Convert.ToUInt64(v[2..], 16) : v.StartsWith('-') ? (ulong)long.Parse(v) : ulong.Parse(v);

    /// <summary>Syscall numbers of a `list:NAME` of type syscalls (x86-64).</summary>
    private static IEnumerable<ulong> SyscallList(string reference, Context ctx, string path)
    {
        var list = ctx.List(reference[5..]);
        if (list is null || list["type"]?.ToString() != "syscalls")
        {
            ctx.Error(path, $"unsupported: '{reference}' is not a list of type syscalls");
            return [];
        }
        var numbers = new List<ulong>();
        foreach (var v in (list["values"] as JArray) ?? [])
        {
            if (ctx.Syscalls.Number(v.ToString()) is { } n) numbers.Add(n);
            else ctx.Error(path, $"list {reference[5..]}: unknown syscall '{v}'");
        }
        return numbers;
    }
}

