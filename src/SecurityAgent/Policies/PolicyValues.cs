using System.Net;

namespace SecurityAgent.Policies;

/// <summary>Strict parsing of the scalar values a policy carries (integers, ports, address families, CIDRs, rate
/// limits, pids). Each returns false or null on anything out of range instead of throwing: the caller reports it.</summary>
public static class PolicyValues
{
    /// <summary>YAML's core-schema integer forms: [-+]digits, 0x hex, 0o octal.</summary>
    public static bool LooksLikeInteger(string s)
    {
        var span = s.AsSpan();
        if (span.Length > 1 && (span[0] == '0') && (span[1] is 'x' or 'o'))
            return span.Length > 2 && Digits(span[2..], span[1] == 'x' ? 16 : 8);
        if (span.Length > 0 && span[0] is '-' or '+') span = span[1..];
        return span.Length > 0 && Digits(span, 10);
    }

    private static bool Digits(ReadOnlySpan<char> s, int radix)
    {
        foreach (var c in s)
            if (Digit(c) is not { } d || d >= radix) return false;
        return true;
    }

    private static int? Digit(char c) => c switch
    {
        >= '0' and <= '9' => c - '0',
        >= 'a' and <= 'f' => c - 'a' + 10,
        >= 'A' and <= 'F' => c - 'A' + 10,
        _ => null,
    };

    /// <summary>The value of a YAML core-schema integer (see <see cref="LooksLikeInteger"/>) within 64 bits.</summary>
    public static bool TryParseYamlInteger(string s, out long value)
    {
        value = 0;
        if (!LooksLikeInteger(s)) return false;
        if (s.Length > 1 && s[0] == '0' && s[1] is 'x' or 'o')
        {
            if (!TryParseInteger(s, out var u, out _) || u > long.MaxValue) return false;
            value = (long)u;
            return true;
        }
        return long.TryParse(s, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out value);
    }

    /// <summary>An integer as Tetragon reads matchArgs values (Go's base 0): an optional sign, then 0x/0o/0b with hex,
    /// octal or binary digits, a leading 0 for octal, else decimal. Negative values come back two's-complement with
    /// <paramref name="negative"/> set; magnitudes beyond 64 bits fail.</summary>
    public static bool TryParseInteger(string s, out ulong value, out bool negative)
    {
        value = 0;
        negative = false;
        var span = s.AsSpan().Trim();
        if (span.Length > 0 && span[0] is '-' or '+')
        {
            negative = span[0] == '-';
            span = span[1..];
        }
        int radix = 10;
        if (span.Length > 1 && span[0] == '0')
        {
            radix = span[1] switch { 'x' or 'X' => 16, 'o' or 'O' => 8, 'b' or 'B' => 2, _ => 0 };
            span = radix == 0 ? span[1..] : span[2..];
            if (radix == 0) radix = 8;
        }
        if (span.Length == 0) return false;
        ulong v = 0;
        foreach (var c in span)
        {
            if (Digit(c) is not { } d || d >= radix) return false;
            if (v > (ulong.MaxValue - (ulong)d) / (ulong)radix) return false;
            v = v * (ulong)radix + (ulong)d;
        }
        if (negative)
        {
            if (v > 1UL << 63) return false;
            value = unchecked(0UL - v);
            negative = v != 0;
            return true;
        }
        value = v;
        return true;
    }

    /// <summary>An integer within [min, max].</summary>
    public static bool TryParseInRange(string s, long min, long max, out long value)
    {
        value = 0;
        if (!TryParseInteger(s, out var v, out var negative)) return false;
        if (negative) value = (long)v;
        else if (v > long.MaxValue) return false;
        else value = (long)v;
        return value >= min && value <= max;
    }

    /// <summary>The canonical decimal text of an integer value ("-1", "63"), as value sets and plans show it.</summary>
    public static string Canonical(ulong value, bool negative) => negative ? ((long)value).ToString() : value.ToString();

    public static bool TryParsePort(string s, out ushort port)
    {
        port = 0;
        if (!TryParseInRange(s, 0, 65535, out var v)) return false;
        port = (ushort)v;
        return true;
    }

    private static readonly Dictionary<string, int> Families = new() { ["AF_UNIX"] = Events.Contract.AfUnix, ["AF_LOCAL"] = Events.Contract.AfUnix, ["AF_INET"] = Events.Contract.AfInet, ["AF_INET6"] = Events.Contract.AfInet6, ["AF_NETLINK"] = 16, ["AF_PACKET"] = 17 };

