using System.Text;
using SecurityAgent.Fanotify;

namespace SecurityAgent.Tests.Unit;

/// <summary>The mark planner and the path matcher: pure, over an in-memory file system.</summary>
public class FanotifyPlannerTests
{
    /// <summary>Directories, files and symlinks by absolute path; RealPath resolves symlinks component by component.</summary>
    private sealed class FakeFs : IFileSystemView
    {
        public readonly HashSet<string> Dirs = ["/"];
        public readonly HashSet<string> Files = [];
        public readonly Dictionary<string, string> Links = [];
        public List<string> Mounts = ["/", "/proc", "/dev/shm"];

        public FakeFs Dir(params string[] paths)
        {
            foreach (var p in paths)
                for (var d = p; d != "/"; d = Parent(d))
                    Dirs.Add(d);
            return this;
        }

        public FakeFs File(params string[] paths)
        {
            foreach (var p in paths) { Dir(Parent(p)); Files.Add(p); }
            return this;
        }

        public string? RealPath(string path)
        {
            var cur = "/";
            foreach (var part in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
            {
                if (part == ".") continue;
                var next = part == ".." ? Parent(cur) : cur == "/" ? "/" + part : cur + "/" + part;
                for (int hops = 0; Links.TryGetValue(next, out var target) && hops < 8; hops++)
                    next = target;
                if (!Dirs.Contains(next) && !Files.Contains(next)) return null;
                cur = next;
            }
            return cur;
        }

        public bool IsDirectory(string p) => Dirs.Contains(p);

        public IEnumerable<string> SubdirectoryNames(string dir) =>
            Dirs.Where(d => d != "/" && Parent(d) == dir).Select(d => d[(d.LastIndexOf('/') + 1)..]).Order(StringComparer.Ordinal);

        public IEnumerable<string> MountPoints() => Mounts;

        private static string Parent(string p) => p.LastIndexOf('/') is var i and > 0 ? p[..i] : "/";
    }

    private static FanotifyRule Rule(StringOp op, params string[] values) =>
        new("r", FileOperations.Open, [new PathFilter(op, values)], null);

    private static HashSet<(MarkKind, string)> Marks(MarkSet s) => s.Marks.Select(m => (m.Kind, m.Path)).ToHashSet();

    [Fact]
    public void An_equal_path_marks_only_that_file_and_watches_its_directory_for_a_replacement()
    {
        var fs = new FakeFs().File("/etc/shadow", "/etc/passwd");
        var plan = new MarkPlanner(fs).Plan([Rule(StringOp.Equal, "/etc/shadow")]);
        Assert.Equal([new Mark(MarkKind.Inode, "/etc/shadow", FileOperations.Open)], plan.Initial.Marks);
        Assert.Equal(["/etc"], plan.Initial.Watches);
        Assert.Empty(plan.Notes);
    }

    [Fact]
    public void A_directory_prefix_marks_the_directory_and_every_directory_below_it_but_not_its_parent_or_siblings()
    {
        var fs = new FakeFs().Dir("/data/secret/a/b", "/data/secret/c", "/data/public/x").File("/data/secret/a/f");
        var plan = new MarkPlanner(fs).Plan([Rule(StringOp.Prefix, "/data/secret/")]);
        Assert.Equal(new HashSet<(MarkKind, string)>
        {
            (MarkKind.Children, "/data/secret"), (MarkKind.Children, "/data/secret/a"),
            (MarkKind.Children, "/data/secret/a/b"), (MarkKind.Children, "/data/secret/c"),
        }, Marks(plan.Initial));
        Assert.Equal(new HashSet<string> { "/data/secret", "/data/secret/a", "/data/secret/a/b", "/data/secret/c" }, plan.Initial.Watches.ToHashSet());
    }

