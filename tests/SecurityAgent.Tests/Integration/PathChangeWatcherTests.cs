using System.Collections.Concurrent;
using System.Text;
using SecurityAgent.Events;
using SecurityAgent.Fanotify;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>The fanotify change watcher on its own (no BPF): a change in a watched directory, made through a symlinked
/// parent, comes out as the hook's record with the real path; a change elsewhere does not.</summary>
[Collection("kernel")]
public class PathChangeWatcherTests
{
    [Fact]
    public void A_directory_made_through_a_symlinked_parent_is_posted_with_its_real_path_and_one_made_elsewhere_is_not()
    {
        using var dir = new TempDir();
        var watched = Directory.CreateDirectory(dir.File("watched")).FullName;
        var other = Directory.CreateDirectory(dir.File("other")).FullName;
        File.CreateSymbolicLink(dir.File("alias"), watched);
        var posted = new BlockingCollection<PolicyKernelEvent>();
        var hook = new PathChangeHook(7, PathChange.Directory, [(0, 0, 16)], 1, [[new PathFilter(StringOp.Prefix, [watched + "/"])]]);
        using (var watcher = new PathChangeWatcher([hook], e => { posted.Add(e); return true; }))
        {
            Assert.Contains(watched, watcher.MarkedDirectories);
            Directory.CreateDirectory(dir.File("other/no"));
            Directory.CreateDirectory(dir.File("alias/made"));
            Assert.True(posted.TryTake(out var e, TimeSpan.FromSeconds(5)), $"no record for the directory made through the symlink: {watcher.Counters}");
            Assert.Equal((7u, true, watched + "/made", Environment.ProcessId), (e!.HookId, e.AfterCall, Encoding.UTF8.GetString(e.Strings[0]), e.Pid));
            Assert.False(posted.TryTake(out var extra, TimeSpan.FromMilliseconds(300)), $"unexpected record {(extra is null ? "" : Encoding.UTF8.GetString(extra.Strings[0]))}");
        }
    }

    [Fact]
    public void A_tree_moved_under_a_watched_prefix_is_watched_to_its_deepest_file()
    {
        using var dir = new TempDir();
        var watched = Directory.CreateDirectory(dir.File("watched")).FullName;
        var staged = dir.File("stage/inner/deep/f");
        Directory.CreateDirectory(Path.GetDirectoryName(staged)!);
        File.WriteAllText(staged, "x");
        var posted = new BlockingCollection<PolicyKernelEvent>();
        var rename = new PathChangeHook(1, PathChange.Rename, [(0, 0, 16), (1, 1, 24)], 2, [[new PathFilter(StringOp.Prefix, [watched + "/"])]]);
        var delete = new PathChangeHook(2, PathChange.Delete, [(0, 0, 16)], 1, [[new PathFilter(StringOp.Prefix, [watched + "/"])]]);
        using var watcher = new PathChangeWatcher([rename, delete], e => { posted.Add(e); return true; });

        Directory.Move(dir.File("stage"), Path.Combine(watched, "stage")); // one rename: nothing below it was ever created under the prefix
        Assert.True(posted.TryTake(out var moved, TimeSpan.FromSeconds(5)), $"no record for the move: {watcher.Counters}");
        Assert.Equal((1u, watched + "/stage"), (moved!.HookId, Encoding.UTF8.GetString(moved.Strings[1])));

        File.Delete(Path.Combine(watched, "stage/inner/deep/f"));
        Assert.True(posted.TryTake(out var deleted, TimeSpan.FromSeconds(5)), $"no record for the delete two directories below the moved one: {watcher.Counters}");
        Assert.Equal((2u, watched + "/stage/inner/deep/f"), (deleted!.HookId, Encoding.UTF8.GetString(deleted.Strings[0])));
    }
}
