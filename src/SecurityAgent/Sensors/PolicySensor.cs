using SecurityAgent.Bpf;
using SecurityAgent.Events;
using SecurityAgent.Kernel;

namespace SecurityAgent.Sensors;

/// <summary>Kernel-side counters of one policy hook. Seen counts the calls of its attach point since the hook
/// was added (the kernel counts per attach point, not per hook: its cost must not grow with the hooks).</summary>
public sealed record HookStats(ulong Seen, ulong Matched, ulong Posted, ulong Enforced, ulong RateLimited)
{
    /// <summary>Calls the in-kernel selectors rejected: they never reached user space.</summary>
    public ulong Filtered => Seen > Matched ? Seen - Matched : 0;
}

/// <summary>The live policy programs: tracepoint.bpf.o's enter and exit-check programs, each in an object of its own
/// loaded beside the other, and, on first use, the syscall return program and the other hook families' objects. All
/// of them are loaded on the policy maps (<see cref="CreateMaps"/>: the policy engine's, and the process sensor's shared
/// through them), which this owns. One program
/// attachment per attach point serves every policy hook there; what they do is configuration in the maps (written by
/// the PolicyEngine).</summary>
public sealed class PolicySensor : IDisposable
{
    private readonly BpfObject _maps;
    private readonly BpfObject _core, _exit;
    private BpfObject? _tpReturn, _ioUring, _kprobe, _kover, _ksys, _sock, _uprobe, _usdtSet, _rawtp, _loader, _enforcer;
    private readonly Dictionary<string, BpfObject> _lsm = new(), _fmodRet = new(), _fexit = new();
    private Microsoft.Win32.SafeHandles.SafeFileHandle? _cgroup;

    /// <summary>The exit-only program's object (<see cref="ObjectSpecs.PolicyTracepointExitOnly"/>), loaded beside the others
    /// and waited for only by a policy that has a point matched at the exit alone: null when this kernel refused it (or
    /// --debug-no-exit-only), with the reason.</summary>
    private readonly Task<(BpfObject? Object, string? Error)> _exitOnly;

    private PolicySensor(BpfObject maps, BpfObject core, BpfObject exit, BpfObject? ioUring, Task<(BpfObject?, string?)> exitOnly) =>
        (_maps, _core, _exit, _ioUring, _exitOnly) = (maps, core, exit, ioUring, exitOnly);

    /// <summary>Whether opens whose hooks only post can be matched at their exit alone (waits for that program's load).
    /// False: such points get the enter and exit programs, as points with a hook that acts before the call.</summary>
    public bool ExitOnlyLoaded => _exitOnly.GetAwaiter().GetResult().Object is not null;

    /// <summary>Why opens are not matched at the exit alone (null: they are, or the load is still under way).</summary>
    public string? ExitOnlyError => _exitOnly.IsCompleted ? _exitOnly.Result.Error : null;

    /// <summary>The exit-only program loaded (sa_policy_xcast or sa_policy_xonly); null while loading or where none is.</summary>
    public string? ExitOnlyProgram => _exitOnly.IsCompleted ? _exitOnly.Result.Object?.Spec.Programs?[0] : null;

    /// <summary>Whether the exit-only program's load is done (it may have failed: <see cref="ExitOnlyError"/>).</summary>
    public bool ExitOnlySettled => _exitOnly.IsCompleted;

    /// <summary>Waits for the exit-only program's load (never throws: a refusal is <see cref="ExitOnlyError"/>).</summary>
    public void AwaitExitOnly() => _exitOnly.GetAwaiter().GetResult();