    [Fact]
    public void A_prefix_ending_inside_a_name_marks_the_parent_and_the_matching_directories_only()
    {
        var fs = new FakeFs().Dir("/etc/ssh/keys", "/etc/sshd.d", "/etc/apt").File("/etc/shadow");
        var plan = new MarkPlanner(fs).Plan([Rule(StringOp.Prefix, "/etc/ss")]);
        Assert.Equal(new HashSet<(MarkKind, string)>
        {
            (MarkKind.Children, "/etc"), (MarkKind.Children, "/etc/ssh"), (MarkKind.Children, "/etc/ssh/keys"), (MarkKind.Children, "/etc/sshd.d"),
        }, Marks(plan.Initial));
    }

    [Fact]
    public void Symlinks_dots_and_trailing_slashes_in_rule_paths_are_resolved_in_the_values_the_decision_compares()
    {
        var fs = new FakeFs().Dir("/real/conf", "/etc").File("/real/conf/app.yaml");
        fs.Links["/etc/app"] = "/real/conf";
        var plan = new MarkPlanner(fs).Plan([
            new FanotifyRule("eq", FileOperations.Open, [new PathFilter(StringOp.Equal, ["/etc/app/./app.yaml/"])], null),
            new FanotifyRule("pre", FileOperations.Open, [new PathFilter(StringOp.Prefix, ["/etc//app/../app/"]), new PathFilter(StringOp.Postfix, [".yaml"])], null),
        ]);
        Assert.Equal(["/real/conf/app.yaml"], plan.Rules[0].Paths[0].Values);
        Assert.Equal(["/real/conf/"], plan.Rules[1].Paths[0].Values);
        Assert.Equal([".yaml"], plan.Rules[1].Paths[1].Values); // a postfix is compared as written
        Assert.Contains((MarkKind.Inode, "/real/conf/app.yaml"), Marks(plan.Initial));
        Assert.Contains((MarkKind.Children, "/real/conf"), Marks(plan.Initial));
    }

    [Fact]
    public void A_path_that_does_not_exist_yet_is_watched_from_its_deepest_existing_directory_and_marked_as_it_appears()
    {
        var fs = new FakeFs().Dir("/srv");
        var planner = new MarkPlanner(fs);
        var plan = planner.Plan([Rule(StringOp.Equal, "/srv/app/token"), Rule(StringOp.Prefix, "/srv/app/keys/")]);
        Assert.Empty(plan.Initial.Marks);
        Assert.Equal(["/srv"], plan.Initial.Watches);

        fs.Dir("/srv/app");
        var step = planner.OnCreated(plan.Anchors, "/srv", "app", isDirectory: true);
        Assert.Empty(step.Marks);
        Assert.Equal(["/srv/app"], step.Watches);

        fs.Dir("/srv/app/keys/old");
        step = planner.OnCreated(plan.Anchors, "/srv/app", "keys", isDirectory: true);
        Assert.Equal(new HashSet<(MarkKind, string)> { (MarkKind.Children, "/srv/app/keys"), (MarkKind.Children, "/srv/app/keys/old") }, Marks(step));

        fs.File("/srv/app/token");
        step = planner.OnCreated(plan.Anchors, "/srv/app", "token", isDirectory: false);
        Assert.Equal([new Mark(MarkKind.Inode, "/srv/app/token", FileOperations.Open)], step.Marks);

        Assert.Empty(planner.OnCreated(plan.Anchors, "/srv/app", "unrelated", isDirectory: false).Marks);
    }

    [Fact]
    public void A_new_directory_under_a_prefix_is_marked_with_its_subtree_and_one_outside_is_not()
    {
        var fs = new FakeFs().Dir("/data/secret", "/data/other");
        var planner = new MarkPlanner(fs);
        var plan = planner.Plan([Rule(StringOp.Prefix, "/data/secret/")]);
        fs.Dir("/data/secret/new/deeper");
        var step = planner.OnCreated(plan.Anchors, "/data/secret", "new", isDirectory: true);
        Assert.Equal(new HashSet<(MarkKind, string)> { (MarkKind.Children, "/data/secret/new"), (MarkKind.Children, "/data/secret/new/deeper") }, Marks(step));
        fs.Dir("/data/other/new");
        Assert.Empty(planner.OnCreated(plan.Anchors, "/data/other", "new", isDirectory: true).Marks);
    }

