using System.Text;

namespace SecurityAgent.Fuzz;

/// <summary>Deterministic policy mutations: from a seed number and a corpus, always the same inputs (a failure found
/// once is found again with the same --seed and --count). Mutations aim at the front end's edges: values out of range
/// or of the wrong type, broken YAML, deep nesting, aliases, templates, paths, huge and odd scalars.</summary>
public sealed class Mutator(IReadOnlyList<string> corpus, ulong seed)
{
    private ulong _state = seed * 0x9E3779B97F4A7C15UL + 1;

    private ulong Next()
    {
        // splitmix64: the same sequence on every platform and .NET version
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    private int Below(int n) => n <= 0 ? 0 : (int)(Next() % (ulong)n);
    private T Pick<T>(IReadOnlyList<T> items) => items[Below(items.Count)];

    private static readonly string[] Values =
    [
        "4294967296", "-1", "-4096", "99999999999999999999", "0x", "0xffffffffffffffff", "0x1ffffffffffffffff", "{{.MatchedPID}}", "{{.NamespacePID}}",
        "/some/dir", "../../../../etc", "/dev/zero", "", "~", "null", "true", "[]", "{}", "*a", "&a x", "!!str 5", "!!int x", "0755", "08", "-0", "+5",
        "1e3", "0o17", "0b101", "list:nope", "list:", "AF_INET", "AF_BOGUS", "10.0.0.1/8", "10.0.0.0/33", "::1", ":::", "fe80::1%eth0", "1", "65536",
        "44444444", "Sigkill", "Override", "Signal", "Post", "NoPost", "FollowFD", "In", "NotIn", "Prefix", "GreaterThan", "Mask", "InMap", "DPort",
        "DAddr", "Family", "InRange", "5:3", "SAddr", "enforce", "monitor", "sometimes", "syscalls", "sys_enter_openat", "raw_syscalls", "sys_enter",
        "socket_connect", "file_open", "sys_openat", "__x64_sys_openat", "fd_install", "string", "int", "sockaddr", "syscall64", "file", "fd", "cred",
        "nop", "auto", "char_buf", "linux_binprm", "Effective", "CAP_SYS_ADMIN", "CAP_BOGUS", "TracingPolicyNamespaced", "cilium.io/v1alpha1",
        "securityagent.io/v2", "\"quoted\"", "'single'", "é\u00e9\u4e2d", "a\u0000b", "\t", "1m", "25h", "99999999999h", "x", "..", "a.b", "-", "? x",
        "|", ">-", "%YAML 1.2", "@x", "`x`", "0", "255", "256", "63", "64", "-2147483649", "2147483648",
        "list:syscalls", "generated_syscalls", "generated_ftrace", "sock", "skb", "socket", "dentry", "cap_effective", "TrackSock", "UntrackSock",
        "DnsLookup", "GetUrl", "NotifyEnforcer", "Set", "host_ns", "Net", "SPort", "SPortPriv", "State", "TCP_SYN_SENT", "Protocol", "IPPROTO_TCP",
        "CapabilitiesGained", "http://example.invalid/x", "disable-kprobe-multi", "override-method", "fmod-ret", "/usr/lib/libc.so.6", "readline",
    ];

    private static readonly string[] Keys =
    [
        "apiVersion", "kind", "metadata", "name", "namespace", "spec", "tracepoints", "kprobes", "lsmhooks", "uprobes", "subsystem", "event", "call",
        "syscall", "hook", "args", "index", "type", "selectors", "matchArgs", "matchBinaries", "matchPIDs", "matchCapabilities", "matchActions",
        "matchParentBinaries", "matchNamespaces", "matchReturnArgs", "operator", "values", "action", "argSig", "argError", "rateLimit", "options",
        "value", "lists", "podSelector", "matchLabels", "matchExpressions", "key", "followForks", "isNamespacePID", "return", "returnArg", "raw",
        "sizeArgIndex", "label", "message", "tags", "loader", "enforcers", "selectros", "<<", "", "a b", "x.y", "[0]",
        "usdts", "path", "symbols", "offsets", "provider", "calls", "argSock", "argFqdn", "argUrl", "argIndex", "argValue", "resolve", "returnCopy",
        "maxData", "returnArgAction", "matchNamespaceChanges", "matchCapabilityChanges", "matchReturnActions", "isNamespaceCapability",
        "kernelStackTrace", "userStackTrace", "imaHash", "followChildren", "ignore", "callNotFound", "selectorsMacros", "macros", "nodeSelector",
        "fentries", "btfType", "matchWorkloads",
    ];

    public string Next(out string description)
    {
        var text = Pick(corpus);
        var steps = new List<string>();
        int n = 1 + Below(4);
        for (int i = 0; i < n; i++)
        {
            var (t, what) = MutateOnce(text);
            text = t;
            steps.Add(what);
        }
        description = string.Join(", ", steps);
        return text;
    }

    private (string, string) MutateOnce(string text)
    {
        var lines = text.Split('\n').ToList();
        int li = Below(lines.Count);
        switch (Below(16))
        {
            case 0:
            {
                if (text.Length == 0) return (text, "noop");
                int at = Below(text.Length);
                const string alphabet = "{}[]:-,&*!|>'\"#%@\n\t 0123456789azAZ.~?\\/";
                return (text[..at] + alphabet[Below(alphabet.Length)] + text[(at + 1)..], "byte");
            }
            case 1:
            {
                int at = Below(text.Length + 1), len = Below(Math.Min(40, text.Length - at + 1));
                return (text.Remove(at, len), "delete");
            }
            case 2:
                lines.Insert(li, lines[li]);
                return (string.Join('\n', lines), "dup-line");
            case 3:
            {
                int lj = Below(lines.Count);
                (lines[li], lines[lj]) = (lines[lj], lines[li]);
                return (string.Join('\n', lines), "swap-lines");
            }
            case 4:
            {
                var other = Pick(corpus).Split('\n');
                int from = Below(other.Length), count = 1 + Below(6);
                lines.InsertRange(li, other.Skip(from).Take(count));
                return (string.Join('\n', lines), "splice");
            }
            case 5 or 6:
                return (ReplaceValue(lines, li), "value");
            case 7:
            {
                int depth = Pick(new[] { 10, 63, 64, 65, 200, 10_000 });
                var open = Pick(new[] { "[", "{a: ", "- ", "a:\n " });
                var nest = open == "a:\n " ? string.Concat(Enumerable.Range(0, Math.Min(depth, 300)).Select(i => new string(' ', i) + "a:\n")) : string.Concat(Enumerable.Repeat(open, depth));
                lines.Insert(li, nest);
                return (string.Join('\n', lines), $"nest-{depth}");
            }
            case 8 when Below(2) == 0:
            {
                var bomb = new StringBuilder("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
                for (int i = 1; i < 12; i++)
                    bomb.Append($"a{i}: &a{i} [{string.Join(", ", Enumerable.Repeat($"*a{i - 1}", 10))}]\n");
                lines.Insert(li, bomb.ToString());
                return (string.Join('\n', lines), "alias-bomb");
            }
            case 8:
            {
                // Each alias repeats a node nested almost to the limit, inside another such nest: deep only through aliases.
                int depth = 40 + Below(25);
                var chain = new StringBuilder($"d0: &d0 {new string('[', depth)}x{new string(']', depth)}\n");
                for (int i = 1; i < 2 + Below(6); i++)
                    chain.Append($"d{i}: &d{i} {new string('[', depth)}*d{i - 1}{new string(']', depth)}\n");
                lines.Insert(li, chain.ToString());
                return (string.Join('\n', lines), "alias-depth");
            }
            case 9:
            {
                var line = lines[li];
                int delta = Below(9) - 4;
                lines[li] = delta >= 0 ? new string(' ', delta) + line : line.TrimStart().PadLeft(Math.Max(0, line.Length - line.TrimStart().Length + delta) + line.TrimStart().Length);
                return (string.Join('\n', lines), "indent");
            }
            case 10:
                lines.Insert(li, Pick(new[] { "---", "...", "--- !x", "%TAG ! tag:x,2000:", "---\n---", "# comment" }));
                return (string.Join('\n', lines), "document");
            case 11:
            {
                var line = lines[li];
                int colon = line.IndexOf(':');
                if (colon < 0) return (text, "noop");
                int start = line.Length - line.TrimStart(' ', '-').Length;
                var key = Below(2) == 0 ? Pick(Keys) : Typo(line[start..colon]);
                lines[li] = line[..start] + key + line[colon..];
                return (string.Join('\n', lines), "key");
            }
            case 12:
                return (Below(2) == 0 ? text.Replace("\n", "\r\n") : text.Replace("  ", "\t"), "whitespace");
            case 13:
                lines.Insert(li + 1, lines[li]); // the same key twice in a mapping, or a doubled list item
                return (string.Join('\n', lines), "dup-key");
            case 14:
                return (text[..Below(text.Length + 1)], "truncate");
            default:
            {
                var line = lines[li];
                int colon = line.IndexOf(": ");
                if (colon < 0) return (text, "noop");
                lines[li] = line[..(colon + 2)] + "&x " + line[(colon + 2)..];
                int lj = Below(lines.Count);
                int c2 = lines[lj].IndexOf(": ");
                if (c2 >= 0) lines[lj] = lines[lj][..(c2 + 2)] + "*x";
                return (string.Join('\n', lines), "anchor");
            }
        }
    }

    private string ReplaceValue(List<string> lines, int li)
    {
        var line = lines[li];
        int at = line.IndexOf(": ");
        var value = Below(20) == 0 ? new string('x', Pick(new[] { 255, 256, 4096, 4097, 70_000 })) : Pick(Values);
        if (at >= 0) lines[li] = line[..(at + 2)] + value;
        else if (line.TrimStart().StartsWith("- ")) lines[li] = line[..(line.IndexOf("- ") + 2)] + value;
        else lines[li] = line + value;
        return string.Join('\n', lines);
    }

    private string Typo(string key)
    {
        if (key.Length == 0) return "x";
        int at = Below(key.Length);
        return Below(3) switch
        {
            0 => key.Remove(at, 1),
            1 => key.Insert(at, key[at].ToString()),
            _ => key.ToUpperInvariant(),
        };
    }
}
