using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using SecurityAgent.Events;
using SecurityAgent.Export;
using SecurityAgent.Processes;

namespace SecurityAgent.Tests.Unit;

public class LoaderEventTests
{
    private static readonly byte[] Id = Convert.FromHexString("0123456789abcdef0123456789abcdef01234567");

    [Fact]
    public void A_process_loader_event_has_tetragons_fields_with_the_build_id_in_base64_and_validates_against_the_schema()
    {
        var line = JsonFormatTests.Render(new ProcessLoaderEvent(2_000_000_000, JsonFormatTests.Proc(20, null), JsonFormatTests.Proc(10, null), "/usr/lib/libz.so.1", Id));
        JsonFormatTests.AssertValid(line);
        var body = JsonDocument.Parse(line).RootElement.GetProperty("process_loader");
        Assert.Equal("/usr/lib/libz.so.1", body.GetProperty("path").GetString());
        Assert.Equal(Id, body.GetProperty("buildid").GetBytesFromBase64());
        Assert.Equal(20, body.GetProperty("process").GetProperty("pid").GetInt32());
        Assert.Equal(10, body.GetProperty("parent").GetProperty("pid").GetInt32());
    }

    [Fact]
    public void The_otlp_record_of_a_loader_event_names_the_file_and_its_build_id_in_hex()
    {
        var e = new ProcessLoaderEvent(2_000_000_000, JsonFormatTests.Proc(20, null), null, "/opt/lib/libx.so", Id);
        var r = Export.Otlp.OtlpMapping.ToLogRecord(e, "{}", new BootClock(1_700_000_000_000_000_000));
        Assert.Equal("securityagent.process_loader", r.EventName);
        var attrs = r.Attributes.ToDictionary(a => a.Key, a => a.Value.StringValue);
        Assert.Equal("/opt/lib/libx.so", attrs["file.path"]);
        Assert.Equal("0123456789abcdef0123456789abcdef01234567", attrs["securityagent.build_id"]);
    }

    [Fact]
    public void A_loader_record_decodes_to_its_file_and_a_path_longer_than_the_record_is_refused()
    {
        var raw = new byte[Wire.Loader.Data + 12];
        raw[Wire.Header.Op] = (byte)Op.Loader;
        BinaryPrimitives.WriteInt32LittleEndian(raw.AsSpan(Wire.Loader.Pid), 42);
        BinaryPrimitives.WriteUInt64LittleEndian(raw.AsSpan(Wire.Loader.Dev), (8UL << 20) | 1);
        BinaryPrimitives.WriteUInt64LittleEndian(raw.AsSpan(Wire.Loader.Ino), 777);
        BinaryPrimitives.WriteUInt16LittleEndian(raw.AsSpan(Wire.Loader.PathLen), 12);
        "/lib/libc.so"u8.CopyTo(raw.AsSpan(Wire.Loader.Data));
        var e = EventDecoder.Decode(raw).Loader;
        Assert.Equal((42, 777UL, "/lib/libc.so"), (e.Pid, e.Ino, Encoding.UTF8.GetString(e.Path)));
        BinaryPrimitives.WriteUInt16LittleEndian(raw.AsSpan(Wire.Loader.PathLen), 13);
        Assert.Throws<FormatException>(() => EventDecoder.Decode(raw));
    }

    [Theory]
    [InlineData(8, 1, 0x801UL)]          // sda1
    [InlineData(259, 3, 0x10303UL)]      // nvme0n1p3
    [InlineData(0, 300, 0x10002cUL)]     // an anonymous device (overlayfs, tmpfs) beyond minor 255
    public void The_kernels_device_number_converts_to_the_one_stat_reports(ulong major, ulong minor, ulong stat)
    {
        Assert.Equal(stat, BuildIds.UserDev((major << 20) | minor));
    }

    [Fact]
    public void The_gnu_build_id_note_is_found_among_other_notes_and_a_truncated_note_gives_none()
    {
        var notes = new List<byte>();
        void Note(uint type, string name, byte[] desc)
        {
            var n = Encoding.ASCII.GetBytes(name + "\0");
            notes.AddRange(BitConverter.GetBytes((uint)n.Length));
            notes.AddRange(BitConverter.GetBytes((uint)desc.Length));
            notes.AddRange(BitConverter.GetBytes(type));
            notes.AddRange(n);
            notes.AddRange(new byte[(4 - n.Length % 4) % 4]);
            notes.AddRange(desc);
            notes.AddRange(new byte[(4 - desc.Length % 4) % 4]);
        }
        Note(1, "GNU", new byte[16]);        // NT_GNU_ABI_TAG
        Note(3, "Go", new byte[5]);          // a build id under another name
        Note(3, "GNU", Id);
        Assert.Equal(Id, BuildIds.FindGnuBuildId(notes.ToArray()));
        Assert.Null(BuildIds.FindGnuBuildId(notes.ToArray().AsSpan(0, notes.Count - 4)));
    }
}
