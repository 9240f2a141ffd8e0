using System.Buffers.Binary;
using SecurityAgent.Events;
using SecurityAgent.Kernel;
using SecurityAgent.Policies;
using SecurityAgent.Processes;
using W = SecurityAgent.Events.PolicyWire;

namespace SecurityAgent.Tests.Unit;

/// <summary>matchNamespaces, matchNamespaceChanges, matchCapabilityChanges, isNamespaceCapability and matchPIDs
/// isNamespacePID+followForks: compiled with Tetragon's meaning into the selector record the kernel checks.</summary>
public class NamespaceSelectorTests
{
    private static ValidatedPolicy Check(string selector, KernelFeatures? kernel = null) =>
        Assert.Single(new PolicyValidator(kernel ?? PolicyValidatorTests.OurKernel, PolicyCompilerTests.Formats)
            .ValidateText("ns.yaml", $"""
                apiVersion: cilium.io/v1alpha1
                kind: TracingPolicy
                metadata:
                  name: ns
                spec:
                  tracepoints:
                  - subsystem: syscalls
                    event: sys_enter_setuid
                    args:
                    - index: 5
                      type: int
                    selectors:
                    - {selector.Trim().Replace("\n", "\n      ")}
                """));

    private static SelectorPlan Selector(string selector)
    {
        var v = Check(selector);
        Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
        return Assert.Single(Assert.Single(v.Plan!.Hooks).Selectors);
    }

    private static byte[] Record(string selector)
    {
        var plan = Check(selector).Plan!;
        return PolicyEncoding.Selector(new PlacedHook(1, 1, plan, plan.Hooks[0], Enforce: true, ScopeId: 0, FollowBits: []), 0, 1, [0]);
    }

    private static string Explain(string selector) => PlanExplainer.Explain(Check(selector).Plan!);

