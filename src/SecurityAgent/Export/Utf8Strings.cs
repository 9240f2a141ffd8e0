using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace SecurityAgent.Export;

/// <summary>The strings of the UTF-8 names events carry (paths, mostly), kept for names that come back: a process opens
/// the same few files again and again, and each repeat then costs a comparison of its bytes instead of a transcoding
/// and a string (and the collection that follows). Direct-mapped: a name evicts the one in its slot. Lock-free, any
/// thread: an entry is immutable, and a slot is one reference.</summary>
public static class Utf8Strings
{
    private const int Slots = 512, Longest = 256; // at most ~400 KB held, ~550 KB with the JSON of each

    /// <summary>A kept name: its bytes, its string, and its JSON string value (escaped UTF-8) once an exporter asked.</summary>
    public sealed class Entry(byte[] utf8, string text)
    {
        public readonly byte[] Utf8 = utf8;
        public readonly string Text = text;
        private JsonBox? _json;

        private sealed class JsonBox(JsonEncodedText json)
        {
            public readonly JsonEncodedText Json = json;
        }

        /// <summary><see cref="Text"/> as the JSON exporters write a string value (escaped with their relaxed encoder),
        /// encoded at the first call: each repeat of the name is then a copy of bytes, not a transcoding and an escape
        /// scan of its string. Any thread (a race encodes twice, the same bytes).</summary>
        public JsonEncodedText Json => (_json ??= new JsonBox(JsonEncodedText.Encode(Text, JavaScriptEncoder.UnsafeRelaxedJsonEscaping))).Json;
    }

    private static readonly Entry?[] Table = new Entry?[Slots];

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static string Get(ReadOnlySpan<byte> utf8) => utf8.IsEmpty ? "" : utf8.Length > Longest ? Encoding.UTF8.GetString(utf8) : Kept(utf8).Text;

    /// <summary>The kept entry of a name (null for the empty one and those too long to keep): its string and its JSON.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static Entry? GetEntry(ReadOnlySpan<byte> utf8) => utf8.IsEmpty || utf8.Length > Longest ? null : Kept(utf8);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static Entry Kept(ReadOnlySpan<byte> utf8)
    {
        ref var slot = ref Table[Slot(utf8)];
        if (slot is { } e && utf8.SequenceEqual(e.Utf8)) return e;
        return slot = new Entry(utf8.ToArray(), Encoding.UTF8.GetString(utf8));
    }

    // Length, the first and the last 8 bytes: names differing only in the middle share a slot, and evict each other.
    private static int Slot(ReadOnlySpan<byte> s)
    {
        ulong head, tail;
        if (s.Length >= 8)
        {
            head = BinaryPrimitives.ReadUInt64LittleEndian(s);
            tail = BinaryPrimitives.ReadUInt64LittleEndian(s[^8..]);
        }
        else
        {
            head = s[0];
            tail = s[^1];
        }
        ulong h = (head * 0x9E3779B97F4A7C15UL) ^ (tail * 0xC2B2AE3D27D4EB4FUL) ^ (ulong)s.Length;
        return (int)((h ^ (h >> 29)) & (Slots - 1));
    }
}
