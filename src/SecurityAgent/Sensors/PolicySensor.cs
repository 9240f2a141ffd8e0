using System.Buffers.Binary;
using SecurityAgent.Bpf;
using SecurityAgent.Events;

namespace SecurityAgent.Sensors;

/// <summary>Kernel-side counters of one policy hook.</summary>
public sealed record HookStats(ulong Seen, ulong Matched, ulong Posted, ulong Enforced, ulong RateLimited)
{
    /// <summary>Calls the in-kernel selectors rejected: they never reached user space.</summary>
    public ulong Filtered => Seen - Matched;
}

/// <summary>The generic policy program (bpf/tracepoint.bpf.c) and its maps, loaded once and shared by every
/// policy: configuration goes into maps, one link per hook. It writes to the process sensor's ring buffer
/// and reads its pid → binary map.</summary>
public sealed class PolicySensor : IDisposable
{
    private readonly BpfObject _obj;
    private BpfObject? _sock, _lsm, _kprobe;
    private Microsoft.Win32.SafeHandles.SafeFileHandle? _cgroup;

    private PolicySensor(BpfObject obj) => _obj = obj;

    /// <summary>Connect hooks in use (sa_sock_slots entries); cgroup programs have no attach cookie.</summary>
    public const int SockSlots = 8;
    private const uint NoHook = 0xffffffff;

    /// <summary>Loads another hook family's object on first use, sharing every map with the tracepoint
    /// object (configuration, value sets, counters, ring buffer); fills its slot map with "no hook".</summary>
    private BpfObject Family(ref BpfObject? field, string embedded, string? slotMap, uint slots)
    {
        if (field is not null) return field;
        var obj = EmbeddedObjects.Open(embedded);
        try
        {
            var shared = _obj.MapNames.ToHashSet();
            foreach (var name in obj.MapNames.Where(n => shared.Contains(n) && !n.Contains('.')))
                obj.Map(name).ReuseFd(_obj.Map(name).Fd);
            obj.Load();
            if (slotMap is not null)
                for (uint i = 0; i < slots; i++)
                    obj.Map(slotMap).Update(BitConverter.GetBytes(i), BitConverter.GetBytes(NoHook));
            return field = obj;
        }
        catch
        {
            obj.Dispose();
            throw;
        }
    }

    private BpfObject Sock() => Family(ref _sock, EmbeddedObjects.Sock, "sa_sock_slots", SockSlots);

    /// <summary>LSM hooks the policy program implements, in the order of enum sa_lsm_hook (bpf/lsm.bpf.c).</summary>
    public static readonly string[] LsmHooks = ["file_open", "bprm_check_security", "socket_connect", "file_permission"];
    public const int LsmSlots = 4;

    public BpfLink AttachLsm(string hook, int slot, uint hookId)
    {
        int index = Array.IndexOf(LsmHooks, hook);
        var lsm = Family(ref _lsm, EmbeddedObjects.Lsm, "sa_lsm_slots", (uint)(LsmHooks.Length * LsmSlots));
        lsm.Map("sa_lsm_slots").Update(BitConverter.GetBytes((uint)(index * LsmSlots + slot)), BitConverter.GetBytes(hookId));
        return lsm.Program($"sa_lsm_{hook}_{slot}").Attach();
    }

    public void ReleaseLsmSlot(string hook, int slot) =>
        _lsm?.Map("sa_lsm_slots").Update(BitConverter.GetBytes((uint)(Array.IndexOf(LsmHooks, hook) * LsmSlots + slot)), BitConverter.GetBytes(NoHook));

    public BpfLink AttachKprobe(int slot, uint hookId, string function) =>
        Family(ref _kprobe, EmbeddedObjects.Kprobe, null, 0).Program("sa_policy_kprobe" + slot).AttachKprobe(function, cookie: hookId);

