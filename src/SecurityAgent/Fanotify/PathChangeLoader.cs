using Microsoft.Extensions.Logging;
using SecurityAgent.Events;
using SecurityAgent.Policies;
using SecurityAgent.Sensors;

namespace SecurityAgent.Fanotify;

/// <summary>The policy loader in front of the others for hooks on name-only syscalls (unlink, rename, chmod, chown, mkdir,
/// link, symlink, mknod, truncate): the kernel hook loads as before (matched at entry on the name), and the hook is also
/// given to one <see cref="PathChangeWatcher"/> holding every such hook, which posts its after-the-call matches on the
/// real path, joined to the kernel's note of the call (<paramref name="notes"/>: each watcher reads its own view of the
/// ring). Changing the set starts a new watcher before the old one is disposed.</summary>
public sealed partial class PathChangeLoader(IPolicyLoader inner, Func<PolicyKernelEvent, bool> post, AfterCallMatches matches, ILogger log,
    Func<AfterCallNotes>? notes = null) : IPolicyLoader, IDisposable
{
    private readonly object _lock = new();
    private readonly Dictionary<LoadedPolicy, List<PathChangeHook>> _policies = [];
    private PathChangeWatcher? _watcher;
    private PathChangeCounters _retired;

    /// <summary>What every watcher this loader has run counted.</summary>
    public PathChangeCounters Counters
    {
        get
        {
            lock (_lock)
                return _watcher is { } w ? _retired + w.Counters : _retired;
        }
    }

    /// <summary>Directories the running watcher marks (empty when no policy needs one).</summary>
    public IReadOnlyList<string> MarkedDirectories
    {
        get { lock (_lock) return _watcher?.MarkedDirectories ?? []; }
    }

    public LoadedPolicy Load(PolicyPlan plan)
    {
        var loaded = inner.Load(plan);
        var hooks = new List<PathChangeHook>();
        for (int i = 0; i < plan.Hooks.Count; i++)
            if (PathChanges.Covered(plan.Hooks[i], out _))
                hooks.Add(HookOf(plan, plan.Hooks[i], loaded.HookIds[i]));
        if (hooks.Count == 0)
            return loaded;
        lock (_lock)
        {
            try
            {
                Restart(_policies.Values.SelectMany(h => h).Concat(hooks).ToList());
            }
            catch
            {
                inner.Unload(loaded);
                throw;
            }
            _policies[loaded] = hooks;
            foreach (var h in hooks) matches.Cover(h.HookId, h.Names.Select(n => n.Slot).ToArray());
        }
        return loaded;
    }

    public void Unload(LoadedPolicy loaded)
    {
        lock (_lock)
        {
            if (_policies.Remove(loaded, out var hooks))
            {
                foreach (var h in hooks) matches.Cover(h.HookId, null);
                try
                {
                    Restart(_policies.Values.SelectMany(h => h).ToList());
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    LogRestartFailed(log, e.Message);
                    Retire();
                }
            }
        }
        inner.Unload(loaded);
    }

    public HookStats Stats(uint hookId) => inner.Stats(hookId);

    private static PathChangeHook HookOf(PolicyPlan plan, HookPlan hook, uint id)
    {
        var names = PathChanges.NameSlots(hook).ToList();
        var slots = names.Select(n => n.Slot).ToHashSet();
        var selectors = hook.Selectors.Select(s => (IReadOnlyList<PathFilter>)s.Args
            .Where(f => slots.Contains(f.Slot) && f.Cmp is Cmp.In or Cmp.Prefix or Cmp.Postfix)
            .Select(f => FanotifyPolicies.PathFilterOf(f.Cmp, plan.ValueSets[f.ValueSet!.Value].Values)).ToList()).ToList();
        return new PathChangeHook(id, PathChanges.ChangesOf(hook), names, hook.Args.Count, selectors, PathChanges.NumberOf(hook));
    }

    private void Restart(List<PathChangeHook> hooks)
    {
        var next = hooks.Count == 0 ? null : new PathChangeWatcher(hooks, post, log, notes?.Invoke());
        Retire();
        _watcher = next;
    }

    private void Retire()
    {
        if (_watcher is not { } w) return;
        w.Dispose();
        _retired += w.Counters;
        _watcher = null;
    }

    public void Dispose()
    {
        lock (_lock) Retire();
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "fanotify changes: the remaining hooks could not be watched after an unload ({Error}); after-the-call matching stopped")]
    private static partial void LogRestartFailed(ILogger log, string error);
}
