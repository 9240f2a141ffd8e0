using System.Text;
using SecurityAgent.Events;
using SecurityAgent.Fanotify;
using SecurityAgent.Policies;

namespace SecurityAgent.Tests.Unit;

/// <summary>Which hooks on name-only syscalls are matched again after the call (fanotify), what --explain says about
/// them, and that a call is reported once.</summary>
public class PathChangeTests
{
    private static HookPlan Hook(string call, string selector, string args = "    - index: 0\n      type: string\n")
    {
        var yaml = $"""
            apiVersion: cilium.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: p
            spec:
              kprobes:
              - call: {call}
                syscall: true
                args:
            {args}    selectors:
            {selector}
            """;
        var v = Assert.Single(new PolicyValidator(PolicyValidatorTests.OurKernel, tracefs: null).ValidateText("p.yaml", yaml));
        Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
        return Assert.Single(new PolicyCompiler(PolicyValidatorTests.OurKernel, Formats).Compile(v).Hooks);
    }

    private static TracepointFormat? Formats(string subsys, string ev) => ev switch
    {
        "sys_enter_unlink" => PolicyCompilerTests.Syscall(ev, ("const char *", "pathname")),
        "sys_enter_rename" or "sys_enter_link" => PolicyCompilerTests.Syscall(ev, ("const char *", "oldname"), ("const char *", "newname")),
        "sys_enter_chmod" or "sys_enter_mkdir" => PolicyCompilerTests.Syscall(ev, ("const char *", "filename"), ("umode_t", "mode")),
        "sys_enter_chown" => PolicyCompilerTests.Syscall(ev, ("const char *", "filename"), ("uid_t", "user"), ("gid_t", "group")),
        "sys_enter_truncate" => PolicyCompilerTests.Syscall(ev, ("const char *", "path"), ("long", "length")),
        _ => PolicyCompilerTests.Formats(subsys, ev),
    };

    private const string PrefixEtc = "    - matchArgs:\n      - index: 0\n        operator: Prefix\n        values: [\"/etc/\"]";

    [Theory]
    [InlineData("sys_unlink", PathChange.Delete | PathChange.Unlink)]
    [InlineData("sys_rename", PathChange.Rename)]
    [InlineData("sys_chmod", PathChange.Mode)]
    [InlineData("sys_chown", PathChange.Owner)]
    [InlineData("sys_mkdir", PathChange.Directory)]
    [InlineData("sys_truncate", PathChange.Shortened)]
    [InlineData("sys_link", PathChange.Link)]
    public void A_name_only_syscall_with_a_prefix_is_matched_after_the_call_and_explained_as_after_the_fact(string call, PathChange changes)
    {
        var hook = Hook(call, PrefixEtc);
        Assert.Equal(changes, PathChanges.ChangesOf(hook));
        Assert.True(PathChanges.Covered(hook, out _));
        var explained = PathArguments.Explain(hook, hook.Args[0], Cmp.Prefix);
        Assert.Contains("after the call through fanotify", explained);
        Assert.Contains("enforced after the syscall", explained);
    }

    [Fact]
    public void An_open_is_not_a_name_only_syscall()
    {
        var hook = Hook("sys_openat", PrefixEtc.Replace("index: 0", "index: 1"), "    - index: 1\n      type: string\n");
        Assert.Equal(PathChange.None, PathChanges.ChangesOf(hook));
        Assert.False(PathChanges.Covered(hook, out _));
    }

    [Theory]
    [InlineData("    - matchArgs:\n      - index: 0\n        operator: Postfix\n        values: [\"/shadow\"]", "no Equal or Prefix path")]
    [InlineData(PrefixEtc + "\n      matchPIDs:\n      - operator: In\n        values: [42]", "matchPIDs")]
    [InlineData(PrefixEtc + "\n      - index: 1\n        operator: Equal\n        values: [\"511\"]", "other than a file name")]
    public void A_hook_the_after_the_call_match_cannot_evaluate_keeps_its_entry_match_and_explain_says_why(string selector, string why)
    {
        var hook = Hook("sys_chmod", selector, "    - index: 0\n      type: string\n    - index: 1\n      type: int\n");
        Assert.False(PathChanges.Covered(hook, out var reason));
        Assert.Contains(why, reason);
        Assert.Contains("not matched after the call", PathArguments.Explain(hook, hook.Args[0], Cmp.Prefix));
    }

