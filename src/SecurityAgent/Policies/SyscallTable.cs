namespace SecurityAgent.Policies;

/// <summary>x86-64 syscall numbers by name (from the kernel's unistd_64.h, embedded at build time), for
/// `list:NAME` references of syscall lists.</summary>
public sealed class SyscallTable(IReadOnlyDictionary<string, ulong> numbers)
{
    public static SyscallTable X86_64 { get; } = Load("x86_64");

    /// <summary>The 32-bit ABI of x86-64 kernels (ia32 emulation): the numbers of __ia32_sys_* syscalls.</summary>
    public static SyscallTable I386 { get; } = Load("i386");

    /// <summary>The mark of a 32-bit syscall in a syscall64 value (Tetragon's; the kernel sets it for compat tasks).</summary>
    public const ulong Compat32 = 0x80000000;

    private static SyscallTable Load(string abi)
    {
        using var s = typeof(SyscallTable).Assembly.GetManifestResourceStream($"syscalls/{abi}.txt")
            ?? throw new InvalidOperationException($"syscalls/{abi}.txt is not embedded: run `make bpf`");
        var map = new Dictionary<string, ulong>();
        foreach (var line in new StreamReader(s).ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split(' ');
            if (parts.Length == 2 && ulong.TryParse(parts[1], out var n)) map[parts[0]] = n;
        }
        return new SyscallTable(map);
    }

    /// <summary>Every syscall of the architecture, by name (a generated_syscalls list).</summary>
    public IEnumerable<string> Names => numbers.Keys.Order(StringComparer.Ordinal);

    /// <summary>"sys_dup", "__x64_sys_dup" or "dup".</summary>
    public ulong? Number(string name) => numbers.TryGetValue(HookPlacement.SyscallName(name), out var n) ? n : null;
}
