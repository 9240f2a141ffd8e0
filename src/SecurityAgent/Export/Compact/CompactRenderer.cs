using System.Buffers;
using System.Text;

namespace SecurityAgent.Export.Compact;

/// <param name="Color">ANSI colours (a terminal).</param>
/// <param name="Timestamps">Prefix each line with the event's time.</param>
public readonly record struct CompactStyle(bool Color, bool Timestamps);

/// <summary>One readable line per event, as `tetra getevents -o compact`: an emoji and a verb for what happened
/// (process, exit, open, connect, ...), where (namespace/pod, or the node for host processes), the binary, the argument
/// that matters (a path, a destination, the arguments), and for a policy hit the decision (killed, denied, would kill,
/// ...) with the policy's name, highlighted. Text from events (paths, arguments) is escaped: a file name cannot put
/// control sequences on the reader's terminal. Pure: a function of the event's JSON and the style.</summary>
public static class CompactRenderer
{
    private const string Reset = "\u001b[0m", Red = "\u001b[31m", BoldRed = "\u001b[1;31m", Green = "\u001b[32m",
        Yellow = "\u001b[33m", Blue = "\u001b[34m", Magenta = "\u001b[35m", Cyan = "\u001b[36m";

    /// <summary>Writes the compact line of one event (UTF-8 JSON, without newline) followed by a newline. Returns false,
    /// writing nothing, when the bytes are not an event.</summary>
    public static bool Render(ReadOnlySpan<byte> utf8Json, IBufferWriter<byte> output, CompactStyle style)
    {
        if (EventView.Parse(utf8Json) is not { } v) return false;
        var line = Line(v, style);
        var dst = output.GetSpan(Encoding.UTF8.GetMaxByteCount(line.Length) + 1);
        int n = Encoding.UTF8.GetBytes(line, dst);
        dst[n] = (byte)'\n';
        output.Advance(n + 1);
        return true;
    }

    /// <summary>The compact line of one JSON event line, or null when it is not an event.</summary>
    public static string? Line(string json, CompactStyle style) =>
        EventView.Parse(Encoding.UTF8.GetBytes(json)) is { } v ? Line(v, style) : null;

    public static string Line(EventView v, CompactStyle style)
    {
        var (icon, verb, detail) = Describe(v);
        var (decision, hit) = Decision(v);
        var b = new StringBuilder(160);
        if (style.Timestamps && v.Time is not null) b.Append(v.Time).Append(' ');
        Paint(b, style, hit == Hit.Enforced ? BoldRed : Blue, $"{icon} {verb,-7}");
        if (v.Type == "rate_limit_info")
        {
            Paint(b.Append(' '), style, Yellow, $"{v.Dropped} events dropped by the export rate limit");
            return b.ToString();
        }
        if (v.Type == "stream_drop_info")
        {
            Paint(b.Append(' '), style, Yellow, $"{v.Dropped} events dropped: this client read the stream too slowly");
            return b.ToString();
        }
        b.Append(' ');
        Paint(b, style, Green, v.Namespace is not null ? $"{Escape(v.Namespace)}/{Escape(v.Pod ?? "")}" : Escape(v.Node ?? ""));
        Paint(b.Append(' '), style, Magenta, Escape(v.Binary, quoteSpaces: true));
        if (detail.Length > 0) Paint(b.Append(' '), style, Cyan, detail);
        if (v.Type == "process_exit")
            Paint(b.Append(' '), style, Red, v.Signal ?? v.Status?.ToString() ?? "");
        if (v.Policy is not null)
        {
            b.Append("  ");
            if (decision.Length > 0) Paint(b, style, hit == Hit.Enforced ? BoldRed : Yellow, decision + " ");
            Paint(b, style, Yellow, $"[{Escape(v.Policy)}]");
        }
        return b.ToString();
    }

    private enum Hit { None, Enforced, WouldAct }

    private static (string Text, Hit Hit) Decision(EventView v)
    {
        var (did, would) = v.Action switch
        {
            "KPROBE_ACTION_SIGKILL" => ("killed", "kill"),
            "KPROBE_ACTION_OVERRIDE" => ("denied", "deny"),
            "KPROBE_ACTION_SIGNAL" => ("signalled", "signal"),
            "KPROBE_ACTION_SET" => ("argument set", "set the argument"),
            "KPROBE_ACTION_NOTIFYENFORCER" => ("enforced", "enforce"),
            _ => ("", ""),
        };
        if (did.Length == 0) return ("", Hit.None);
        if (v.Mode is null) return ($"{would} action", Hit.WouldAct); // a line without the agent's extension: the outcome is not in it
        if (v.Mode == "monitor") return ($"would {would}", Hit.WouldAct);
        if (v.Enforced) return (did, Hit.Enforced);
        return (v.SafetyRefused ? $"not {did}: protected process" : $"not {did}", Hit.WouldAct);
    }