    private static Task<(BpfObject?, string?)> LoadExitOnly(BpfObject maps, bool exitOnly) => !exitOnly
        ? Task.FromResult<(BpfObject?, string?)>((null, "--debug-no-exit-only"))
        : ParallelLoad.Start<(BpfObject?, string?)>(() =>
        {
            // Typed loads first; a kernel before 6.2 refuses the call at once (its BTF has no bpf_rdonly_cast: expected,
            // not logged), and then the program that reads through helper calls is loaded.
            try
            {
                using var expected = Interop.LibbpfLog.BeginCapture(quiet: true);
                return (BpfObject.Load(ObjectSpecs.PolicyTracepointExitOnlyTyped, maps), null);
            }
            catch (Interop.LibbpfException) { }
            try { return (BpfObject.Load(ObjectSpecs.PolicyTracepointExitOnly, maps), null); }
            catch (Interop.LibbpfException e) { return (null, e.Message); }
        });

    /// <summary>The policy maps (<see cref="ObjectSpecs.PolicyMaps"/>) on the process sensor's <paramref name="processMaps"/>:
    /// created apart from the process sensor's, so that "ready" does not wait for them.</summary>
    public static BpfObject CreateMaps(BpfObject processMaps) => BpfObject.Load(ObjectSpecs.PolicyMaps, processMaps);

    /// <summary>Loads the enter and the exit-check programs on <paramref name="maps"/> (<see cref="CreateMaps"/>: the sensor
    /// owns them from here on, and frees them if the load fails), and the
    /// io_uring program where the kernel has its tracepoint (so the first openat policy only attaches it), each on a thread
    /// of its own: the verifier runs in the loading thread, so the three are checked side by side (the io_uring object,
    /// loaded after the enter program, was ~0.2 s of CPU on the path to "ready" with policies at start: measured). If the
    /// io_uring object does not load here, the first policy that needs it loads it again and fails with the reason.</summary>
    public static PolicySensor Load(BpfObject maps, bool exitOnly = true)
    {
        try
        {
            return LoadOn(maps, exitOnly);
        }
        catch
        {
            maps.Dispose(); // after the loads beside the failed one, which read the maps
            throw;
        }
    }

    private static PolicySensor LoadOn(BpfObject maps, bool exitOnly)
    {
        var exit = ParallelLoad.Start(() => BpfObject.Load(ObjectSpecs.PolicyTracepointExit, maps));
        var xonly = LoadExitOnly(maps, exitOnly);
        var ioUring = Policies.IoUringOps.SubmitTracepointHere is null ? Task.FromResult<BpfObject?>(null)
            : ParallelLoad.Start<BpfObject?>(() =>
            {
                try { return BpfObject.Load(ObjectSpecs.PolicyIoUring, maps); }
                catch (Interop.LibbpfException) { return null; }
            });
        BpfObject enter;
        try
        {
            enter = BpfObject.Load(ObjectSpecs.PolicyTracepoint, maps);
        }
        catch
        {
            ParallelLoad.DisposeWhenDone(exit);
            ParallelLoad.DisposeWhenDone(ioUring);
            ParallelLoad.DisposeWhenDone(xonly.ContinueWith(t => t.Result.Item1, TaskScheduler.Default));
            throw;
        }
        BpfObject exitObject;
        try
        {
            exitObject = exit.GetAwaiter().GetResult();
        }
        catch
        {
            enter.Dispose();
            ParallelLoad.DisposeWhenDone(ioUring);
            ParallelLoad.DisposeWhenDone(xonly.ContinueWith(t => t.Result.Item1, TaskScheduler.Default));
            throw;
        }
        return new(maps, enter, exitObject, ioUring.GetAwaiter().GetResult(), xonly);
    }

    public BpfMap Map(string name) => _maps.Map(name);

    /// <summary>The names of the policy objects loaded so far (<see cref="BpfObjectSpec.Name"/>): what start-up and
    /// the policies so far made the verifier check.</summary>
    public IReadOnlyList<string> LoadedObjects
    {
        get
        {
            BpfObject?[] all = [_core, _exit, _exitOnly is { IsCompletedSuccessfully: true } x ? x.Result.Object : null, _tpReturn, _ioUring, _kprobe, _kover, _ksys, _sock, _uprobe, _usdtSet, _rawtp, _loader, _enforcer,
                .. _lsm.Values, .. _fmodRet.Values, .. _fexit.Values];
            return all.OfType<BpfObject>().Select(o => o.Name).ToList();
        }
    }

