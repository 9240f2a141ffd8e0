using System.Buffers;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using SecurityAgent.Events;
using SecurityAgent.Export;
using SecurityAgent.Policies;
using SecurityAgent.Processes;

namespace SecurityAgent.Pipeline;

/// <summary>ring buffer thread → bounded channel → (one reader) decode → enrich → export.
/// The ring buffer side never blocks: when the channel is full the record is dropped and counted.</summary>
public sealed partial class EventPipeline
{
    private readonly Channel<RawRecord> _channel;
    private readonly ProcessCache _cache;
    private readonly IReadOnlyList<IEventExporter> _exporters;
    private readonly ILogger _log;

    public PipelineCounters Counters { get; } = new();
    public ProcessCache Cache => _cache;

    private readonly record struct RawRecord(byte[] Buffer, int Length);

    private readonly IReadOnlyDictionary<uint, HookInfo> _hooks;
    private readonly IDenySet? _denySet;
    private readonly Containers.CgroupMap? _cgroups;
    private readonly Containers.PodCache? _pods;
    private readonly Queue<(AgentEvent Event, DateTime Deadline)> _parked = new();
    /// <summary>How long an event of a pod's container waits for the pod watch before it goes out without pod fields.</summary>
    public static readonly TimeSpan PodWait = TimeSpan.FromSeconds(5);
    private readonly long _clockTickNs;

    public EventPipeline(int capacity, ProcessCache cache, IReadOnlyList<IEventExporter> exporters, ILogger log,
        IReadOnlyDictionary<uint, HookInfo>? hooks = null, long clockTickNs = 10_000_000, IDenySet? denySet = null,
        Containers.CgroupMap? cgroups = null, Containers.PodCache? pods = null)
    {
        _cgroups = cgroups;
        _pods = pods;
        _denySet = denySet;
        _hooks = hooks ?? new Dictionary<uint, HookInfo>();
        _clockTickNs = clockTickNs;
        _channel = Channel.CreateBounded<RawRecord>(new BoundedChannelOptions(capacity)
        {
            SingleReader = true,
            SingleWriter = true,
            FullMode = BoundedChannelFullMode.Wait, // TryWrite then fails instead of blocking; we count it
        });
        _cache = cache;
        _exporters = exporters;
        _log = log;
    }

    /// <summary>Called on the ring buffer thread for each record (the span is only valid during the call).</summary>
    public void Enqueue(ReadOnlySpan<byte> record)
    {
        Counters.OnReceived();
        var buf = ArrayPool<byte>.Shared.Rent(record.Length);
        record.CopyTo(buf);
        if (!_channel.Writer.TryWrite(new RawRecord(buf, record.Length)))
        {
            ArrayPool<byte>.Shared.Return(buf);
            Counters.OnChannelDropped();
        }
    }

    /// <summary>No more records will come; <see cref="RunAsync"/> finishes once the queue is drained.</summary>
    public void Complete() => _channel.Writer.TryComplete();