    private static (string Icon, string Verb, string Detail) Describe(EventView v)
    {
        switch (v.Type)
        {
            case "process_exec": return ("🚀", "process", Escape(v.Arguments));
            case "process_exit": return ("💥", "exit", Escape(v.Arguments));
            case "rate_limit_info": return ("🚦", "limit", "");
            case "stream_drop_info": return ("🚦", "dropped", "");
        }
        var call = CallName(v.Hook ?? "");
        string Path() => v.Args.FirstOrDefault(a => a.Kind is "file_arg" or "path_arg" or "linux_binprm_arg")?.Text
            ?? v.Args.FirstOrDefault(a => a.Kind == "string_arg")?.Text ?? "";
        string Dest() => v.Args.FirstOrDefault(a => a.Kind == "sockaddr_arg")?.Text ?? Path();
        string Quoted(string s) => Escape(s, quoteSpaces: true);
        return call switch
        {
            "open" or "openat" or "openat2" or "creat" or "file_open" or "security_file_open" or "fd_install" => ("📬", "open", Quoted(Path())),
            "read" or "pread64" or "readv" => ("📚", "read", Quoted(Path())),
            "write" or "pwrite64" or "writev" => ("📝", "write", Quoted(Path())),
            "truncate" or "ftruncate" or "path_truncate" or "file_truncate" => ("📝", "trunc", Quoted(Path())),
            "close" => ("📪", "close", Quoted(Path())),
            "unlink" or "unlinkat" or "rmdir" or "path_unlink" => ("🧹", "unlink", Quoted(Path())),
            "rename" or "renameat" or "renameat2" or "path_rename" => ("📝", "rename", Quoted(Path())),
            "connect" or "socket_connect" or "tcp_connect" => ("🔌", "connect", Quoted(Dest())),
            "sendto" or "sendmsg" or "tcp_sendmsg" => ("📤", "sendmsg", Quoted(Dest())),
            "bind" or "socket_bind" => ("🔌", "bind", Quoted(Dest())),
            "execve" or "execveat" or "bprm_check_security" or "bprm_creds_for_exec" or "bprm_committed_creds" => ("🚀", "exec", Quoted(Path())),
            "mount" or "umount2" or "pivot_root" or "move_mount" or "fsmount" or "sb_mount" => ("💾", call.Length <= 7 ? call : "mount", Quoted(Path())),
            "setuid" or "setgid" or "setreuid" or "setregid" or "setresuid" or "setresgid" or "setfsuid" or "setfsgid" or "capset" or "task_fix_setuid"
                => ("🔑", call.Length <= 7 ? call : "setid", Values(v)),
            "ptrace" or "ptrace_access_check" => ("🔍", "ptrace", Values(v)),
            "init_module" or "finit_module" or "delete_module" or "kernel_module_request" or "kernel_read_file" => ("🧩", "module", Values(v)),
            "bpf" or "bpf_check" or "bpf_prog_load" => ("🐝", "bpf", Values(v)),
            _ when v.Type == "process_lsm" => ("🔒", "lsm", $"{v.Hook} {Values(v)}".TrimEnd()),
            _ when v.Type == "process_tracepoint" && !(v.Hook ?? "").StartsWith("syscalls/", StringComparison.Ordinal)
                => ("📍", "trace", $"{v.Hook} {Values(v)}".TrimEnd()),
            _ => ("❓", "syscall", $"{(call.Length > 0 ? call : v.Hook)} {Values(v)}".TrimEnd()),
        };
    }

    private static string Values(EventView v) => string.Join(' ', v.Args.Take(4).Select(a => Escape(a.Text, quoteSpaces: true)));

    /// <summary>The syscall or kernel function a hook names: __x64_sys_openat, sys_openat, syscalls/sys_enter_openat → openat.</summary>
    public static string CallName(string hook)
    {
        var h = hook.StartsWith("syscalls/sys_enter_", StringComparison.Ordinal) ? hook["syscalls/sys_enter_".Length..]
            : hook.StartsWith("syscalls/sys_exit_", StringComparison.Ordinal) ? hook["syscalls/sys_exit_".Length..]
            : hook;
        foreach (var prefix in new[] { "__x64_sys_", "__arm64_sys_", "__ia32_sys_", "__se_sys_", "sys_", "security_" })
            if (h.StartsWith(prefix, StringComparison.Ordinal))
                return h[prefix.Length..];
        return h;
    }

    private static void Paint(StringBuilder b, CompactStyle style, string color, string text)
    {
        if (style.Color) b.Append(color).Append(text).Append(Reset);
        else b.Append(text);
    }

    /// <summary>Text from an event as it may be shown on a terminal: control characters, DEL, C1 controls and bidi
    /// overrides are escaped (\n, \u001b, ...) and the whole is quoted; with <paramref name="quoteSpaces"/> a value
    /// containing a space is quoted too (a path), so the columns after it stay readable.</summary>
    public static string Escape(string s, bool quoteSpaces = false)
    {
        bool needs = false;
        foreach (var c in s)
            if (Unsafe(c) || quoteSpaces && c == ' ') { needs = true; break; }
        if (!needs) return s;
        var b = new StringBuilder(s.Length + 8).Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '\n': b.Append("\\n"); break;
                case '\t': b.Append("\\t"); break;
                case '\r': b.Append("\\r"); break;
                case '"': b.Append("\\\""); break;
                case '\\': b.Append("\\\\"); break;
                default:
                    if (Unsafe(c)) b.Append($"\\u{(int)c:x4}");
                    else b.Append(c);
                    break;
            }
        }
        return b.Append('"').ToString();
    }

    private static bool Unsafe(char c) => c < 0x20 || c is >= '\u007f' and <= '\u009f' || c is >= '\u202a' and <= '\u202e' || c is >= '\u2066' and <= '\u2069';
}
