using System.Runtime.InteropServices;

namespace SecurityAgent.Interop;

/// <summary>A failed libbpf call: names the call, the errno and, for a load, the tail of the verifier log.</summary>
public sealed class LibbpfException : Exception
{
    public string Call { get; }
    public int Errno { get; }
    public string? VerifierLog { get; }

    public LibbpfException(string call, int errno, string? verifierLog = null)
        : base(Format(call, errno, verifierLog))
    {
        Call = call;
        Errno = errno;
        VerifierLog = verifierLog;
    }

    private static string Format(string call, int errno, string? log)
    {
        var msg = $"{call} failed: {Interop.Errno.Name(errno)} ({errno}): {Marshal.GetPInvokeErrorMessage(errno)}";
        return string.IsNullOrWhiteSpace(log) ? msg : msg + Environment.NewLine + "verifier log (tail):" + Environment.NewLine + log;
    }

    /// <summary>For int-returning libbpf calls: a negative return is -errno.</summary>
    internal static int Check(int rc, string call)
    {
        if (rc < 0)
            throw new LibbpfException(call, -rc);
        return rc;
    }

    /// <summary>For pointer-returning libbpf calls: NULL means failure, errno says why.</summary>
    internal static nint Check(nint ptr, string call, Func<string?>? log = null)
    {
        if (ptr == 0)
            throw new LibbpfException(call, Marshal.GetLastPInvokeError(), log?.Invoke());
        return ptr;
    }
}

internal static class Errno
{
    public const int EPERM = 1;
    public const int ENOENT = 2;
    public const int ESRCH = 3;
    public const int E2BIG = 7;
    public const int EACCES = 13;
    public const int EEXIST = 17;
    public const int EINVAL = 22;
    public const int ENOSPC = 28;
    public const int EOPNOTSUPP = 95;
    public const int EBUSY = 16;
    public const int ENOTSUPP = 524;

    public static string Name(int errno) => errno switch
    {
        EPERM => "EPERM", ENOENT => "ENOENT", ESRCH => "ESRCH", E2BIG => "E2BIG", EACCES => "EACCES",
        EEXIST => "EEXIST", EINVAL => "EINVAL", ENOSPC => "ENOSPC", EOPNOTSUPP => "EOPNOTSUPP",
        ENOTSUPP => "ENOTSUPP", 12 => "ENOMEM", EBUSY => "EBUSY", 19 => "ENODEV", 38 => "ENOSYS",
        _ => "errno " + errno,
    };
}
