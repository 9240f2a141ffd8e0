using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using SecurityAgent.Policies;
using SecurityAgent.Tests.Support;
using Xunit.Abstractions;

namespace SecurityAgent.Tests.Unit;

/// <summary>The policy directory as a source: inotify, writes in progress, editors' renames, ConfigMap symlinks, and the
/// trust boundary (owner root, not writable by group or others, no links out).</summary>
public sealed class PolicyDirectoryTests : IDisposable
{
    private readonly ITestOutputHelper output;
    private readonly TempDir _tmp = new();
    private readonly FakeLoader _loader = new();
    private readonly PolicyManager _manager;
    private readonly PolicyDirectory _dir;
    private readonly CancellationTokenSource _stop = new();

    public PolicyDirectoryTests(ITestOutputHelper output)
    {
        this.output = output;
        Directory.CreateDirectory(_tmp.File("policies"));
        _manager = FakeLoader.Manager(_loader);
        _dir = new PolicyDirectory(_tmp.File("policies"), _manager, NullLogger.Instance);
    }

    private string F(string name) => Path.Combine(_dir.Path, name);
    private static string P(string name) => TestPolicies.OpenatKill(name, "/tmp/x/cat", "/etc/shadow", "monitor");
    private List<string> Loaded() => _manager.List().Where(p => p.Loaded).Select(p => p.Key.Name).ToList();

    private void Watch() => new Thread(() => _dir.Watch(_stop.Token)) { IsBackground = true }.Start();

    private static bool Within(TimeSpan t, Func<bool> condition) => Poll.Within(t, condition, everyMs: 1);

    [Fact]
    public void A_policy_renamed_into_the_directory_is_applied_within_milliseconds_through_inotify()
    {
        Watch();
        Thread.Sleep(200); // the watch is in place
        File.WriteAllText(F(".p.yaml.tmp"), P("renamed"));
        var sw = Stopwatch.StartNew();
        File.Move(F(".p.yaml.tmp"), F("p.yaml"));
        Assert.True(Within(TimeSpan.FromSeconds(1), () => Loaded().Contains("renamed")), "not applied within 1 s");
        output.WriteLine($"file renamed into place -> applied: {sw.Elapsed.TotalMilliseconds:F1} ms");
        File.Delete(F("p.yaml"));
        Assert.True(Within(TimeSpan.FromSeconds(1), () => Loaded().Count == 0), "not unloaded within 1 s");
    }

    [Fact]
    public void A_file_still_being_written_is_applied_once_when_it_is_closed()
    {
        Watch();
        Thread.Sleep(200);
        var text = P("partial");
        using (var fs = new FileStream(F("p.yaml"), FileMode.CreateNew))
        {
            fs.Write(System.Text.Encoding.UTF8.GetBytes(text[..(text.Length / 2)]));
            fs.Flush();
            Thread.Sleep(300); // a half-written policy is not read: no event until the close
            Assert.Empty(_manager.List());
            fs.Write(System.Text.Encoding.UTF8.GetBytes(text[(text.Length / 2)..]));
        }
        Assert.True(Within(TimeSpan.FromSeconds(1), () => Loaded().Contains("partial")));
        Assert.Equal(["load partial monitor"], _loader.Calls);
    }

    [Fact]
    public void A_file_group_or_other_writable_or_not_owned_by_root_is_refused_and_its_old_version_kept()
    {
        File.WriteAllText(F("a.yaml"), P("a"));
        File.WriteAllText(F("b.yaml"), P("b"));
        _dir.Sync();
        Assert.Equal(["a", "b"], Loaded());
        File.WriteAllText(F("a.yaml"), P("a").Replace("/etc/shadow", "/etc/gshadow"));
        File.SetUnixFileMode(F("a.yaml"), (UnixFileMode)0b110_110_110);
        Assert.Equal(0, Run.Wait("chown", ["65534", F("b.yaml")]).Code);
        File.WriteAllText(F("c.yaml"), P("c"));
        File.SetUnixFileMode(F("c.yaml"), (UnixFileMode)0b110_100_110);
        _dir.Sync();
        Assert.Equal(["a", "b"], Loaded()); // the old versions stay; the new file never loads
        Assert.Equal(["load a monitor", "load b monitor"], _loader.Calls);
        Assert.Contains("writable by group or others (mode 0666)", PolicyFiles.ReadTrusted(_dir.Path, F("a.yaml")).Refusal);
        Assert.Contains("belongs to uid 65534, not root", PolicyFiles.ReadTrusted(_dir.Path, F("b.yaml")).Refusal);
    }

    [Fact]
    public void A_directory_writable_by_others_is_refused_as_a_whole()
    {
        File.WriteAllText(F("a.yaml"), P("a"));
        File.SetUnixFileMode(_dir.Path, (UnixFileMode)0b111_111_111);
        Assert.False(_dir.Sync());
        Assert.Empty(_manager.List());
        Assert.Contains($"directory {_dir.Path} is writable by group or others (mode 0777): refused (chmod go-w)", PolicyFiles.DirectoryProblem(_dir.Path));
        File.SetUnixFileMode(_dir.Path, (UnixFileMode)0b111_101_101);
        Assert.True(_dir.Sync());
        Assert.Equal(["a"], Loaded());
    }