    [Fact]
    public void What_appeared_between_a_look_and_the_watch_is_planned_when_the_watched_directory_is_looked_at_again()
    {
        // The plan looked at /data/secret/new while it was empty and at /srv while it had no app: then deeper, app and its
        // token were made before the watches were added, so no event will name them.
        var fs = new FakeFs().Dir("/data/secret/new", "/srv");
        var planner = new MarkPlanner(fs);
        var plan = planner.Plan([Rule(StringOp.Prefix, "/data/secret/"), Rule(StringOp.Equal, "/srv/app/token")]);
        var watched = plan.Initial.Watches.ToHashSet();
        fs.Dir("/data/secret/new/deeper/still").File("/srv/app/token");

        var step = planner.OnWatched(plan.Anchors, "/data/secret/new", watched.Contains);
        Assert.Equal(new HashSet<(MarkKind, string)> { (MarkKind.Children, "/data/secret/new/deeper"), (MarkKind.Children, "/data/secret/new/deeper/still") }, Marks(step));
        Assert.Equal(["/data/secret/new/deeper", "/data/secret/new/deeper/still"], step.Watches.Order(StringComparer.Ordinal));
        // A directory already watched was looked at when its watch was added: it is not planned again.
        Assert.Empty(planner.OnWatched(plan.Anchors, "/data/secret", watched.Contains).Marks);

        step = planner.OnWatched(plan.Anchors, "/srv", watched.Contains);
        Assert.Equal(["/srv/app"], step.Watches);
        watched.UnionWith(step.Watches);
        Assert.Equal([new Mark(MarkKind.Inode, "/srv/app/token", FileOperations.Open)], planner.OnWatched(plan.Anchors, "/srv/app", watched.Contains).Marks);
    }

    [Theory]
    [InlineData(StringOp.Prefix, "/")]
    [InlineData(StringOp.Postfix, ".pem")]
    [InlineData(StringOp.NotPrefix, "/usr/")]
    public void Only_a_rule_naming_nothing_narrower_than_everything_marks_whole_file_systems_and_says_so(StringOp op, string value)
    {
        var fs = new FakeFs().Dir("/usr");
        var plan = new MarkPlanner(fs).Plan([Rule(op, value)]);
        Assert.Equal(new HashSet<(MarkKind, string)> { (MarkKind.Filesystem, "/"), (MarkKind.Filesystem, "/proc"), (MarkKind.Filesystem, "/dev/shm") }, Marks(plan.Initial));
        Assert.Contains(plan.Notes, n => n.Contains("every file system is marked"));
    }

    [Fact]
    public void A_prefix_and_a_postfix_together_mark_by_the_prefix()
    {
        var fs = new FakeFs().Dir("/home/u/.ssh");
        var plan = new MarkPlanner(fs).Plan([new FanotifyRule("k", FileOperations.Read, [new(StringOp.Postfix, ["id_rsa"]), new(StringOp.Prefix, ["/home/"])], null)]);
        Assert.Equal(new HashSet<(MarkKind, string)> { (MarkKind.Children, "/home"), (MarkKind.Children, "/home/u"), (MarkKind.Children, "/home/u/.ssh") }, Marks(plan.Initial));
        Assert.All(plan.Initial.Marks, m => Assert.Equal(FileOperations.Read, m.Operations));
    }