    public async Task RunAsync(CancellationToken ct)
    {
        var reader = _channel.Reader;
        try
        {
            var more = reader.WaitToReadAsync(ct).AsTask();
            while (true)
            {
                // Sleep until a record arrives; events waiting for their pod need a tick even when the kernel is quiet.
                if (!more.IsCompleted)
                    await (_parked.Count > 0 ? Task.WhenAny(more, Task.Delay(100, CancellationToken.None)) : (Task)Task.WhenAny(more)).ConfigureAwait(false);
                if (more.IsCompleted)
                {
                    if (!await more.ConfigureAwait(false)) break;
                    while (reader.TryRead(out var r))
                    {
                        try { Handle(r.Buffer.AsSpan(0, r.Length)); }
                        finally { ArrayPool<byte>.Shared.Return(r.Buffer); }
                    }
                    more = reader.WaitToReadAsync(ct).AsTask();
                }
                DrainParked(force: false);
                foreach (var e in _exporters)
                    e.Flush();
            }
            DrainParked(force: true);
            foreach (var e in _exporters)
                e.Flush();
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    private void Handle(ReadOnlySpan<byte> raw)
    {
        KernelEvent ev;
        try
        {
            ev = EventDecoder.Decode(raw);
        }
        catch (FormatException ex)
        {
            Counters.OnDecodeError();
            LogDecodeError(_log, ex.Message);
            return;
        }

        AgentEvent? output = ev switch
        {
            ExecEvent exec => Exec(exec),
            ForkEvent fork => Fork(fork),
            ExitEvent exit => Exit(exit),
            PolicyKernelEvent policy => Policy(policy),
            _ => null,
        };
        if (output is not null)
            Export(output);
    }

    private ProcessExecEvent Exec(ExecEvent e)
    {
        var p = _cache.OnExec(e);
        if (_cgroups?.PathOf(e.CgroupId) is { } path)
            p.Container = Containers.CgroupNames.Parse(path);
        return new ProcessExecEvent(e.Ktime, p, _cache.Parent(p));
    }

    private AgentEvent? Fork(ForkEvent e)
    {
        _cache.OnFork(e);
        return null; // clones are context for later events, not exported themselves (as Tetragon)
    }

    private ProcessExitEvent Exit(ExitEvent e)
    {
        _denySet?.ProcessExited(e.Pid);
        var p = _cache.OnExit(e) ?? Unknown(e);
        return new ProcessExitEvent(e.Ktime, p, _cache.Parent(p), e.Status, e.Signal);
    }

    private PolicyMatchEvent? Policy(PolicyKernelEvent e)
    {
        if (!_hooks.TryGetValue(e.HookId, out var info))
        {
            Counters.OnUnknownHook(); // the policy was unloaded while its event was queued
            return null;
        }
        var p = _cache.ByPid(e.Pid) ?? Unknown(new ExitEvent(e.Ktime, e.Pid, e.Tid, 0, 0));
        int selector = e.Selector;
        if (info.UserSpaceFilter)
        {
            selector = UserSpaceSelectors.Match(info.Plan, info.Hook, e.Ints, e.Strings, p);
            if (selector < 0)
            {
                Counters.OnUserSpaceFiltered();
                return null;
            }
        }
        var parent = _cache.Parent(p);
        var sel = selector < info.Hook.Selectors.Count ? info.Hook.Selectors[selector] : null;
        var actions = sel?.Actions ?? Actions.Post;
        bool enforced = e.Flags.HasFlag(PolicyWire.EventFlags.Enforced);
        bool refused = e.Flags.HasFlag(PolicyWire.EventFlags.SafetyRefused);
        var decidedBy = "kernel";
        if (sel is { KernelOnly: false } && e.Flags.HasFlag(PolicyWire.EventFlags.DenySet))
        {
            decidedBy = "kernel_deny_set"; // user space decided earlier; the kernel enforced this one
        }
        else if (sel is { KernelOnly: false })
        {
            // The kernel matched everything it can see; ancestry is decided here, on the enriched event.
            if (!ParentRules.Match(sel.ParentBinaries, parent))
            {
                Counters.OnUserSpaceFiltered();
                return null;
            }
            decidedBy = "user_space";
            if (info.Enforce && (actions & (Actions.Sigkill | Actions.Signal | Actions.Override)) != 0)
                _denySet?.Deny(e.HookId, e.Selector, e.Pid, actions & (Actions.Sigkill | Actions.Signal | Actions.Override));
            if (info.Enforce && (actions & (Actions.Sigkill | Actions.Signal)) != 0)
            {
                var outcome = Responder.Signal(p, actions.HasFlag(Actions.Sigkill) ? 9 : sel.Signal, _clockTickNs);
                enforced = outcome == Responder.Outcome.Sent;
                refused = outcome == Responder.Outcome.Refused;
            }
        }
        if (!actions.HasFlag(Actions.Post))
            return null;
        return new PolicyMatchEvent(e.Ktime, p, parent, info.PolicyName, info.Hook, PolicyArgs.ActionName(actions), info.Enforce,
            enforced, refused, decidedBy, PolicyArgs.Render(info.Hook, e.Ints, e.Strings, e.Passed));
    }

    /// <summary>The in-kernel deny set the user-space stage feeds (the policy engine).</summary>
    public interface IDenySet
    {
        void Deny(uint hookId, int selector, int tgid, Actions enforce);
        void ProcessExited(int tgid);
    }

    /// <summary>An exit of a process the cache never saw (evicted, or lost events): still reported.</summary>
    private ProcessInfo Unknown(ExitEvent e) => new()
    {
        ExecId = ExecId.Make(_cache.NodeName, e.StartTime, e.Pid),
        Pid = e.Pid,
        Tid = e.Tid,
        StartTime = e.StartTime,
        Ktime = e.StartTime,
        Binary = "",
        Args = [],
        Cwd = "",
        Creds = new Credentials(0, 0, 0, 0),
        Origin = ProcessOrigin.Clone,
    };

    /// <summary>The pod of a process in a pod's container, once the pod watch has it.</summary>
    private bool PodKnownOrNotExpected(Processes.ProcessInfo p)
    {
        if (p.Pod is not null || p.Container is not { PodUid: not null } c || _pods is not { Active: true }) return true;
        p.Pod = _pods.Lookup(c);
        return p.Pod is not null;
    }

    /// <summary>Keeps order: once one event waits for its pod, the ones behind it wait too (at most PodWait).</summary>
    private void Export(AgentEvent e)
    {
        if (_parked.Count > 0 || !PodKnownOrNotExpected(e.Process) || (e.Parent is { } pa && !PodKnownOrNotExpected(pa)))
        {
            _parked.Enqueue((e, DateTime.UtcNow + PodWait));
            return;
        }
        ExportNow(e);
    }

    private void DrainParked(bool force)
    {
        while (_parked.TryPeek(out var x))
        {
            bool ready = PodKnownOrNotExpected(x.Event.Process) & (x.Event.Parent is not { } pa || PodKnownOrNotExpected(pa));
            if (!ready && !force && DateTime.UtcNow < x.Deadline) break;
            _parked.Dequeue();
            ExportNow(x.Event);
        }
    }

    private void ExportNow(AgentEvent e)
    {
        foreach (var x in _exporters)
            x.Export(e);
        Counters.OnExported(e.Type, e is PolicyMatchEvent m ? m.PolicyName : "");
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Dropped a malformed kernel record: {Reason}")]
    private static partial void LogDecodeError(ILogger log, string reason);
}
