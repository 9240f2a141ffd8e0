using SecurityAgent.Kernel;
using SecurityAgent.Policies;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Unit;

public class PolicyValidatorTests
{
    /// <summary>A kernel like ours (KERNEL.md): tracepoints and cgroup hooks, no BPF LSM, fentry or kprobes.</summary>
    internal static readonly KernelFeatures OurKernel = KernelFeatures.Everything with
    {
        Mechanisms = KernelFeatures.Everything.Mechanisms.ToDictionary(m => m.Key,
            m => m.Key is Mechanism.Lsm or Mechanism.Fentry or Mechanism.Kprobe ? Availability.No("refused here") : m.Value),
    };

    private static PolicyValidator Validator(KernelFeatures? f = null) => new(f ?? KernelFeatures.Everything, tracefs: null);

    private const string Good = """
        apiVersion: securityagent.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: etc-shadow-reads
        spec:
          options:
          - name: policy-mode
            value: monitor
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
                values: ["/etc/shadow"]
              matchBinaries:
              - operator: In
                values: ["/usr/bin/cat"]
              matchActions:
              - action: Sigkill
        """;

    [Fact]
    public void A_well_formed_policy_validates()
    {
        var r = Assert.Single(Validator().ValidateText("good.yaml", Good));
        Assert.True(r.Ok, string.Join("\n", r.Diagnostics));
        Assert.Equal("etc-shadow-reads", r.Name);
    }

    [Fact]
    public void A_typo_in_a_field_name_reports_file_line_column_the_field_and_a_suggestion()
    {
        var typo = Good.Replace("    selectors:", "    selectros:");
        var d = Assert.Single(Assert.Single(Validator().ValidateText("typo.yaml", typo)).Diagnostics);
        Assert.Equal(("typo.yaml", 15, 5), (d.File, d.Line, d.Column));
        Assert.Equal("spec.tracepoints[0].selectros", d.Field);
        Assert.Contains("unknown field 'selectros'", d.Message);
        Assert.Contains("did you mean 'selectors'", d.Message);
        Assert.StartsWith("typo.yaml:15:5: spec.tracepoints[0].selectros: unknown field", d.ToString());
    }

    [Fact]
    public void An_operator_that_does_not_fit_the_argument_type_is_an_error_at_the_operator()
    {
        var bad = Good.Replace("operator: Prefix", "operator: GreaterThan");
        var d = Assert.Single(Assert.Single(Validator().ValidateText("op.yaml", bad)).Diagnostics);
        Assert.Equal("spec.tracepoints[0].selectors[0].matchArgs[0].operator", d.Field);
        Assert.Equal(18, d.Line);
        Assert.Contains("does not apply to an argument of type 'string'", d.Message);
    }

    [Fact]
    public void One_bad_document_does_not_stop_the_others()
    {
        var text = Good + "\n---\n" + Good.Replace("etc-shadow-reads", "second").Replace("value: monitor", "value: sometimes")
                   + "\n---\nkey: [unclosed\n---\n" + Good.Replace("etc-shadow-reads", "third");
        var results = Validator().ValidateText("multi.yaml", text);
        Assert.Equal(4, results.Count);
        Assert.Equal(["etc-shadow-reads", "third"], results.Where(r => r.Ok).Select(r => r.Name!).Order());
        var mode = results.Single(r => r.Name == "second").Diagnostics.Single();
        Assert.Contains("policy-mode must be 'enforce' or 'monitor'", mode.Message);
        Assert.Equal(33, mode.Line);
        var syntax = results.SelectMany(r => r.Diagnostics).Single(d => d.Message.StartsWith("YAML syntax error"));
        Assert.Equal(52, syntax.Line); // the broken flow sequence is on line 51; the parser gives up at the end of its document
    }