    /// <summary>LSM hooks with a program (bpf/lsm.bpf.c), from their fixed attach points.</summary>
    public static readonly IReadOnlyList<string> LsmHooks = Enum.GetNames<PolicyWire.FixedPoint>()
        .Where(n => n.StartsWith("Lsm")).Select(n => Snake(n[3..])).ToList();

    /// <summary>The attach point id of a mechanism whose program serves a single point (LSM hooks, the cgroup
    /// connect pair); null for those that take theirs from the link's bpf_cookie.</summary>
    public static uint? FixedPoint(Mechanism mechanism, string target) => mechanism switch
    {
        Mechanism.Lsm => (uint)Enum.Parse<PolicyWire.FixedPoint>("Lsm" + string.Concat(target.Split('_').Select(w => char.ToUpperInvariant(w[0]) + w[1..]))),
        Mechanism.CgroupSockAddr => (uint)PolicyWire.FixedPoint.Connect,
        _ => null,
    };

    /// <summary>Attaches the program of an attach point: a tracepoint ("category/name"), raw tracepoint, kprobe'd
    /// function, uprobe or USDT site (<see cref="Policies.UserProbeSite.Target"/>) with the point's id as cookie,
    /// an LSM hook, or connect4 and connect6 at the cgroup v2 root. <paramref name="exitOnly"/>: an open whose hooks
    /// match at its exit alone: only the exit's program, no enter.</summary>
    public IReadOnlyList<BpfLink> Attach(Mechanism mechanism, string target, uint ap, bool exitOnly = false)
    {
        switch (mechanism)
        {
            case Mechanism.Tracepoint when exitOnly && Policies.PathArguments.ExitTracepoint(target) is { } exitOnlyAt:
                var xonly = _exitOnly.GetAwaiter().GetResult().Object ?? throw new InvalidOperationException("the exit-only program is not loaded");
                var only = AttachTracepoint(xonly, xonly.Spec.Programs![0], exitOnlyAt, ap);
                try
                {
                    AttachIoUring(target, ap, only);
                }
                catch
                {
                    only.Dispose();
                    throw;
                }
                return [only];
            case Mechanism.Tracepoint:
                var enter = AttachTracepoint(_core, BpfNames.Programs.PolicyTp, target, ap);
                if (Policies.PathArguments.ExitTracepoint(target) is not { } exit)
                {
                    try
                    {
                        AttachIoUring(target, ap, enter);
                    }
                    catch
                    {
                        enter.Dispose();
                        throw;
                    }
                    return [enter];
                }
                var links = new List<BpfLink> { enter };
                try
                {
                    // Opens and execs look the object up again at exit (armed per call by the enter program); an exec's
                    // new program at sched_process_exec, which every successful exec passes (its sys_exit then only
                    // drops a failed call's state).
                    links.Add(AttachTracepoint(_exit, BpfNames.Programs.PolicyExitTp, exit, ap));
                    if (Policies.PathArguments.Exit(target) == PolicyWire.PointFlags.Exe)
                        links.Add(AttachTracepoint(_exit, BpfNames.Programs.PolicyExitTp, Policies.PathArguments.ExecTracepoint, ap | ExitAtExec));
                    AttachIoUring(target, ap, enter);
                    return links;
                }
                catch
                {
                    foreach (var l in links)
                        l.Dispose();
                    throw;
                }
            case Mechanism.Kprobe:
                var kp = Policies.KprobeTarget.Parse(target);
                if (kp.Kind == Policies.KprobeKind.Plain)
                    return [Family(ref _kprobe, ObjectSpecs.PolicyKprobe).Program(BpfNames.Programs.PolicyKprobe).AttachKprobe(kp.Function, cookie: ap)];
                var prog = kp.Kind == Policies.KprobeKind.SyscallOverride
                    ? Family(ref _ksys, ObjectSpecs.PolicySyscallOverride).Program(BpfNames.Programs.PolicyKsysOverride)
                    : Family(ref _kover, ObjectSpecs.PolicyKprobeOverride).Program(BpfNames.Programs.PolicyKprobeOverride);
                try
                {
                    return [prog.AttachKprobe(kp.Function, cookie: ap)];
                }
                catch (Interop.LibbpfException e) when (e.Errno == Interop.Errno.EINVAL)
                {
                    throw new InvalidOperationException($"Override on '{kp.Function}': the kernel refused bpf_override_return there "
                        + "(only functions on its error-injection list, /sys/kernel/debug/error_injection/list, can be overridden)", e);
                }
            case Mechanism.RawTracepoint:
                return [Family(ref _rawtp, ObjectSpecs.PolicyRawTp).Program(BpfNames.Programs.PolicyRawTp).AttachRawTracepoint(target, cookie: ap)];
            case Mechanism.Uprobe:
                var site = Policies.UserProbeSite.Parse(target);
                if (site.Writes) // usdt Set: the one object whose program may write user memory, loaded only for it
                    return [Family(ref _usdtSet, ObjectSpecs.PolicyUsdtSet).Program(BpfNames.Programs.PolicyUsdtSet).AttachUsdt(site.Binary, site.Provider!, site.Probe!, cookie: ap)];
                var user = Family(ref _uprobe, ObjectSpecs.PolicyUprobe);
                return [site.IsUsdt
                    ? user.Program(BpfNames.Programs.PolicyUsdt).AttachUsdt(site.Binary, site.Provider!, site.Probe!, cookie: ap)
                    : user.Program(BpfNames.Programs.PolicyUprobe).AttachUprobe(site.Binary, site.Symbol, site.Offset, cookie: ap, refCtrOffset: site.RefCtrOffset)];
            case Mechanism.Lsm:
                // One object per hook with only its program loaded: the verifier checks only what is used.
                var program = "sa_lsm_" + target;
                if (!_lsm.TryGetValue(target, out var lsm))
                    _lsm[target] = lsm = BpfObject.Load(ObjectSpecs.PolicyLsm with { Programs = [program] }, _maps);
                return [lsm.Program(program).Attach()];
            case Mechanism.Fentry:
                // fmod_ret (Override on a security_ function): an object per function, verified for it.
                if (!_fmodRet.TryGetValue(target, out var fmod))
                    _fmodRet[target] = fmod = BpfObject.Load(ObjectSpecs.PolicyFmodRet(target), _maps);
                return [fmod.Program(BpfNames.Programs.PolicyFmodRet).AttachTrace(cookie: ap)];
            case Mechanism.CgroupSockAddr:
                var sock = Sock();
                _cgroup ??= Interop.Libc.OpenDirectory(target);
                var v4 = sock.Program(BpfNames.Programs.Connect4).AttachCgroup(_cgroup);
                try
                {
                    return [v4, sock.Program(BpfNames.Programs.Connect6).AttachCgroup(_cgroup)];
                }
                catch
                {
                    v4.Dispose();
                    throw;
                }
            default:
                throw new NotSupportedException($"policy hooks do not run on {KernelFeatures.MechanismName(mechanism)}");
        }
    }