    /// <summary>An address family by name (AF_INET) or number (0..255).</summary>
    public static bool TryParseFamily(string s, out int family)
    {
        if (Families.TryGetValue(s, out family)) return true;
        if (!TryParseInRange(s, 0, 255, out var v)) return false;
        family = (int)v;
        return true;
    }

    private static readonly Dictionary<string, int> Protocols = new()
    {
        ["IPPROTO_IP"] = 0, ["IPPROTO_ICMP"] = 1, ["IPPROTO_TCP"] = 6, ["IPPROTO_UDP"] = 17, ["IPPROTO_IPV6"] = 41, ["IPPROTO_ICMPV6"] = 58,
        ["IPPROTO_SCTP"] = 132, ["IPPROTO_UDPLITE"] = 136, ["IPPROTO_RAW"] = 255, ["IPPROTO_MPTCP"] = 262,
    };

    /// <summary>An IP protocol by name (IPPROTO_TCP) or number.</summary>
    public static bool TryParseProtocol(string s, out int protocol)
    {
        if (Protocols.TryGetValue(s, out protocol)) return true;
        if (!TryParseInRange(s, 0, 65535, out var v)) return false;
        protocol = (int)v;
        return true;
    }

    /// <summary>The socket states Tetragon's State operator names (the kernel's TCP states).</summary>
    public static readonly IReadOnlyList<string> TcpStates =
    [
        "TCP_ESTABLISHED", "TCP_SYN_SENT", "TCP_SYN_RECV", "TCP_FIN_WAIT1", "TCP_FIN_WAIT2", "TCP_TIME_WAIT", "TCP_CLOSE", "TCP_CLOSE_WAIT",
        "TCP_LAST_ACK", "TCP_LISTEN", "TCP_CLOSING", "TCP_NEW_SYN_RECV", "TCP_BOUND_INACTIVE",
    ];

    /// <summary>InRange's "min:max" (integers, both included, min at most max).</summary>
    public static bool TryParseRange(string s, out long min, out long max)
    {
        var colon = s.IndexOf(':');
        max = 0;
        min = 0;
        return colon > 0 && TryParseInRange(s[..colon], long.MinValue, long.MaxValue, out min)
            && TryParseInRange(s[(colon + 1)..], long.MinValue, long.MaxValue, out max) && min <= max;
    }

    /// <summary>"10.0.0.0/8", "127.0.0.1" or IPv6, as a network in canonical form ("127.0.0.1/32"), or null. Host bits
    /// beyond the prefix, zone ids and IPv4 shorthands ("1", "10.1") are refused.</summary>
    public static string? CanonicalNetwork(string s)
    {
        var slash = s.IndexOf('/');
        var addr = slash < 0 ? s : s[..slash];
        bool v4 = addr.Count(c => c == '.') == 3 && !addr.Contains(':');
        bool v6 = addr.Contains(':') && !addr.Contains('%');
        if (!v4 && !v6) return null;
        if (slash < 0)
            return IPAddress.TryParse(s, out var ip) ? new IPNetwork(ip, v4 ? 32 : 128).ToString() : null;
        return IPNetwork.TryParse(s, out var net) ? net.ToString() : null;
    }

    /// <summary>Tetragon's rateLimit: a number of seconds, or of minutes (m) or hours (h), at most a day.</summary>
    public static bool TryParseRateLimit(string s, out ulong nanoseconds)
    {
        nanoseconds = 0;
        if (s.Length == 0) return false;
        ulong unit = s[^1] switch { 'm' => 60, 'h' => 3600, 's' => 1, _ => 0 };
        var digits = unit == 0 ? s : s[..^1];
        if (unit == 0) unit = 1;
        if (digits.Length == 0 || !digits.All(char.IsAsciiDigit) || !ulong.TryParse(digits, out var n) || n > 86_400 / unit) return false;
        nanoseconds = n * unit * 1_000_000_000UL;
        return true;
    }

    /// <summary>A pid: a non-negative 32-bit integer.</summary>
    public static bool TryParsePid(string s, out uint pid)
    {
        pid = 0;
        if (!TryParseInRange(s, 0, uint.MaxValue, out var v)) return false;
        pid = (uint)v;
        return true;
    }

    /// <summary>A value as quoted in a message: at most 40 characters, control characters escaped.</summary>
    public static string Shorten(string s)
    {
        var t = s.Length > 40 ? s[..40] + "..." : s;
        return t.Any(char.IsControl) ? string.Concat(t.Select(c => char.IsControl(c) ? $"\\x{(int)c:x2}" : c.ToString())) : t;
    }
}
