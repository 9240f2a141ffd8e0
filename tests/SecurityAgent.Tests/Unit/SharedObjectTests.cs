using SecurityAgent.Bpf;
using SecurityAgent.Elf;

namespace SecurityAgent.Tests.Unit;

/// <summary>The shared maps object loads first at start-up, on the path to "ready": libbpf parses the kernel's BTF
/// (~65 ms of CPU) for an object with CO-RE relocations even when it has no program to load, so it must have no code.</summary>
public class SharedObjectTests
{
    [Fact]
    public void The_shared_maps_object_has_no_code_and_no_CO_RE_relocations_so_loading_it_parses_no_kernel_BTF()
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(path, EmbeddedObjects.Read(BpfNames.Shared.File));
            using var h = File.OpenHandle(path);
            var sections = new ElfFile(h, 64 << 20).Sections();
            Assert.DoesNotContain(sections, s => s.Name == ".BTF.ext");
            Assert.All(sections.Where(s => s.Name == ".text"), s => Assert.Equal(0ul, s.Size));
            Assert.Contains(sections, s => s.Name == ".maps");
            Assert.Empty(BpfNames.Shared.Programs);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