    /// <summary>The io_uring operation of each attach point whose hooks see it (IORING_OP_OPENAT for sys_enter_openat...):
    /// the operation's entry in sa_uring_ops, and the point's enter link that stands for it (its hooks are detached with it).</summary>
    private readonly Dictionary<byte, (uint Ap, BpfLink Enter)> _uringOps = new();
    private BpfLink? _uringLink, _uringCompleteLink, _uringWorkerLink;

    /// <summary>io_uring requests that stand for the syscall at <paramref name="target"/> run its hooks (bpf/iouring.bpf.c):
    /// its operation's entry, and the program at io_uring_submit_req while any operation has one. Operations whose point
    /// was detached since (its enter link closed: the point id may be another's now) are dropped first.</summary>
    private void AttachIoUring(string target, uint ap, BpfLink enter)
    {
        foreach (var (opcode, _) in _uringOps.Where(o => o.Value.Enter.IsClosed || o.Value.Ap == ap).ToList())
            DropIoUringOp(opcode);
        if (Policies.IoUringOps.SubmitTracepointHere is not { } tracepoint || Policies.IoUringOps.Of(target) is not { } op)
        {
            DetachIoUringIfIdle();
            return;
        }
        var o = Family(ref _ioUring, ObjectSpecs.PolicyIoUring);
        o.Map(BpfNames.Maps.UringOps).Update(BitConverter.GetBytes((uint)op.Opcode), BitConverter.GetBytes(Policies.IoUringOps.Entry(op, ap)));
        _uringOps[op.Opcode] = (ap, enter);
        _uringLink ??= AttachTracepoint(o, BpfNames.Programs.UringSubmit, tracepoint, 0);
        // Opens are looked up again on the object opened, at their completion.
        if (op.ReChecked)
            _uringCompleteLink ??= AttachTracepoint(o, BpfNames.Programs.UringComplete, Policies.IoUringOps.CompleteTracepoint, 0);
        // The other operations are run by io-wq workers, and matched again after the call by fanotify, which names the
        // worker: its process is kept from its creation, for when the worker is gone before the agent reads the change.
        else
            _uringWorkerLink ??= AttachTracepoint(o, BpfNames.Programs.UringWorker, Policies.IoUringOps.WorkerTracepoint, 0);
    }

