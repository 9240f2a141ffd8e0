using SecurityAgent.Events;
using SecurityAgent.Kernel;
using SecurityAgent.Policies;

namespace SecurityAgent.Tests.Unit;

/// <summary>Post imaHash (Tetragon's lsm_bprm_check.yaml): on bprm_check_security the event waits for a sleepable LSM
/// program that hashes the executed file; elsewhere, or on a kernel without bpf_ima_file_hash, a refusal naming why;
/// the hash rendered as Tetragon's ima_hash.</summary>
public sealed class ImaHashCompilerTests
{
    private static ValidatedPolicy Check(string lsmhooks, KernelFeatures? kernel = null) =>
        Assert.Single(new PolicyValidator(kernel ?? KernelFeatures.Everything, PolicyCompilerTests.Formats) { ForOtherKernel = kernel is null }
            .ValidateText("p.yaml", "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: p\nspec:\n  lsmhooks:\n" + lsmhooks));

    private static string Hook(string hook, string type) => $"""
          - hook: {hook}
            args:
            - index: 0
              type: {type}
            selectors:
            - matchArgs:
              - index: 0
                operator: Postfix
                values: ["/nop"]
              matchActions:
              - action: Override
                argError: -1
              - action: Post
                imaHash: true

        """;

    [Fact]
    public void ImaHash_on_bprm_check_security_holds_the_event_for_the_sleepable_program_and_defers_the_verdict_to_it()
    {
        var v = Check(Hook("bprm_check_security", "linux_binprm"));
        Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
        Assert.Empty(v.Notes);
        var hook = Assert.Single(v.Plan!.Hooks);
        var sel = Assert.Single(hook.Selectors);
        Assert.Equal(Actions.Override | Actions.Post | Actions.ImaHash, sel.Actions);
        var placed = new PlacedHook(1, 1, v.Plan, hook, Enforce: true, ScopeId: 0, FollowBits: []);
        var flags = PolicyEncoding.Layout([placed], hook.Target).Flags;
        Assert.True(flags.HasFlag(PolicyWire.PointFlags.Ima) && flags.HasFlag(PolicyWire.PointFlags.Return), flags.ToString());
        var b = PolicyEncoding.Selector(placed, 0, 1, [0, 1, 2, 3]);
        Assert.Equal(1, b[PolicyWire.Selector.RetHook]);
    }

    [Fact]
    public void ImaHash_on_another_lsm_hook_is_an_engine_gap_named_at_the_flag()
    {
        var v = Check(Hook("file_open", "file"));
        var note = Assert.Single(v.Notes);
        Assert.Equal(("spec.lsmhooks[0].selectors[0].matchActions[1].imaHash", 20, 18), (note.Field, note.Line, note.Column));
        Assert.Contains("imaHash on lsmhook file_open", note.Message);
        Assert.Contains("bprm_check_security", note.Message);
    }

    [Fact]
    public void ImaHash_on_a_kernel_whose_probe_refused_bpf_ima_file_hash_is_an_error_quoting_the_probe()
    {
        var kernel = KernelFeatures.Everything with { ImaFileHash = Availability.No("sleepable LSM program with bpf_ima_file_hash rejected") };
        var v = Check(Hook("bprm_check_security", "linux_binprm"), kernel);
        Assert.False(v.Ok);
        var e = Assert.Single(v.Diagnostics, x => x.Field.EndsWith("imaHash", StringComparison.Ordinal));
        Assert.StartsWith("needs a sleepable BPF LSM program calling bpf_ima_file_hash", e.Message);
        Assert.Contains("rejected", e.Message);
    }

    [Fact]
    public void ImaHash_on_a_kernel_that_enforces_exec_through_fanotify_says_it_needs_bpf_lsm()
    {
        var kernel = KernelFeatures.Everything with
        {
            Mechanisms = KernelFeatures.Everything.Mechanisms.ToDictionary(m => m.Key, m => m.Key == Mechanism.Lsm ? Availability.No("no BPF LSM") : m.Value),
        };
        var v = Check(Hook("bprm_check_security", "linux_binprm"), kernel);
        Assert.False(v.Ok);
        var e = Assert.Single(v.Diagnostics, x => x.Field.EndsWith("imaHash", StringComparison.Ordinal));
        Assert.StartsWith("needs BPF LSM for imaHash", e.Message);
        Assert.Contains("through fanotify", e.Message);
    }

    [Fact]
    public void The_hash_is_rendered_as_tetragon_does_algorithm_colon_hex_of_the_algorithms_digest_length()
    {
        var digest = Enumerable.Range(0, Contract.ImaHashMax).Select(i => (byte)i).ToArray();
        Assert.Equal("sha256:" + Convert.ToHexStringLower(digest[..32]), EventDecoder.ImaHashText(4, digest));
        Assert.Equal("sha1:" + Convert.ToHexStringLower(digest[..20]), EventDecoder.ImaHashText(2, digest));
        Assert.Equal("sha512:" + Convert.ToHexStringLower(digest), EventDecoder.ImaHashText(6, digest));
        Assert.Null(EventDecoder.ImaHashText(-95, digest)); // EOPNOTSUPP from the helper: no field, as in Tetragon
        Assert.Null(EventDecoder.ImaHashText(5, digest));   // sha384: Tetragon names no such prefix
    }
}