    /// <summary>Attaches connect4 and connect6 of a slot at the cgroup v2 root (every process is below it).</summary>
    public (BpfLink V4, BpfLink V6) AttachConnect(int slot, uint hookId, string cgroup2)
    {
        var sock = Sock();
        _cgroup ??= Interop.Libc.OpenDirectory(cgroup2);
        sock.Map("sa_sock_slots").Update(BitConverter.GetBytes((uint)slot), BitConverter.GetBytes(hookId));
        var v4 = sock.Program("sa_connect4_" + slot).AttachCgroup(_cgroup);
        try
        {
            return (v4, sock.Program("sa_connect6_" + slot).AttachCgroup(_cgroup));
        }
        catch
        {
            v4.Dispose();
            throw;
        }
    }

    public void ReleaseConnectSlot(int slot) =>
        _sock?.Map("sa_sock_slots").Update(BitConverter.GetBytes((uint)slot), BitConverter.GetBytes(NoHook));

    public static PolicySensor Load(ProcessSensor process, int agentTgid)
    {
        var obj = EmbeddedObjects.Open(EmbeddedObjects.Tracepoint);
        try
        {
            obj.Map("sa_events").ReuseFd(process.Events.Fd);
            obj.Map("sa_lost").ReuseFd(process.Lost.Fd);
            obj.Map("sa_exec_binary").ReuseFd(process.Binaries.Fd);
            obj.Map("sa_follow").ReuseFd(process.Follow.Fd);
            obj.Load();
            var settings = new byte[8];
            BinaryPrimitives.WriteUInt32LittleEndian(settings, (uint)agentTgid);
            obj.Map("sa_settings").Update(new byte[4], settings);
            return new PolicySensor(obj);
        }
        catch
        {
            obj.Dispose();
            throw;
        }
    }

    public BpfMap Map(string name) => _obj.Map(name);

    public void WriteHook(uint hookId, byte[] config) => _obj.Map("sa_hooks").Update(BitConverter.GetBytes(hookId), config);

    public void ClearHook(uint hookId) => WriteHook(hookId, new byte[PolicyWire.Hook.Length]);

    /// <summary>Identical copies of the policy program: one tracepoint takes each program once.</summary>
    public const int TracepointSlots = 8;

    public BpfLink AttachTracepoint(int slot, uint hookId, string category, string name) =>
        _obj.Program("sa_policy_tp" + slot).AttachTracepoint(category, name, cookie: hookId);

    /// <summary>Puts a process in the in-kernel deny set of one selector: its next matches are enforced there.</summary>
    public void Deny(uint hookId, int selector, int tgid, uint actions) =>
        _obj.Map("sa_deny").Update(DenyKey(hookId, selector, tgid), BitConverter.GetBytes(actions));

    public void Forgive(uint hookId, int selector, int tgid) => _obj.Map("sa_deny").Delete(DenyKey(hookId, selector, tgid));

    private static byte[] DenyKey(uint hookId, int selector, int tgid)
    {
        var k = new byte[PolicyWire.DenyKey.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(k.AsSpan(PolicyWire.DenyKey.HookId), hookId);
        BinaryPrimitives.WriteUInt32LittleEndian(k.AsSpan(PolicyWire.DenyKey.Selector), (uint)selector);
        BinaryPrimitives.WriteUInt32LittleEndian(k.AsSpan(PolicyWire.DenyKey.Tgid), (uint)tgid);
        return k;
    }

    public HookStats Stats(uint hookId)
    {
        var c = _obj.Map("sa_hook_stats").SumPerCpuCounters(BitConverter.GetBytes(hookId));
        return new HookStats(c[0], c[1], c[2], c[3], c[4]);
    }

    public void ResetStats(uint hookId)
    {
        var map = _obj.Map("sa_hook_stats");
        map.Update(BitConverter.GetBytes(hookId), new byte[((map.ValueSize + 7) / 8 * 8) * BpfMap.PossibleCpus]);
    }

    public void Dispose()
    {
        _sock?.Dispose();
        _lsm?.Dispose();
        _kprobe?.Dispose();
        _cgroup?.Dispose();
        _obj.Dispose();
    }
}