    /// <summary>The io_uring operation of a tracepoint point again under <paramref name="stands"/> (a mode change undone).</summary>
    public void ReattachIoUring(string target, uint ap, BpfLink stands) => AttachIoUring(target, ap, stands);

    private void DropIoUringOp(byte opcode)
    {
        _ioUring!.Map(BpfNames.Maps.UringOps).Update(BitConverter.GetBytes((uint)opcode), BitConverter.GetBytes(0UL));
        _uringOps.Remove(opcode);
    }

    private void DetachIoUringIfIdle()
    {
        if (_uringOps.Count == 0 && _uringLink is not null)
        {
            _uringLink.Dispose();
            _uringLink = null;
        }
        if (!_uringOps.Keys.Any(Policies.IoUringOps.IsReChecked) && _uringCompleteLink is not null)
        {
            _uringCompleteLink.Dispose();
            _uringCompleteLink = null;
        }
        if (_uringOps.Keys.All(Policies.IoUringOps.IsReChecked) && _uringWorkerLink is not null)
        {
            _uringWorkerLink.Dispose();
            _uringWorkerLink = null;
        }
    }

    /// <summary>A tracepoint attach point's hooks were detached: its io_uring operation no longer runs them, and without
    /// any such operation left nothing stays attached to io_uring.</summary>
    public void DetachIoUring(uint ap)
    {
        foreach (var (opcode, _) in _uringOps.Where(o => o.Value.Ap == ap).ToList())
            DropIoUringOp(opcode);
        DetachIoUringIfIdle();
    }

