using System.Security.Cryptography;
using Microsoft.Extensions.Logging;

namespace SecurityAgent.Policies;

/// <summary>Keeps the policies of a directory loaded: <see cref="Sync"/> loads new and changed files and
/// unloads removed ones. A changed policy is loaded before its old version is unloaded (no window without
/// enforcement), and a document that no longer validates keeps its last good version loaded.</summary>
public sealed partial class PolicyDirectory(string dir, PolicyValidator validator, PolicyCompiler compiler, PolicyEngine engine, ILogger log)
{
    private sealed record FileState(string Hash, Dictionary<string, (LoadedPolicy Loaded, string DocHash)> Policies);

    private readonly Dictionary<string, FileState> _files = new();

    public IEnumerable<LoadedPolicy> Loaded => _files.Values.SelectMany(f => f.Policies.Values.Select(p => p.Loaded));

    /// <summary>Brings the kernel in line with the directory. Returns true when anything changed.</summary>
    public bool Sync()
    {
        var present = Directory.Exists(dir)
            ? Directory.EnumerateFiles(dir).Where(f => f.EndsWith(".yaml") || f.EndsWith(".yml")).ToHashSet()
            : [];
        bool changed = false;
        foreach (var gone in _files.Keys.Where(f => !present.Contains(f)).ToList())
        {
            foreach (var (name, p) in _files[gone].Policies)
            {
                engine.Unload(p.Loaded);
                LogUnloaded(log, name, gone);
            }
            _files.Remove(gone);
            changed = true;
        }
        foreach (var file in present.Order())
        {
            string text;
            try { text = File.ReadAllText(file); }
            catch (IOException) { continue; } // being written: next round
            var hash = Hash(text);
            if (_files.TryGetValue(file, out var state) && state.Hash == hash)
                continue;
            _files[file] = SyncFile(file, text, hash, state);
            changed = true;
        }
        return changed;
    }

    private FileState SyncFile(string file, string text, string hash, FileState? old)
    {
        var now = new Dictionary<string, (LoadedPolicy, string)>();
        var keep = new HashSet<string>();
        bool broken = false;
        foreach (var v in validator.ValidateText(file, text))
        {
            if (!v.Ok)
            {
                foreach (var d in v.Diagnostics) LogError(log, d.ToString());
                broken = true; // a syntax error may hide which policy the document was
                continue;
            }
            var docHash = Hash(v.Json!.ToString());
            if (old?.Policies.TryGetValue(v.Name!, out var same) == true && same.DocHash == docHash)
            {
                now[v.Name!] = same;
                keep.Add(v.Name!);
                continue;
            }
            if (Loaded.Any(l => l.Plan.Name == v.Name) && old?.Policies.ContainsKey(v.Name!) != true)
            {
                LogError(log, $"{file}: policy {v.Name} is already loaded from another file; not loaded");
                continue;
            }
            try
            {
                var plan = compiler.Compile(v);
                now[v.Name!] = (engine.Load(plan), docHash);
                LogLoaded(log, plan.Name, file, plan.Enforce ? "enforce" : "monitor", string.Join(", ", plan.Hooks.Select(h => $"{h.Name} via {Kernel.KernelFeatures.MechanismName(h.Mechanism)}")));
            }
            catch (PolicyCompileException e)
            {
                foreach (var d in e.Diagnostics) LogError(log, d.ToString());
                if (old?.Policies.TryGetValue(v.Name!, out var good) == true) { now[v.Name!] = good; keep.Add(v.Name!); }
            }
            catch (Exception e) when (e is Interop.LibbpfException or NotSupportedException or InvalidOperationException)
            {
                LogError(log, $"{file}: policy {v.Name} failed to load: {e.Message}");
                if (old?.Policies.TryGetValue(v.Name!, out var good) == true) { now[v.Name!] = good; keep.Add(v.Name!); }
            }
        }
        // Old versions go only now, after their replacements are attached. While the file has errors,
        // policies it no longer yields stay as they were: a broken edit never unloads a good policy.
        foreach (var (name, p) in old?.Policies ?? [])
        {
            if (keep.Contains(name)) continue;
            if (broken && !now.ContainsKey(name))
            {
                now[name] = p;
                LogKeptOld(log, name);
                continue;
            }
            engine.Unload(p.Loaded);
            if (!now.ContainsKey(name)) LogUnloaded(log, name, file);
        }
        return new FileState(hash, now);
    }

    private static string Hash(string text) => Convert.ToHexString(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text)));

    [LoggerMessage(Level = LogLevel.Information, Message = "Policy {Name} loaded from {File} (mode {Mode}): {Hooks}")]
    private static partial void LogLoaded(ILogger log, string name, string file, string mode, string hooks);

    [LoggerMessage(Level = LogLevel.Information, Message = "Policy {Name} unloaded ({File})")]
    private static partial void LogUnloaded(ILogger log, string name, string file);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Policy {Name}: the new version is broken; the last good version stays loaded")]
    private static partial void LogKeptOld(ILogger log, string name);

    [LoggerMessage(Level = LogLevel.Error, Message = "Policy error: {Diagnostic}")]
    private static partial void LogError(ILogger log, string diagnostic);
}