    [Fact]
    public void More_than_five_selectors_on_a_hook_are_refused()
    {
        var sel = "    - matchActions:\n      - action: Post\n";
        var text = Good[..Good.IndexOf("    selectors:")] + "    selectors:\n" + string.Concat(Enumerable.Repeat(sel, 6));
        var d = Assert.Single(Assert.Single(Validator().ValidateText("six.yaml", text)).Diagnostics);
        Assert.Contains("at most 5", d.Message);
    }

    [Fact]
    public void An_unsupported_feature_is_an_explicit_error_never_ignored()
    {
        var text = Good.Replace("      - operator: In\n        values: [\"/usr/bin/cat\"]", "      - operator: In\n        followChildren: true\n        values: [\"/usr/bin/cat\"]");
        var d = Assert.Single(Assert.Single(Validator().ValidateText("u.yaml", text)).Diagnostics);
        Assert.StartsWith("unsupported:", d.Message);
    }

    [Fact]
    public void Override_on_a_tracepoint_and_signal_without_argsig_are_refused_with_the_reason()
    {
        var text = Good.Replace("      - action: Sigkill", "      - action: Override\n        argError: -1\n      - action: Signal");
        var diags = Assert.Single(Validator().ValidateText("a.yaml", text)).Diagnostics;
        Assert.Contains(diags, d => d.Message.Contains("Override cannot change a tracepoint"));
        Assert.Contains(diags, d => d.Message.Contains("Signal needs argSig"));
    }

    public static IEnumerable<object[]> PeerPolicies() =>
        SharedCorpus.Present
            ? Directory.GetFiles(SharedCorpus.TetragonPolicies, "*.yaml").Order().Select(f => new object[] { Path.GetFileName(f) })
            : [["(absent)"]];

    [SharedCorpusTheory]
    [MemberData(nameof(PeerPolicies))]
    public void Every_tetragon_example_validates_or_fails_with_a_clear_unsupported_or_kernel_reason(string file)
    {
        var path = Path.Combine(SharedCorpus.TetragonPolicies, file);
        Assert.True(File.Exists(path), "peer policy corpus not found at " + path);
        var results = new PolicyValidator(OurKernel, tracefs: null).ValidateFile(path);
        Assert.NotEmpty(results);
        foreach (var d in results.SelectMany(r => r.Diagnostics))
            Assert.True(d.Message.StartsWith("unsupported:") || d.Message.StartsWith("needs "),
                $"not a clear unsupported/needs-kernel message: {d}");
    }

    [SharedCorpusFact]
    public void The_tracepoint_and_syscall_examples_of_tetragon_validate_cleanly_on_our_kernel()
    {
        foreach (var file in new[] { "sys_mount.yaml", "sys_ptrace.yaml", "sys_setuid.yaml", "tracepoint-lseek-pid.yaml", "list-syscalls-tracepoint.yaml" })
        {
            var results = new PolicyValidator(OurKernel, tracefs: null).ValidateFile(Path.Combine(SharedCorpus.TetragonPolicies, file));
            Assert.All(results, r => Assert.True(r.Ok, file + ": " + string.Join("\n", r.Diagnostics)));
        }
    }

    [Fact]
    public void Tracepoint_fields_are_indexed_with_the_common_fields_as_tetragon_counts_them()
    {
        var f = TracepointFormat.Parse("syscalls", "sys_enter_openat", """
            name: sys_enter_openat
            ID: 782
            format:
            	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
            	field:unsigned char common_flags;	offset:2;	size:1;	signed:0;
            	field:unsigned char common_preempt_count;	offset:3;	size:1;	signed:0;
            	field:int common_pid;	offset:4;	size:4;	signed:1;

            	field:int __syscall_nr;	offset:8;	size:4;	signed:1;
            	field:int dfd;	offset:16;	size:8;	signed:0;
            	field:const char * filename;	offset:24;	size:8;	signed:0;
            	field:int flags;	offset:32;	size:8;	signed:0;
            """);
        Assert.Equal(782, f.Id);
        Assert.Equal("filename", f.Fields[6].Name);
        Assert.Equal(24, f.Fields[6].Offset);
        Assert.Equal("const char *", f.Fields[6].CType);
    }
}