    /// <summary>Attaches the return probes' program, with the entry point's id as bpf_cookie: to the exit tracepoint of a
    /// syscall entry point ("syscalls/sys_enter_NAME" → "syscalls/sys_exit_NAME"), or as a kretprobe on a kprobe'd
    /// kernel function, or as an fexit program on a security_ function its fmod_ret program overrides.</summary>
    public BpfLink AttachReturn(Mechanism mechanism, string target, uint ap)
    {
        switch (mechanism)
        {
            case Mechanism.Lsm:
                // imaHash: the sleepable program that hashes the file, attached after the hook's (bpf/lsm.bpf.c).
                var ima = "sa_lsm_ima_" + target;
                if (!_lsm.TryGetValue(ima, out var imaObject))
                    _lsm[ima] = imaObject = BpfObject.Load(ObjectSpecs.PolicyLsm with { Programs = [ima] }, _maps);
                return imaObject.Program(ima).Attach();
            case Mechanism.Kprobe:
                return Family(ref _kprobe, ObjectSpecs.PolicyKprobe).Program(BpfNames.Programs.PolicyKretprobe).AttachKprobe(target, cookie: ap, retprobe: true);
            case Mechanism.Fentry:
                if (!_fexit.TryGetValue(target, out var fexit))
                    _fexit[target] = fexit = BpfObject.Load(ObjectSpecs.PolicyFexit(target), _maps);
                return fexit.Program(BpfNames.Programs.PolicyFexit).AttachTrace(cookie: ap);
            default:
                return AttachTracepoint(Family(ref _tpReturn, ObjectSpecs.PolicyTracepointReturn), BpfNames.Programs.PolicyRetTp, target.Replace("/sys_enter_", "/sys_exit_", StringComparison.Ordinal), ap);
        }
    }

    /// <summary>spec.loader: which processes the loader sensor reports (all, or those of the given pod scopes), and its
    /// attachments at sys_exit_mmap and sched_process_exec, made on first use.</summary>
    public IReadOnlyList<BpfLink> AttachLoader() => AttachTracepoints(Family(ref _loader, ObjectSpecs.Loader),
        (BpfNames.Programs.LoaderMmap, "syscalls", "sys_exit_mmap"),
        (BpfNames.Programs.LoaderExec, "sched", "sched_process_exec")); // the binary and its interpreter, mapped by exec itself (never through mmap)

    public void ConfigureLoader(int unscoped, IReadOnlyList<uint> scopeIds)
    {
        var v = new byte[Wire.LoaderConfig.Length];
        BitConverter.TryWriteBytes(v.AsSpan(Wire.LoaderConfig.Unscoped), (uint)unscoped);
        BitConverter.TryWriteBytes(v.AsSpan(Wire.LoaderConfig.Nscopes), (uint)scopeIds.Count);
        for (int i = 0; i < scopeIds.Count; i++)
            BitConverter.TryWriteBytes(v.AsSpan(Wire.LoaderConfig.ScopeIds + 4 * i), scopeIds[i]);
        Family(ref _loader, ObjectSpecs.Loader).Map(BpfNames.Maps.LoaderConfig).Update(BitConverter.GetBytes(0u), v);
    }

    /// <summary>spec.enforcers: the enforcer program at raw_syscalls/sys_enter and the cleanup of a thread's notification
    /// when it exits, attached with the first policy that notifies for later calls.</summary>
    public IReadOnlyList<BpfLink> AttachEnforcer() => AttachTracepoints(Family(ref _enforcer, ObjectSpecs.Enforcer),
        (BpfNames.Programs.Enforcer, "raw_syscalls", "sys_enter"),
        (BpfNames.Programs.EnforcerExit, "sched", "sched_process_exit"));

    /// <summary>Programs of one object attached together: all of them, or none (the links made are closed on failure).</summary>
    private static List<BpfLink> AttachTracepoints(BpfObject o, params (string Program, string Category, string Name)[] points)
    {
        var links = new List<BpfLink>(points.Length);
        try
        {
            foreach (var (program, category, name) in points)
                links.Add(o.Program(program).AttachTracepoint(category, name));
            return links;
        }
        catch
        {
            foreach (var l in links)
                l.Dispose();
            throw;
        }
    }

