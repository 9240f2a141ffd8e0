using SecurityAgent.Fuzz;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Unit;

public class PolicyFuzzTests
{
    [Fact]
    public void Three_thousand_mutated_policies_raise_no_exception_take_under_a_second_each_and_every_diagnostic_has_a_position()
    {
        var corpus = PolicyFuzzer.Corpus(Repo.Root, Repo.Shared, out _);
        var report = PolicyFuzzer.Run(corpus, count: 3000, seed: 20261122, threads: 2);
        Assert.True(report.Clean, report + "\n" + string.Join("\n", report.Findings.Take(5).Select(f => $"{f.Kind} ({f.Mutations}): {f.Detail}\n{f.Input}")));
        Assert.Equal(3000, report.Inputs);
        Assert.True(report.Accepted > 50, "the mutations should leave some policies valid: " + report);
        Assert.True(report.Errors > 1000, "the mutations should break most policies: " + report);
    }

    [Fact]
    public void The_same_seed_yields_the_same_inputs()
    {
        var corpus = PolicyFuzzer.Corpus(Repo.Root, null, out _);
        var a = Enumerable.Range(0, 50).Select(i => new Mutator(corpus, (ulong)i).Next(out _)).ToList();
        var b = Enumerable.Range(0, 50).Select(i => new Mutator(corpus, (ulong)i).Next(out _)).ToList();
        Assert.Equal(a, b);
        Assert.True(a.Distinct().Count() > 40);
    }
}
