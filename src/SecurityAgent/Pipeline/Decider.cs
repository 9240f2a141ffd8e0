using System.Runtime.CompilerServices;
using SecurityAgent.Events;
using SecurityAgent.Export;
using SecurityAgent.Policies;
using SecurityAgent.Processes;

namespace SecurityAgent.Pipeline;

/// <summary>Stage 3, decide: what the policy says about an enriched policy event. Runs what only user space can
/// (selectors of --debug-userspace-filter, matchParentBinaries), enforces its decisions (the responder's signal,
/// the kernel deny set that enforces the process's next matches in the kernel) and says whether the event is
/// exported. Pipeline thread only.</summary>
public sealed class Decider(IReadOnlyDictionary<uint, HookInfo> hooks, EventPipeline.IDenySet? denySet, Decider.Signaller signal,
    Action<IReadOnlyList<Notification>>? notify = null, Stacks.StackSymbolizer? stacks = null, Fanotify.AfterCallMatches? afterCall = null)
{
    /// <summary>Sends a signal to a process the policy decided against (<see cref="Responder.Signal"/> in the agent).</summary>
    public delegate Responder.Outcome Signaller(ProcessInfo p, int signal);

    public enum Verdict { Export, UnknownHook, Filtered, NotPosted }

    /// <summary>The loaded hook of an event (null: unloaded since).</summary>
    public HookPlan? HookOf(uint hookId) => hooks.TryGetValue(hookId, out var info) ? info.Hook : null;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public (Verdict Verdict, PolicyMatchEvent? Event) Decide(PolicyKernelEvent e, ProcessInfo p, ProcessInfo? parent)
    {
        if (!hooks.TryGetValue(e.HookId, out var info))
            return (Verdict.UnknownHook, null); // the policy was unloaded while its event was queued
        int selector = e.Selector;
        if (info.UserSpaceFilter || e.AfterCall)
        {
            // After the call (fanotify's real path of a name-only syscall), unless the kernel matched the call at entry.
            if (e.AfterCall && afterCall?.Repeats(e) == true)
                return (Verdict.Filtered, null);
            selector = UserSpaceSelectors.Match(info.Plan, info.Hook, e.Ints, e.Strings, p);
            if (selector < 0)
                return (Verdict.Filtered, null);
        }
        if (!e.AfterCall)
            afterCall?.Kernel(e);
        var sel = selector < info.Hook.Selectors.Count ? info.Hook.Selectors[selector] : null;
        var actions = sel?.Actions ?? Actions.Post;
        bool returned = e.Flags.HasFlag(PolicyWire.EventFlags.Return) && info.Hook.Return is not null;
        bool enforced = e.Flags.HasFlag(PolicyWire.EventFlags.Enforced) || e.Flags.HasFlag(PolicyWire.EventFlags.ReturnEnforced);
        bool refused = e.Flags.HasFlag(PolicyWire.EventFlags.SafetyRefused);
        var decidedBy = e.HookId >= Fanotify.FanotifyLoader.FirstHookId ? "fanotify" : "kernel"; // the agent's answer to a permission event
        if (e.AfterCall)
        {
            decidedBy = "fanotify"; // after the call: the signal comes once the call has done its work
            if (info.Enforce && (actions & (Actions.Sigkill | Actions.Signal)) != 0)
            {
                var outcome = signal(p, actions.HasFlag(Actions.Sigkill) ? 9 : sel!.Signal);
                enforced = outcome == Responder.Outcome.Sent;
                refused = outcome == Responder.Outcome.Refused;
            }
        }
        else if (sel is { KernelOnly: false } && e.Flags.HasFlag(PolicyWire.EventFlags.DenySet))
        {
            decidedBy = "kernel_deny_set"; // user space decided earlier; the kernel enforced this one
        }
        else if (sel is { KernelOnly: false })
        {
            // The kernel matched everything it can see; ancestry is decided here, on the enriched event.
            if (!ParentRules.Match(sel.ParentBinaries, parent))
                return (Verdict.Filtered, null);
            decidedBy = "user_space";
            const Actions enforcing = Actions.Sigkill | Actions.Signal | Actions.Override;
            if (info.Enforce && (actions & enforcing) != 0)
                denySet?.Deny(e.HookId, e.Selector, e.Pid, actions & enforcing);
            if (info.Enforce && (actions & (Actions.Sigkill | Actions.Signal)) != 0)
            {
                var outcome = signal(p, actions.HasFlag(Actions.Sigkill) ? 9 : sel.Signal);
                enforced = outcome == Responder.Outcome.Sent;
                refused = outcome == Responder.Outcome.Refused;
            }
        }
        if (sel is { Notify.Count: > 0 })
            notify?.Invoke(sel.Notify); // DnsLookup, GetUrl: queued, carried out off this thread
        if (!actions.HasFlag(Actions.Post))
            return (Verdict.NotPosted, null);
        return (Verdict.Export, new PolicyMatchEvent(e.Ktime, p, parent, info.PolicyName, info.Hook, PolicyArgs.ActionName(actions), info.Enforce,
            enforced, refused, decidedBy, PolicyArgs.Render(info.Hook, e.Ints, e.Strings, e.Passed, e.HostArg, e.Host))
        {
            Return = returned ? PolicyArgs.RenderReturn(info.Hook.Return!, e.Return, e.ReturnData) : null,
            ReturnAction = returned ? PolicyArgs.ActionName((Actions)e.ReturnActions) : null,
            MatchedAtExit = e.Flags.HasFlag(PolicyWire.EventFlags.AtExit) || e.AfterCall,
            KernelStackTrace = Stack(e, Actions.KernelStack, e.KernelStack, p),
            UserStackTrace = Stack(e, Actions.UserStack, e.UserStack, p),
            ImaHash = e.ImaHash,
            IoUring = e.IoUring,
            Tid = e.Tid,
        });
    }

    /// <summary>kernelStackTrace / userStackTrace, symbolised; a stack the kernel could not walk is counted.</summary>
    private IReadOnlyList<Stacks.StackFrame>? Stack(PolicyKernelEvent e, Actions asked, ulong[]? addresses, ProcessInfo p)
    {
        if (stacks is null || ((Actions)e.Actions & asked) == 0)
            return null;
        if (addresses is null)
        {
            stacks.Missing();
            return null;
        }
        return asked == Actions.KernelStack ? stacks.Kernel(addresses) : stacks.User(e.Pid, p.Ktime, addresses);
    }

    /// <summary>A process that exited leaves every deny set (pids are reused).</summary>
    public void ProcessExited(int pid)
    {
        denySet?.ProcessExited(pid);
        stacks?.Forget(pid);
    }
}