    private static PolicyKernelEvent Event(string path, ulong ktime, bool afterCall, ulong seq = 0) =>
        new(ktime, 10, 10, 3, 0, 0, 0, 0, [0], [Encoding.UTF8.GetBytes(path)]) { AfterCall = afterCall, NoteSeq = seq };

    [Fact]
    public void Calls_are_told_apart_by_their_note_so_repeated_calls_on_one_path_are_each_reported_and_a_kernel_match_and_its_echo_are_one()
    {
        var m = new AfterCallMatches();
        m.Cover(3, [0]);
        // 50 unlinks of one path by one process within a millisecond, each its own call (seq): 50 reports.
        for (ulong i = 1; i <= 50; i++)
            Assert.False(m.Repeats(Event("/etc/shadow", 1_000 + i, afterCall: true, seq: i)));
        // The second notification of a call (FAN_DELETE, then the watched file's link count) joins the same note.
        Assert.True(m.Repeats(Event("/etc/shadow", 2_000, afterCall: true, seq: 50)));
        // The kernel matched call 51 at entry: its echo is a repeat; call 52, not matched at entry, is reported.
        m.Kernel(Event("/etc/shadow", 3_000, afterCall: false, seq: 51));
        Assert.True(m.Repeats(Event("/etc/shadow", 3_001, afterCall: true, seq: 51)));
        Assert.False(m.Repeats(Event("/etc/shadow", 3_002, afterCall: true, seq: 52)));
        // Another hook's report of the same call is its own event.
        m.Cover(4, [0]);
        Assert.False(m.Repeats(Event("/etc/shadow", 3_003, afterCall: true, seq: 52) with { HookId = 4 }));
    }

    [Fact]
    public void A_call_the_kernel_matched_at_entry_is_not_reported_again_after_it_and_two_notifications_of_one_change_are_one()
    {
        var m = new AfterCallMatches();
        m.Cover(3, [0]);
        m.Kernel(Event("/etc/shadow", 1_000, afterCall: false));
        Assert.True(m.Repeats(Event("/etc/shadow", 2_000, afterCall: true)));
        Assert.False(m.Repeats(Event("/etc/gshadow", 2_000, afterCall: true)));
        Assert.True(m.Repeats(Event("/etc/gshadow", 3_000, afterCall: true))); // FAN_DELETE, then the link count
        Assert.False(m.Repeats(Event("/etc/shadow", 5_000_000_000, afterCall: true))); // long after: another call
        m.Cover(3, null);
        m.Kernel(Event("/etc/passwd", 6_000_000_000, afterCall: false));
        Assert.False(m.Repeats(Event("/etc/passwd", 6_000_000_001, afterCall: true)));
    }

    [Fact]
    public void A_change_without_a_note_read_seconds_after_the_kernel_matched_its_call_is_still_one_event_and_the_next_change_is_another()
    {
        var m = new AfterCallMatches();
        m.Cover(3, [0]);
        const ulong s = 1_000_000_000;
        // An io_uring unlink matched at submission; the agent reads its change 3 s later (a loaded machine): both of its
        // notifications (the watched file's link count, then FAN_DELETE) repeat the kernel's match.
        m.Kernel(Event("/etc/shadow", 10 * s, afterCall: false));
        Assert.True(m.Repeats(Event("/etc/shadow", 13 * s, afterCall: true)));
        Assert.True(m.Repeats(Event("/etc/shadow", 13 * s + 1_000, afterCall: true)));
        // The same process unlinks it again 2 s later, through a name the kernel did not match at submission: reported.
        Assert.False(m.Repeats(Event("/etc/shadow", 15 * s, afterCall: true)));
        // A kernel match no change followed (the call failed) is forgotten after 30 s: a later change is reported.
        m.Kernel(Event("/etc/gshadow", 20 * s, afterCall: false));
        Assert.False(m.Repeats(Event("/etc/gshadow", 51 * s, afterCall: true)));
    }
}
