using SecurityAgent.Policies;

namespace SecurityAgent.Tests.Unit;

/// <summary>--explain says, per open hook, whether it is matched at the open's exit alone or at enter and exit, and why.</summary>
public sealed class ExitOnlyExplainTests
{
    private static string Explain(string actions) => PlanExplainer.Explain(new PolicyCompiler(PolicyValidatorTests.OurKernel, PolicyCompilerTests.Formats).Compile(
        Assert.Single(new PolicyValidator(PolicyValidatorTests.OurKernel, tracefs: null).ValidateText("p.yaml", $"""
        apiVersion: cilium.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: p
        spec:
          tracepoints:
          - subsystem: syscalls
            event: sys_enter_openat
            args:
            - index: 6
              type: string
            selectors:
            - matchArgs:
              - index: 6
                operator: Prefix
                values: ["/etc/"]{actions}
        """))));

    [Fact]
    public void An_openat_hook_that_only_posts_is_explained_as_matched_at_sys_exit_openat_alone_with_its_fallbacks()
    {
        var explain = Explain("");
        Assert.Contains("matched: at syscalls/sys_exit_openat alone (every selector only posts", explain);
        Assert.Contains("the name passed, resolved as at enter", explain);
        Assert.Contains("brings the enter back for all of them", explain);
        Assert.Contains("a kernel that refuses the exit-only program (logged once; status: exit_only_matching)", explain);
    }

    [Fact]
    public void An_openat_hook_that_kills_is_explained_as_matched_at_enter_and_again_at_exit_because_the_kill_must_come_first()
    {
        var explain = Explain("\n      matchActions:\n      - action: Sigkill");
        Assert.Contains("matched: at enter and again at syscalls/sys_exit_openat on the file opened (Sigkill must come before the call)", explain);
        Assert.DoesNotContain("alone", explain);
    }
}