    /// <summary>How many loaded policies enforce a syscall (its sa_enf_nrs slot: an ia32 one at 1024 + nr).</summary>
    public void SetEnforcedCount(uint slot, uint policies) =>
        Family(ref _enforcer, ObjectSpecs.Enforcer).Map(BpfNames.Maps.EnfNrs).Update(BitConverter.GetBytes(slot), BitConverter.GetBytes(policies));

    /// <summary>Adds or removes a syscall (| 0x80000000 for ia32) among a policy's enforced calls.</summary>
    public void SetEnforcedCall(uint policyId, uint nr, bool enforced)
    {
        var key = new byte[PolicyWire.EnfCallKey.Length];
        BitConverter.TryWriteBytes(key.AsSpan(PolicyWire.EnfCallKey.PolicyId), policyId);
        BitConverter.TryWriteBytes(key.AsSpan(PolicyWire.EnfCallKey.Nr), nr);
        var map = Family(ref _enforcer, ObjectSpecs.Enforcer).Map(BpfNames.Maps.EnfCalls);
        if (enforced)
            map.Update(key, [1]);
        else
            map.Delete(key);
    }

    /// <summary>Drops every pending notification (after the last notifying policy is unloaded).</summary>
    public void ClearEnforcerNotifications()
    {
        var map = _maps.Map(BpfNames.Maps.EnfNotify);
        foreach (var key in map.Keys())
            map.Delete(key);
    }

    /// <summary>TrackSock's socks the LRU map forgot at its capacity: the entries added less those removed and those there
    /// (read on demand: one key walk of sa_socktrack).</summary>
    public ulong SocktrackEvictions()
    {
        var stats = _maps.Map(BpfNames.Maps.SocktrackStats);
        ulong added = stats.SumPerCpu((uint)PolicyWire.SocktrackStat.Added), removed = stats.SumPerCpu((uint)PolicyWire.SocktrackStat.Removed);
        ulong live = (ulong)_maps.Map(BpfNames.Maps.Socktrack).Keys().Count;
        return added > removed + live ? added - removed - live : 0;
    }

    /// <summary>The exit program's cookie bit for its link at sched_process_exec (SA_EXIT_AT_EXEC in tracepoint.bpf.c).</summary>
    private const ulong ExitAtExec = 1UL << 32;

    private static BpfLink AttachTracepoint(BpfObject obj, string program, string target, ulong ap)
    {
        int slash = target.IndexOf('/');
        return obj.Program(program).AttachTracepoint(target[..slash], target[(slash + 1)..], cookie: ap);
    }

    private BpfObject Family(ref BpfObject? field, BpfObjectSpec spec) => field ??= BpfObject.Load(spec, _maps);

    private readonly object _preloadLock = new();
    private Task<BpfObject>? _sockPreload;
    private bool _sockStarted;

    /// <summary>Begins loading, on a thread of its own, the objects the start-up policies' hooks need beyond the ones
    /// <see cref="Load"/> made (the cgroup connect object: its verification was a serial ~60 ms of the start-up policies'
    /// apply, measured), so that they are verified beside the policies being applied. A failed preload is loaded again
    /// by the hook that needs it, which then fails with the reason.</summary>
    public void Preload(IEnumerable<Mechanism> mechanisms)
    {
        if (!mechanisms.Contains(Mechanism.CgroupSockAddr))
            return;
        lock (_preloadLock)
        {
            if (_sockStarted) return;
            _sockStarted = true;
            _sockPreload = ParallelLoad.Start(() => BpfObject.Load(ObjectSpecs.PolicySock, _maps));
        }
    }

    private BpfObject Sock()
    {
        if (_sock is not null) return _sock;
        Task<BpfObject>? preload;
        lock (_preloadLock)
        {
            (preload, _sockPreload, _sockStarted) = (_sockPreload, null, true);
        }
        if (preload is not null)
        {
            try { return _sock = preload.GetAwaiter().GetResult(); }
            catch (Exception e) when (e is not OutOfMemoryException) { } // loaded again below: the failure is reported from there
        }
        return _sock = BpfObject.Load(ObjectSpecs.PolicySock, _maps);
    }