    private static uint U32(byte[] b, int at) => BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(at));

    [Fact]
    public void MatchNamespaces_host_ns_is_the_inode_of_the_host_inits_namespace_in_the_selector_record()
    {
        var b = Record("""
            matchNamespaces:
            - namespace: Net
              operator: NotIn
              values: [host_ns, "4026531999"]
            """);
        Assert.Equal(1, b[W.Selector.NsAny]);
        Assert.Equal(1, b[W.Selector.NsNmatch]);
        int e = W.Selector.NsMatch;
        Assert.Equal((byte)Wire.Namespace.Net, b[e + W.NsMatch.Ns]);
        Assert.Equal((byte)Cmp.NotIn, b[e + W.NsMatch.Cmp]);
        Assert.Equal(2, b[e + W.NsMatch.Nvals]);
        Assert.Equal(ProcFsScanner.ReadHostNamespaces()[(int)Wire.Namespace.Net], U32(b, e + W.NsMatch.Vals));
        Assert.NotEqual(0u, U32(b, e + W.NsMatch.Vals));
        Assert.Equal(4026531999u, U32(b, e + W.NsMatch.Vals + 4));
    }

    [Fact]
    public void A_selector_without_these_checks_leaves_them_all_zero_so_the_kernel_skips_them()
    {
        var b = Record("""
            matchPIDs:
            - operator: NotIn
              isNamespacePID: true
              values: [1]
            """);
        Assert.All(b[W.Selector.NsAny..W.Selector.Length], x => Assert.Equal(0, x));
    }

    [Fact]
    public void MatchNamespaces_limits_and_bad_values_are_errors_at_their_position()
    {
        var v = Check("""
            matchNamespaces:
            - namespace: Uts
              operator: In
              values: ["1", "2", "3", "4", "5"]
            - namespace: Mnt
              operator: In
              values: [hostns]
            """);
        Assert.Contains(v.Diagnostics, d => d.Message == "5 namespaces, at most 4 per matchNamespaces entry" && d.Field.EndsWith("matchNamespaces[0].values[4]"));
        Assert.Contains(v.Diagnostics, d => d.Message.Contains("'hostns' is neither a namespace inode number nor host_ns"));
    }

    [Fact]
    public void MatchNamespaceChanges_In_is_the_mask_of_the_named_namespaces_and_the_explanation_says_since_exec()
    {
        var sel = Selector("""
            matchNamespaceChanges:
            - operator: In
              values: [Uts, Mnt]
            """);
        Assert.Equal((Cmp.In, (ushort)(1 << (int)Wire.Namespace.Uts | 1 << (int)Wire.Namespace.Mnt)), (sel.NamespaceChangeCmp, sel.NamespaceChangeMask));
        Assert.Contains("namespace changes In [Uts, Mnt]: one of these differs from the one the process had at exec", Explain("""
            matchNamespaceChanges:
            - operator: In
              values: [Uts, Mnt]
            """));
    }

    [Fact]
    public void MatchNamespaceChanges_with_an_unknown_namespace_is_an_error()
    {
        var v = Check("""
            matchNamespaceChanges:
            - operator: NotIn
              values: [Pids]
            """);
        Assert.Contains(v.Diagnostics, d => d.Message.StartsWith("'Pids' is not a namespace"));
    }

    [Fact]
    public void MatchCapabilityChanges_carries_set_mask_and_isNamespaceCapability_as_the_host_user_namespace()
    {
        var b = Record("""
            matchCapabilityChanges:
            - type: Effective
              operator: In
              isNamespaceCapability: true
              values: [CAP_SYS_ADMIN, CAP_NET_RAW]
            """);
        Assert.Equal((byte)Cmp.In, b[W.Selector.CapChgCmp]);
        Assert.Equal(0, b[W.Selector.CapChgSet]);
        Assert.Equal(1UL << 21 | 1UL << 13, BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(W.Selector.CapChgMask)));
        Assert.Equal(ProcFsScanner.ReadHostNamespaces()[(int)Wire.Namespace.User], U32(b, W.Selector.CapChgUserns));
        Assert.Equal(0u, U32(b, W.Selector.CapUserns));
        Assert.Equal(1, b[W.Selector.NsAny]);
    }

    [Fact]
    public void MatchCapabilities_isNamespaceCapability_compiles_and_is_explained()
    {
        var sel = Selector("""
            matchCapabilities:
            - type: Permitted
              operator: In
              isNamespaceCapability: true
              values: [CAP_SYS_ADMIN]
            """);
        Assert.True(sel.CapNamespaceOnly);
        Assert.True(sel.HasNamespaceChecks);
        Assert.Contains("capabilities In mask 0x200000 (permitted), only outside the host's user namespace", Explain("""
            matchCapabilities:
            - type: Permitted
              operator: In
              isNamespaceCapability: true
              values: [CAP_SYS_ADMIN]
            """));
    }

    [Fact]
    public void MatchCapabilityChanges_with_an_unknown_capability_is_an_error()
    {
        var v = Check("""
            matchCapabilityChanges:
            - type: Effective
              operator: In
              values: [CAP_FLY]
            """);
        Assert.Contains(v.Diagnostics, d => d.Message == "unknown capability 'CAP_FLY'");
    }

    [Fact]
    public void MatchPIDs_NotIn_1_with_isNamespacePID_and_followForks_walks_the_ancestry_and_says_so()
    {
        const string sel = """
            matchPIDs:
            - operator: NotIn
              followForks: true
              isNamespacePID: true
              values: [1]
            """;
        var plan = Selector(sel);
        Assert.True(plan.PidTree);
        Assert.False(plan.HasNamespaceChecks);
        var b = Record(sel);
        Assert.Equal(1, b[W.Selector.PidTree]);
        Assert.Equal(0, b[W.Selector.Follow]); // not the host-pid followForks set
        Assert.Contains("or of one of its 8 nearest ancestors", Explain(sel));
        Assert.Contains("NotIn [1] selects processes not descended from their pid namespace's init (kubectl exec, nsenter sessions)", Explain(sel));
    }

    [Fact]
    public void MatchPIDs_with_host_pids_and_followForks_keeps_the_followed_set_not_the_ancestry_walk()
    {
        var plan = Selector("""
            matchPIDs:
            - operator: In
              followForks: true
              values: [4242]
            """);
        Assert.False(plan.PidTree);
        Assert.True(plan.FollowForks);
    }

    [Fact]
    public void Namespace_selectors_on_a_hook_without_a_task_are_refused()
    {
        var v = Assert.Single(new PolicyValidator(PolicyValidatorTests.OurKernel, PolicyCompilerTests.Formats).ValidateText("c.yaml", """
            apiVersion: cilium.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: c
            spec:
              lsmhooks:
              - hook: socket_connect
                args:
                - index: 1
                  type: sockaddr
                selectors:
                - matchNamespaceChanges:
                  - operator: In
                    values: [Net]
            """));
        Assert.False(v.Ok);
    }
}

/// <summary>The fanotify decision (an lsm deny where the kernel has no BPF LSM) has no per-process record: these
/// selectors are refused there rather than dropped.</summary>
public class NamespaceSelectorFanotifyTests
{
    [Fact]
    public void A_namespace_change_selector_on_a_fanotify_decision_is_refused_naming_the_mechanism()
    {
        var yaml = FanotifyPlacementTests.Policy("file_open", "file", "Prefix", "/tmp/t/secret/",
            extra: "      matchNamespaceChanges:\n      - operator: In\n        values: [Mnt]\n");
        var v = Assert.Single(new PolicyValidator(PolicyValidatorTests.OurKernel, tracefs: null).ValidateText("p.yaml", yaml));
        Assert.False(v.Ok);
        Assert.Contains(v.Diagnostics, d => d.Message.StartsWith("unsupported: matchNamespaces, matchNamespaceChanges") && d.Message.Contains("fanotify"));
    }
}