    [Fact]
    public void A_prefix_over_more_directories_than_the_limit_marks_its_file_system_instead()
    {
        var fs = new FakeFs().Dir(Enumerable.Range(0, 20).Select(i => $"/big/d{i}").ToArray());
        var plan = new MarkPlanner(fs, maxTreeDirectories: 10).Plan([Rule(StringOp.Prefix, "/big/")]);
        Assert.Equal([new Mark(MarkKind.Filesystem, "/big", FileOperations.Open)], plan.Initial.Marks);
        Assert.Contains(plan.Notes, n => n.Contains("more than 10 directories"));
    }

    [Fact]
    public void Rules_of_several_operations_on_one_path_share_one_mark_with_every_operation()
    {
        var fs = new FakeFs().File("/bin/x");
        var plan = new MarkPlanner(fs).Plan([
            new FanotifyRule("a", FileOperations.Open, [new(StringOp.Equal, ["/bin/x"])], null),
            new FanotifyRule("b", FileOperations.Exec, [new(StringOp.Equal, ["/bin/x"])], null),
        ]);
        Assert.Equal([new Mark(MarkKind.Inode, "/bin/x", FileOperations.Open | FileOperations.Exec)], plan.Initial.Marks);
    }

    [Theory]
    [InlineData(StringOp.Equal, "etc/shadow", "not absolute")]
    [InlineData(StringOp.Prefix, "", "not absolute")]
    public void A_rule_with_a_relative_or_empty_path_is_refused_with_the_reason(StringOp op, string value, string error)
    {
        var plan = new MarkPlanner(new FakeFs()).Plan([Rule(op, value)]);
        Assert.Empty(plan.Rules);
        Assert.Contains(error, Assert.Single(plan.Errors).Error);
    }

    [Fact]
    public void A_rule_checking_no_operation_is_refused()
    {
        var plan = new MarkPlanner(new FakeFs()).Plan([new FanotifyRule("none", FileOperations.None, [], null)]);
        Assert.Equal(("none", "no operation (open, read or exec) to check"), Assert.Single(plan.Errors));
    }

    [Theory]
    [InlineData(StringOp.Equal, "/etc/shadow", "/etc/shadow", true)]
    [InlineData(StringOp.Equal, "/etc/shadow", "/etc/shadow-", false)]
    [InlineData(StringOp.Prefix, "/etc/sh", "/etc/shadow", true)]
    [InlineData(StringOp.Prefix, "/etc/", "/etcetera", false)]
    [InlineData(StringOp.Postfix, ".key", "/srv/tls/server.key", true)]
    [InlineData(StringOp.Postfix, ".key", "/srv/tls/server.keys", false)]
    [InlineData(StringOp.NotPrefix, "/tmp/", "/etc/x", true)]
    [InlineData(StringOp.NotPrefix, "/tmp/", "/tmp/x", false)]
    [InlineData(StringOp.NotEqual, "/a", "/a", false)]
    [InlineData(StringOp.NotPostfix, ".log", "/var/x.log", false)]
    [InlineData(StringOp.Prefix, "/données/", "/données/ü", true)]
    [InlineData(StringOp.Prefix, "/ETC/", "/etc/passwd", false)]
    public void The_path_matcher_compares_bytes_as_the_kernel_filters_do(StringOp op, string value, string path, bool expected) =>
        Assert.Equal(expected, new PathMatcher([new PathFilter(op, [value])]).Matches(Encoding.UTF8.GetBytes(path)));

    [Fact]
    public void Path_filters_are_anded_and_the_values_of_one_filter_ored()
    {
        var m = new PathMatcher([new(StringOp.Prefix, ["/a/", "/b/"]), new(StringOp.Postfix, [".pem"]), new(StringOp.NotEqual, ["/a/skip.pem"])]);
        Assert.True(m.Matches("/b/k.pem"u8));
        Assert.True(m.Matches("/a/k.pem"u8));
        Assert.False(m.Matches("/a/k.txt"u8));
        Assert.False(m.Matches("/c/k.pem"u8));
        Assert.False(m.Matches("/a/skip.pem"u8));
    }
}
