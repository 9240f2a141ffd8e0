using SecurityAgent.Bpf;
using SecurityAgent.Interop;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

[Collection("kernel")]
public class LibbpfErrorTests
{
    [Fact]
    public void A_verifier_rejection_names_the_call_the_program_and_shows_the_verifier_lines()
    {
        var elf = File.ReadAllBytes(Repo.File_("build", "bpf-test", "verifier_reject.bpf.o"));
        var e = Assert.Throws<LibbpfException>(() => BpfObject.Load(new BpfObjectSpec("verifier_reject", "verifier_reject.bpf.o"), elf));

        Assert.Contains("bpf_object__load", e.Call);
        Assert.Contains("reads_out_of_bounds", e.Call);
        Assert.Equal(Errno.EACCES, e.Errno);
        Assert.Contains("invalid access to map value", e.VerifierLog);
        Assert.Contains("verifier log", e.Message);
    }

    [Fact]
    public void A_corrupt_object_fails_at_open_with_the_call_named()
    {
        var e = Assert.Throws<LibbpfException>(() => BpfObject.Load(new BpfObjectSpec("garbage", "garbage.bpf.o"), new byte[64]));
        Assert.Contains("bpf_object__open_mem(garbage)", e.Message);
    }
}