    [Fact]
    public void A_sticky_directory_of_roots_as_kubernetes_mounts_a_configmap_is_trusted_but_a_link_planted_there_by_another_user_is_not()
    {
        File.WriteAllText(F("a.yaml"), P("a"));
        File.SetUnixFileMode(_dir.Path, (UnixFileMode)0b1_111_111_111); // drwxrwxrwt root
        Assert.Null(PolicyFiles.DirectoryProblem(_dir.Path));
        File.CreateSymbolicLink(F("planted.yaml"), "a.yaml");
        Assert.Equal(0, Run.Wait("chown", ["-h", "65534", F("planted.yaml")]).Code);
        _dir.Sync();
        Assert.Equal(["a"], Loaded());
        Assert.Contains("the symlink belongs to uid 65534, not root", PolicyFiles.ReadTrusted(_dir.Path, F("planted.yaml")).Refusal);
    }

    [Fact]
    public void Configmap_symlinks_inside_the_directory_are_followed_and_a_link_out_is_not()
    {
        // What a ConfigMap volume looks like: p.yaml -> ..data/p.yaml, ..data -> ..2026_11_22_v1
        Directory.CreateDirectory(F("..2026_11_22_v1"));
        File.WriteAllText(F("..2026_11_22_v1/p.yaml"), P("from-configmap"));
        File.CreateSymbolicLink(F("..data"), "..2026_11_22_v1");
        File.CreateSymbolicLink(F("p.yaml"), "..data/p.yaml");
        File.CreateSymbolicLink(F("out.yaml"), _tmp.File("outside.yaml"));
        File.WriteAllText(_tmp.File("outside.yaml"), P("outside"));
        _dir.Sync();
        Assert.Equal(["from-configmap"], Loaded());
        Assert.Contains("a symlink out of the policy directory", PolicyFiles.ReadTrusted(_dir.Path, F("out.yaml")).Refusal);
        // The kubelet's update: a new timestamped directory, then ..data swapped to it.
        Directory.CreateDirectory(F("..2026_11_22_v2"));
        File.WriteAllText(F("..2026_11_22_v2/p.yaml"), P("from-configmap").Replace("/etc/shadow", "/etc/gshadow"));
        File.CreateSymbolicLink(F("..data_tmp"), "..2026_11_22_v2");
        Assert.Equal(0, Run.Wait("mv", ["-T", F("..data_tmp"), F("..data")]).Code); // rename(2) over the old link
        _dir.Sync();
        Assert.Equal(["load from-configmap monitor", "load from-configmap monitor", "unload from-configmap"], _loader.Calls);
    }

    [Fact]
    public void A_policy_added_through_the_api_is_a_private_file_applied_before_the_answer()
    {
        var o = _dir.Add(P("api"), replace: false);
        Assert.True(o.Ok, string.Join("\n", o.Errors));
        Assert.Equal(["api"], o.Loaded.Select(k => k.Name));
        Assert.Equal((UnixFileMode)0b110_000_000, File.GetUnixFileMode(F("api.yaml")));
        Assert.Equal(PolicyFailure.Conflict, _dir.Add(P("api"), replace: false).Failure);
        Assert.Equal(PolicyFailure.Invalid, _dir.Add("", replace: false).Failure);
        Assert.Equal(PolicyFailure.Invalid, _dir.Add(P("bad").Replace("selectors:", "selectros:"), replace: false).Failure);
        Assert.True(_dir.Delete("api").Ok);
        Assert.False(File.Exists(F("api.yaml")));
        Assert.Empty(_manager.List());
        Assert.Equal(PolicyFailure.NotFound, _dir.Delete("api").Failure);
    }

    private PolicyPrecheck Precheck()
    {
        var precheck = PolicyPrecheck.Start(_dir.Path, Task.FromResult(new PolicyValidator(PolicyValidatorTests.OurKernel, PolicyCompilerTests.Formats)));
        _manager.Precheck = precheck;
        return precheck;
    }

    [Fact]
    public async Task Start_up_policies_checked_beside_the_verifier_load_from_that_check_and_a_broken_file_among_them_is_reported_at_its_place()
    {
        File.WriteAllText(F("a.yaml"), P("one"));
        File.WriteAllText(F("b.yaml"), "apiVersion: securityagent.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: broken\nspec:\n  tracepoints: [\n");
        File.WriteAllText(F("c.yaml"), P("three"));
        var precheck = Precheck();
        await precheck.Completion.WaitAsync(TimeSpan.FromSeconds(30));
        var broken = _manager.Apply(PolicyOrigin.File(F("b.yaml")), File.ReadAllText(F("b.yaml")));
        Assert.Contains(broken.Errors, e => e.StartsWith(F("b.yaml") + ":7:", StringComparison.Ordinal));
        _dir.Sync();
        Assert.Equal(["one", "three"], Loaded());
        Assert.Equal(["load one monitor", "load three monitor"], _loader.Calls);
        Assert.Null(precheck.Take(F("a.yaml"), P("one"))); // taken by the load: each result is used once
    }

    [Fact]
    public async Task A_start_up_policy_file_changed_after_its_check_is_loaded_as_it_is_now()
    {
        File.WriteAllText(F("a.yaml"), P("before"));
        var precheck = Precheck();
        await precheck.Completion.WaitAsync(TimeSpan.FromSeconds(30));
        File.WriteAllText(F("a.yaml"), P("after"));
        _dir.Sync();
        Assert.Equal(["after"], Loaded());
        Assert.NotNull(precheck.Take(F("a.yaml"), P("before"))); // the stale check was never used
    }

    public void Dispose()
    {
        _stop.Cancel();
        _tmp.Dispose();
    }
}