    /// <summary>Returns once every policy program that was running has finished: after a generation flip, no
    /// program still uses the old generation. (Updating a map-in-map makes the kernel wait for an RCU grace
    /// period before the syscall returns.)</summary>
    public void WaitForRunningPrograms() =>
        _core.Map(BpfNames.Maps.RcuBarrier).Update(BitConverter.GetBytes(0u), BitConverter.GetBytes((uint)_core.Map(BpfNames.Maps.RcuInner).Fd));

    public (ulong Matched, ulong Posted, ulong Enforced, ulong RateLimited) HookCounters(uint hookId)
    {
        var c = _maps.Map(BpfNames.Maps.HookStats).SumPerCpuCounters(BitConverter.GetBytes(hookId));
        return (c[0], c[1], c[2], c[3]);
    }

    public ulong PointSeen(uint ap) => _maps.Map(BpfNames.Maps.PointStats).SumPerCpu(ap);

    public void ResetHookCounters(uint hookId) => Reset(BpfNames.Maps.HookStats, hookId);

    public void ResetPointCounters(uint ap) => Reset(BpfNames.Maps.PointStats, ap);

    private void Reset(string name, uint key)
    {
        var map = _maps.Map(name);
        map.Update(BitConverter.GetBytes(key), new byte[((map.ValueSize + 7) / 8 * 8) * BpfMap.PossibleCpus]);
    }

    /// <summary>Puts a process in the in-kernel deny set of one selector: its next matches are enforced there.</summary>
    public void Deny(uint hookId, int selector, int tgid, uint actions) =>
        _maps.Map(BpfNames.Maps.Deny).Update(DenyKey(hookId, selector, tgid), BitConverter.GetBytes(actions));

    public void Forgive(uint hookId, int selector, int tgid) => _maps.Map(BpfNames.Maps.Deny).Delete(DenyKey(hookId, selector, tgid));

    private static byte[] DenyKey(uint hookId, int selector, int tgid)
    {
        var k = new byte[PolicyWire.DenyKey.Length];
        BitConverter.TryWriteBytes(k.AsSpan(PolicyWire.DenyKey.HookId), hookId);
        BitConverter.TryWriteBytes(k.AsSpan(PolicyWire.DenyKey.Selector), (uint)selector);
        BitConverter.TryWriteBytes(k.AsSpan(PolicyWire.DenyKey.Tgid), (uint)tgid);
        return k;
    }

    private static string Snake(string pascal) =>
        string.Concat(pascal.Select((c, i) => char.IsUpper(c) && i > 0 ? "_" + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString()));

    public void Dispose()
    {
        Task<BpfObject>? preload;
        lock (_preloadLock) (preload, _sockPreload, _sockStarted) = (_sockPreload, null, true);
        if (preload is not null) ParallelLoad.DisposeWhenDone(preload);
        _sock?.Dispose();
        foreach (var o in _lsm.Values) o.Dispose();
        foreach (var o in _fexit.Values) o.Dispose();
        foreach (var o in _fmodRet.Values) o.Dispose();
        _kprobe?.Dispose();
        _kover?.Dispose();
        _ksys?.Dispose();
        _uprobe?.Dispose();
        _usdtSet?.Dispose();
        _rawtp?.Dispose();
        _loader?.Dispose();
        _enforcer?.Dispose();
        _tpReturn?.Dispose();
        _uringLink?.Dispose();
        _uringCompleteLink?.Dispose();
        _uringWorkerLink?.Dispose();
        _ioUring?.Dispose();
        _cgroup?.Dispose();
        _exit.Dispose();
        _exitOnly.GetAwaiter().GetResult().Object?.Dispose();
        _core.Dispose();
        _maps.Dispose();
    }
}
