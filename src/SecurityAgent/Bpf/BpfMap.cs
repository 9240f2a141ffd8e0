using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using SecurityAgent.Interop;

namespace SecurityAgent.Bpf;

/// <summary>A map of a <see cref="BpfObject"/>. Keys and values are unmanaged structs (or byte spans)
/// whose sizes must match the map's; per-CPU maps are read as one value per possible CPU.</summary>
public sealed unsafe class BpfMap
{
    private readonly BpfObject _owner;
    private readonly nint _map;
    public string Name { get; }

    internal BpfMap(BpfObject owner, nint map, string name)
    {
        _owner = owner;
        _map = map;
        Name = name;
    }

    public int Fd => Libbpf.bpf_map__fd(_map);
    public int KeySize => (int)Libbpf.bpf_map__key_size(_map);
    public int ValueSize => (int)Libbpf.bpf_map__value_size(_map);
    public uint MaxEntries => Libbpf.bpf_map__max_entries(_map);
    public bool IsPerCpu => Libbpf.bpf_map__type(_map) is Libbpf.BPF_MAP_TYPE_PERCPU_ARRAY or Libbpf.BPF_MAP_TYPE_PERCPU_HASH;

    public static int PossibleCpus { get; } = Math.Max(1, Libbpf.libbpf_num_possible_cpus());

    /// <summary>Before load: size the map (e.g. from options).</summary>
    public void SetMaxEntries(uint n) => LibbpfException.Check(Libbpf.bpf_map__set_max_entries(_map, n), $"bpf_map__set_max_entries({Name})");

    /// <summary>Before load: leave the map uncreated (an object of maps only, creating some of them).</summary>
    public void SkipCreation() => LibbpfException.Check(Libbpf.bpf_map__set_autocreate(_map, false), $"bpf_map__set_autocreate({Name})");

    /// <summary>Before load: share an existing map (same definition) instead of creating a new one.</summary>
    public void ReuseFd(int fd) => LibbpfException.Check(Libbpf.bpf_map__reuse_fd(_map, fd), $"bpf_map__reuse_fd({Name})");

    public void Update<TKey, TValue>(in TKey key, in TValue value, ulong flags = Libbpf.BPF_ANY)
        where TKey : unmanaged where TValue : unmanaged
    {
        CheckSizes(sizeof(TKey), sizeof(TValue));
        fixed (TKey* k = &key)
        fixed (TValue* v = &value)
            LibbpfException.Check(Libbpf.bpf_map_update_elem(Fd, k, v, flags), $"bpf_map_update_elem({Name})");
        GC.KeepAlive(_owner);
    }

    public void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags = Libbpf.BPF_ANY)
    {
        CheckSizes(key.Length, value.Length);
        fixed (byte* k = key)
        fixed (byte* v = value)
            LibbpfException.Check(Libbpf.bpf_map_update_elem(Fd, k, v, flags), $"bpf_map_update_elem({Name})");
        GC.KeepAlive(_owner);
    }

    /// <summary>Adds the entry unless the key is there (BPF_NOEXIST); false when it was.</summary>
    public bool TryAdd(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
        CheckSizes(key.Length, value.Length);
        int rc;
        fixed (byte* k = key)
        fixed (byte* v = value)
            rc = Libbpf.bpf_map_update_elem(Fd, k, v, Libbpf.BPF_NOEXIST);
        GC.KeepAlive(_owner);
        if (rc == -Errno.EEXIST) return false;
        LibbpfException.Check(rc, $"bpf_map_update_elem({Name})");
        return true;
    }

    public bool TryLookup<TKey, TValue>(in TKey key, out TValue value) where TKey : unmanaged where TValue : unmanaged
    {
        CheckSizes(sizeof(TKey), sizeof(TValue));
        fixed (TKey* k = &key)
        fixed (TValue* v = &value)
            return Found(Libbpf.bpf_map_lookup_elem(Fd, k, v), "bpf_map_lookup_elem");
    }

    /// <summary>Sums a per-CPU u64 counter slot over all CPUs.</summary>
    public ulong SumPerCpu(uint key)
    {
        Span<ulong> values = stackalloc ulong[PossibleCpus];
        fixed (ulong* v = values)
            if (!Found(Libbpf.bpf_map_lookup_elem(Fd, &key, v), "bpf_map_lookup_elem"))
                return 0;
        ulong sum = 0;
        foreach (var x in values) sum += x;
        return sum;
    }

    /// <summary>Reads a per-CPU value made of u64 counters, summed field by field over all CPUs.</summary>
    public ulong[] SumPerCpuCounters(ReadOnlySpan<byte> key)
    {
        int words = ValueSize / 8;
        int stride = (ValueSize + 7) / 8;
        var raw = new ulong[stride * PossibleCpus];
        var sum = new ulong[words];
        fixed (byte* k = key)
        fixed (ulong* v = raw)
            if (!Found(Libbpf.bpf_map_lookup_elem(Fd, k, v), "bpf_map_lookup_elem"))
                return sum;
        for (int cpu = 0; cpu < PossibleCpus; cpu++)
            for (int w = 0; w < words; w++)
                sum[w] += raw[cpu * stride + w];
        return sum;
    }

    public bool Delete<TKey>(in TKey key) where TKey : unmanaged
    {
        fixed (TKey* k = &key)
            return Found(Libbpf.bpf_map_delete_elem(Fd, k), "bpf_map_delete_elem");
    }

    public bool Delete(ReadOnlySpan<byte> key)
    {
        fixed (byte* k = key)
            return Found(Libbpf.bpf_map_delete_elem(Fd, k), "bpf_map_delete_elem");
    }

    /// <summary>All keys, as byte arrays (a snapshot; concurrent kernel updates may add or drop some).</summary>
    public List<byte[]> Keys()
    {
        var keys = new List<byte[]>();
        var cur = new byte[KeySize];
        var next = new byte[KeySize];
        bool first = true;
        fixed (byte* c = cur)
        fixed (byte* n = next)
        {
            while (true)
            {
                int rc = Libbpf.bpf_map_get_next_key(Fd, first ? null : c, n);
                if (rc == -Errno.ENOENT) break;
                LibbpfException.Check(rc, $"bpf_map_get_next_key({Name})");
                keys.Add(next.ToArray());
                next.CopyTo(cur, 0);
                first = false;
            }
        }
        GC.KeepAlive(_owner);
        return keys;
    }

    private bool Found(int rc, string call)
    {
        GC.KeepAlive(_owner);
        if (rc == -Errno.ENOENT) return false;
        LibbpfException.Check(rc, $"{call}({Name})");
        return true;
    }

    private void CheckSizes(int key, int value)
    {
        int expected = IsPerCpu ? ((ValueSize + 7) / 8 * 8) * PossibleCpus : ValueSize;
        if (key != KeySize || (value != ValueSize && value != expected))
            throw new ArgumentException($"map {Name}: key/value of {key}/{value} bytes, map has {KeySize}/{ValueSize}");
    }
}
