using System.Runtime.InteropServices;

namespace SecurityAgent.Interop;

/// <summary>libbpf (Debian libbpf1) entry points. Every libbpf declaration of the agent lives here.</summary>
/// <remarks>libbpf 1.x semantics: int-returning calls return a negative errno; pointer-returning calls
/// return NULL and set errno. <see cref="LibbpfException.Check"/> is the one place that turns them into exceptions.</remarks>
internal static unsafe partial class Libbpf
{
    private const string Lib = "libbpf.so.1";

    [LibraryImport(Lib, EntryPoint = "bpf_object__open_mem", SetLastError = true)]
    internal static partial nint bpf_object__open_mem(byte* buf, nuint size, BpfObjectOpenOpts* opts);

    [LibraryImport(Lib, EntryPoint = "bpf_object__load")]
    internal static partial int bpf_object__load(nint obj);

    [LibraryImport(Lib, EntryPoint = "bpf_object__close")]
    internal static partial void bpf_object__close(nint obj);

    [LibraryImport(Lib, EntryPoint = "bpf_object__next_program")]
    internal static partial nint bpf_object__next_program(nint obj, nint prog);

    [LibraryImport(Lib, EntryPoint = "bpf_object__find_map_by_name", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial nint bpf_object__find_map_by_name(nint obj, string name);

    [LibraryImport(Lib, EntryPoint = "bpf_program__name")]
    internal static partial byte* bpf_program__name(nint prog);

    [LibraryImport(Lib, EntryPoint = "bpf_program__section_name")]
    internal static partial byte* bpf_program__section_name(nint prog);

    [LibraryImport(Lib, EntryPoint = "bpf_program__set_autoload")]
    internal static partial int bpf_program__set_autoload(nint prog, [MarshalAs(UnmanagedType.U1)] bool autoload);

    [LibraryImport(Lib, EntryPoint = "bpf_program__set_attach_target", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int bpf_program__set_attach_target(nint prog, int attachProgFd, string function);

    [LibraryImport(Lib, EntryPoint = "bpf_program__attach_trace_opts", SetLastError = true)]
    internal static partial nint bpf_program__attach_trace_opts(nint prog, BpfTraceOpts* opts);

    [LibraryImport(Lib, EntryPoint = "bpf_program__fd")]
    internal static partial int bpf_program__fd(nint prog);

    [LibraryImport(Lib, EntryPoint = "bpf_program__attach", SetLastError = true)]
    internal static partial nint bpf_program__attach(nint prog);

    [LibraryImport(Lib, EntryPoint = "bpf_program__attach_cgroup", SetLastError = true)]
    internal static partial nint bpf_program__attach_cgroup(nint prog, int cgroupFd);

    [LibraryImport(Lib, EntryPoint = "bpf_program__attach_tracepoint_opts", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial nint bpf_program__attach_tracepoint_opts(nint prog, string category, string name, BpfTracepointOpts* opts);

    [LibraryImport(Lib, EntryPoint = "bpf_program__attach_kprobe_opts", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial nint bpf_program__attach_kprobe_opts(nint prog, string function, BpfKprobeOpts* opts);

    [LibraryImport(Lib, EntryPoint = "bpf_program__attach_uprobe_opts", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial nint bpf_program__attach_uprobe_opts(nint prog, int pid, string binaryPath, nuint funcOffset, BpfUprobeOpts* opts);

    [LibraryImport(Lib, EntryPoint = "bpf_program__attach_usdt", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial nint bpf_program__attach_usdt(nint prog, int pid, string binaryPath, string provider, string name, BpfUsdtOpts* opts);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long bpf_syscall(long number, long cmd, void* attr, long size);

    private const long SYS_bpf = 321;
    private const long BPF_RAW_TRACEPOINT_OPEN = 17;

    /// <summary>BPF_RAW_TRACEPOINT_OPEN with a bpf_cookie (union bpf_attr.raw_tracepoint: name, prog_fd, cookie;
    /// Linux 6.10), which libbpf 1.1 cannot pass. Returns the link's fd.</summary>
    internal static int RawTracepointOpen(string name, int progFd, ulong cookie)
    {
        var utf8 = System.Text.Encoding.UTF8.GetBytes(name + "\0");
        ulong* attr = stackalloc ulong[3];
        fixed (byte* n = utf8)
        {
            attr[0] = (ulong)n;
            attr[1] = (uint)progFd;
            attr[2] = cookie;
            long fd = bpf_syscall(SYS_bpf, BPF_RAW_TRACEPOINT_OPEN, attr, 3 * sizeof(ulong));
            if (fd < 0)
                throw new LibbpfException($"bpf(BPF_RAW_TRACEPOINT_OPEN, {name})", Marshal.GetLastPInvokeError());
            return (int)fd;
        }
    }

    [LibraryImport(Lib, EntryPoint = "bpf_link__destroy")]
    internal static partial int bpf_link__destroy(nint link);

    [LibraryImport(Lib, EntryPoint = "bpf_object__next_map")]
    internal static partial nint bpf_object__next_map(nint obj, nint map);

    [LibraryImport(Lib, EntryPoint = "bpf_map__name")]
    internal static partial byte* bpf_map__name(nint map);

    [LibraryImport(Lib, EntryPoint = "bpf_map__fd")]
    internal static partial int bpf_map__fd(nint map);

    [LibraryImport(Lib, EntryPoint = "bpf_map__reuse_fd")]
    internal static partial int bpf_map__reuse_fd(nint map, int fd);

    [LibraryImport(Lib, EntryPoint = "bpf_map__set_autocreate")]
    internal static partial int bpf_map__set_autocreate(nint map, [MarshalAs(UnmanagedType.U1)] bool autocreate);

    [LibraryImport(Lib, EntryPoint = "bpf_map__set_max_entries")]
    internal static partial int bpf_map__set_max_entries(nint map, uint maxEntries);

    [LibraryImport(Lib, EntryPoint = "bpf_map__max_entries")]
    internal static partial uint bpf_map__max_entries(nint map);

    [LibraryImport(Lib, EntryPoint = "bpf_map__key_size")]
    internal static partial uint bpf_map__key_size(nint map);

    [LibraryImport(Lib, EntryPoint = "bpf_map__value_size")]
    internal static partial uint bpf_map__value_size(nint map);

    [LibraryImport(Lib, EntryPoint = "bpf_map__type")]
    internal static partial int bpf_map__type(nint map);

    [LibraryImport(Lib, EntryPoint = "bpf_map_update_elem")]
    internal static partial int bpf_map_update_elem(int fd, void* key, void* value, ulong flags);

    [LibraryImport(Lib, EntryPoint = "bpf_map_lookup_elem")]
    internal static partial int bpf_map_lookup_elem(int fd, void* key, void* value);

    [LibraryImport(Lib, EntryPoint = "bpf_map_delete_elem")]
    internal static partial int bpf_map_delete_elem(int fd, void* key);

    [LibraryImport(Lib, EntryPoint = "bpf_map_get_next_key")]
    internal static partial int bpf_map_get_next_key(int fd, void* key, void* nextKey);

    [LibraryImport(Lib, EntryPoint = "ring_buffer__new", SetLastError = true)]
    internal static partial nint ring_buffer__new(int mapFd, delegate* unmanaged[Cdecl]<nint, nint, nuint, int> sample, nint ctx, void* opts);

    [LibraryImport(Lib, EntryPoint = "ring_buffer__poll")]
    internal static partial int ring_buffer__poll(nint rb, int timeoutMs);

    /// <summary>Consumes every ring's available records without waiting: records submitted without a wake-up
    /// (BPF_RB_NO_WAKEUP) are only read this way, since ring_buffer__poll consumes only rings epoll reported.</summary>
    [LibraryImport(Lib, EntryPoint = "ring_buffer__consume")]
    internal static partial int ring_buffer__consume(nint rb);

    /// <summary>The epoll instance ring_buffer__poll waits in (its rings registered with their index as data).</summary>
    [LibraryImport(Lib, EntryPoint = "ring_buffer__epoll_fd")]
    internal static partial int ring_buffer__epoll_fd(nint rb);

    [LibraryImport(Lib, EntryPoint = "ring_buffer__free")]
    internal static partial void ring_buffer__free(nint rb);

    [LibraryImport(Lib, EntryPoint = "libbpf_set_print")]
    internal static partial nint libbpf_set_print(delegate* unmanaged[Cdecl]<int, byte*, nint, int> fn);

    [LibraryImport(Lib, EntryPoint = "libbpf_probe_bpf_map_type")]
    internal static partial int libbpf_probe_bpf_map_type(int mapType, void* opts);

    [LibraryImport(Lib, EntryPoint = "libbpf_num_possible_cpus")]
    internal static partial int libbpf_num_possible_cpus();

    /// <summary>struct bpf_object_open_opts (libbpf 1.1 layout; sz tells libbpf how much we know).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct BpfObjectOpenOpts
    {
        public nuint sz;
        public byte* object_name;
        public byte relaxed_maps;
        public byte* pin_root_path;
        public uint attach_prog_fd_unused;
        public byte* kconfig;
        public byte* btf_custom_path;
        public byte* kernel_log_buf;
        public nuint kernel_log_size;
        public uint kernel_log_level;
    }

    /// <summary>struct bpf_tracepoint_opts.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct BpfTracepointOpts
    {
        public nuint sz;
        public ulong bpf_cookie;
    }

    /// <summary>struct bpf_trace_opts (fentry, fexit, fmod_ret: the cookie, Linux 6.0).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct BpfTraceOpts
    {
        public nuint sz;
        public ulong cookie;
    }

    /// <summary>struct bpf_kprobe_opts (libbpf 1.1).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct BpfKprobeOpts
    {
        public nuint sz;
        public ulong bpf_cookie;
        public nuint offset;
        public byte retprobe;
        private fixed byte pad[7];
    }

    /// <summary>struct bpf_uprobe_opts (libbpf 1.1: func_name resolves an ELF symbol to its file offset).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct BpfUprobeOpts
    {
        public nuint sz;
        public nuint ref_ctr_offset;
        public ulong bpf_cookie;
        public byte retprobe;
        private fixed byte pad[7];
        public byte* func_name;
    }

    /// <summary>struct bpf_usdt_opts.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct BpfUsdtOpts
    {
        public nuint sz;
        public ulong usdt_cookie;
    }

    internal const int BPF_MAP_TYPE_RINGBUF = 27;
    internal const int BPF_MAP_TYPE_PERCPU_HASH = 5;
    internal const int BPF_MAP_TYPE_PERCPU_ARRAY = 6;
    internal const ulong BPF_ANY = 0;
    internal const ulong BPF_NOEXIST = 1;
}
