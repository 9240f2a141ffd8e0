namespace SecurityAgent.Export;

/// <summary>Names of Linux signals and capabilities as events render them.</summary>
public static class LinuxNames
{
    private static readonly string[] Signals =
    [
        "", "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE", "SIGKILL", "SIGUSR1",
        "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGSTKFLT", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP",
        "SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO", "SIGPWR", "SIGSYS",
    ];

    private static readonly string[] Caps =
    [
        "CAP_CHOWN", "DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
        "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
        "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
        "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND",
        "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
    ];

    /// <summary>Tetragon's SecureBitsType names, by bit of cred->securebits.</summary>
    public static readonly string[] SecureBits =
    [
        "SecBitNoRoot", "SecBitNoRootLocked", "SecBitNoSetUidFixup", "SecBitNoSetUidFixupLocked", "SecBitKeepCaps",
        "SecBitKeepCapsLocked", "SecBitNoCapAmbientRaise", "SecBitNoCapAmbientRaiseLocked",
    ];

    public static string Signal(int n) => n > 0 && n < Signals.Length ? Signals[n] : n >= 34 && n <= 64 ? $"SIGRT{n - 34}" : n.ToString();

    public static int? SignalNumber(string name)
    {
        var upper = name.ToUpperInvariant();
        if (!upper.StartsWith("SIG")) upper = "SIG" + upper;
        int i = Array.IndexOf(Signals, upper);
        return i > 0 ? i : int.TryParse(name, out var n) ? n : null;
    }

    /// <summary>Capabilities with a name (Tetragon's CapabilitiesType enum has exactly these).</summary>
    public static int CapabilityCount => Caps.Length;

    /// <summary>Capability name by number ("DAC_OVERRIDE" keeps Tetragon's spelling).</summary>
    public static string Capability(int n) => n < Caps.Length ? Caps[n] : $"CAP_{n}";

    public static int? CapabilityNumber(string name)
    {
        var upper = name.ToUpperInvariant();
        int i = Array.IndexOf(Caps, upper);
        if (i < 0) i = Array.IndexOf(Caps, upper.StartsWith("CAP_") ? upper[4..] : "CAP_" + upper);
        return i >= 0 ? i : null;
    }
}
