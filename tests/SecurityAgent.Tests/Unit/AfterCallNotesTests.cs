using System.Buffers.Binary;
using System.Text;
using SecurityAgent.Events;
using SecurityAgent.Fanotify;
using SecurityAgent.Tests.Support;
using W = SecurityAgent.Events.PolicyWire.AfterNote;

namespace SecurityAgent.Tests.Unit;

/// <summary>Joining a fanotify change to the kernel's note of the call that made it, on a file laid out as the kernel
/// lays out sa_after_notes (the agent maps the BPF array the same way).</summary>
public class AfterCallNotesTests
{
    private const int Chmod = 90, Chown = 92, Unlink = 87;

    private static PathChange ChangesOf(int nr) => nr switch
    {
        Chmod => PathChange.Mode,
        Chown => PathChange.Owner,
        Unlink => PathChange.Delete | PathChange.Unlink,
        _ => PathChange.None,
    };

    private sealed class Ring : IDisposable
    {
        private readonly TempDir _dir = new();
        private readonly FileStream _file;
        private long _seq;

        public Ring()
        {
            _file = new FileStream(_dir.File("ring"), FileMode.Create, FileAccess.ReadWrite);
            _file.SetLength((long)Contract.AfterNotes * W.Length);
        }

        public AfterCallNotes Open(Func<int, int?>? ioWorkerProcess = null) => new((int)_file.SafeFileHandle.DangerousGetHandle(), ChangesOf, ioWorkerProcess);

        /// <summary>A seq handed out to a writer that has not written its entry yet (its seq stays 0 meanwhile).</summary>
        public long Claim() => ++_seq;

        public void Note(int tid, int nr, string name, int offset = 16, ulong ktime = 0, int? tgid = null, long? claimed = null)
        {
            var e = new byte[W.Length];
            long seq = claimed ?? ++_seq;
            BinaryPrimitives.WriteUInt64LittleEndian(e.AsSpan(W.Seq), (ulong)seq);
            BinaryPrimitives.WriteUInt64LittleEndian(e.AsSpan(W.Ktime), ktime);
            BinaryPrimitives.WriteInt32LittleEndian(e.AsSpan(W.Tid), tid);
            BinaryPrimitives.WriteInt32LittleEndian(e.AsSpan(W.Tgid), tgid ?? tid + 1000);
            BinaryPrimitives.WriteInt32LittleEndian(e.AsSpan(W.Nr), nr);
            BinaryPrimitives.WriteUInt16LittleEndian(e.AsSpan(W.Off), (ushort)offset);
            var bytes = Encoding.UTF8.GetBytes(name);
            BinaryPrimitives.WriteUInt16LittleEndian(e.AsSpan(W.Len), (ushort)bytes.Length);
            bytes.CopyTo(e.AsSpan(W.Name));
            _file.Position = (seq & (Contract.AfterNotes - 1)) * W.Length;
            _file.Write(e);
            _file.Flush();
        }

        public void Dispose()
        {
            _file.Dispose();
            _dir.Dispose();
        }
    }

    [Fact]
    public void A_change_joins_the_call_of_its_thread_that_named_the_entry_and_carries_the_string_passed()
    {
        using var ring = new Ring();
        using var notes = ring.Open();
        ring.Note(7, Chmod, "/elsewhere/other");
        ring.Note(8, Chmod, "/elsewhere/p/c1");
        ring.Note(7, Chmod, "/elsewhere/p/c1");
        var note = notes.Join(7, PathChange.Mode | PathChange.Owner, "c1"u8);
        Assert.NotNull(note);
        Assert.Equal((7, 1007, Chmod), (note.Tid, note.Tgid, note.Nr));
        Assert.Equal("/elsewhere/p/c1", Encoding.UTF8.GetString(note.Passed(16)!));
        Assert.Null(note.Passed(24));
        Assert.Null(notes.Join(9, PathChange.Mode | PathChange.Owner, "c1"u8)); // another thread made no such call
    }

    [Fact]
    public void A_chmod_then_a_chown_of_the_same_name_are_each_joined_to_their_own_call()
    {
        using var ring = new Ring();
        using var notes = ring.Open();
        ring.Note(7, Chmod, "p/c1");
        ring.Note(7, Chown, "p/c1");
        Assert.Equal(Chmod, notes.Join(7, PathChange.Mode | PathChange.Owner, "c1"u8)!.Nr);
        Assert.Equal(Chown, notes.Join(7, PathChange.Mode | PathChange.Owner, "c1"u8)!.Nr);
        Assert.Null(notes.Join(7, PathChange.Mode | PathChange.Owner, "c1"u8));
    }

    [Fact]
    public void The_two_changes_of_one_unlink_join_the_same_call_and_a_change_no_call_can_make_joins_none()
    {
        using var ring = new Ring();
        using var notes = ring.Open();
        ring.Note(7, Unlink, "/elsewhere/hl-u2");
        Assert.Null(notes.Join(7, PathChange.Mode | PathChange.Owner, "hl-u2"u8));
        var deleted = notes.Join(7, PathChange.Delete, "hl-u2"u8);
        var linkCount = notes.Join(7, PathChange.Link | PathChange.Unlink, default); // a watched file's link count: no name
        Assert.NotNull(deleted);
        Assert.Equal(deleted.Seq, linkCount!.Seq);
    }

    [Fact]
    public void Calls_noted_before_the_notes_were_opened_are_not_joined()
    {
        using var ring = new Ring();
        ring.Note(7, Chmod, "/p/c1");
        using var notes = ring.Open();
        Assert.Null(notes.Join(7, PathChange.Mode, "c1"u8));
        ring.Note(7, Chmod, "/p/c1");
        Assert.NotNull(notes.Join(7, PathChange.Mode, "c1"u8));
    }

    [Fact]
    public void A_change_fanotify_merged_joins_every_call_of_its_thread_that_made_it_before_the_read_and_none_after()
    {
        using var ring = new Ring();
        using var notes = ring.Open();
        for (int i = 0; i < 50; i++)
            ring.Note(7, Unlink, "/elsewhere/p/x1", ktime: 100 + (ulong)i);
        ring.Note(7, Chmod, "/elsewhere/p/c1", ktime: 200); // another change of the thread, read in the same batch
        ring.Note(7, Unlink, "/elsewhere/p/x1", ktime: 1_000); // after the read: a later notification's
        var joined = new List<AfterCallNote>();
        Assert.Equal(50, notes.JoinAll(7, PathChange.Delete, "x1"u8, 500, joined));
        Assert.Equal(50, joined.Select(n => n.Seq).Distinct().Count());
        Assert.All(joined, n => Assert.Equal("/elsewhere/p/x1", Encoding.UTF8.GetString(n.Passed(16)!)));
        Assert.Equal(Chmod, notes.Join(7, PathChange.Mode | PathChange.Owner, "c1"u8)!.Nr);
        joined.Clear();
        Assert.Equal(1, notes.JoinAll(7, PathChange.Delete, "x1"u8, 2_000, joined));
        Assert.Equal(52, joined[0].Seq);
    }

    [Fact]
    public void The_last_call_of_a_thread_before_a_read_is_joined_again_by_its_change_in_the_next_read_with_the_same_seq()
    {
        using var ring = new Ring();
        using var notes = ring.Open();
        ring.Note(7, Unlink, "/p/x1", ktime: 100);
        ring.Note(7, Unlink, "/p/x1", ktime: 200); // under way when the first change was read
        var joined = new List<AfterCallNote>();
        Assert.Equal(2, notes.JoinAll(7, PathChange.Delete, "x1"u8, 300, joined));
        var again = new List<AfterCallNote>();
        Assert.Equal(1, notes.JoinAll(7, PathChange.Delete, "x1"u8, 400, again));
        Assert.Equal(joined[1].Seq, again[0].Seq);
        Assert.Equal(0, notes.JoinAll(7, PathChange.Delete, "x1"u8, 500, again)); // once
    }

    [Fact]
    public void An_io_uring_request_noted_without_a_thread_is_joined_by_an_io_uring_worker_of_its_process_and_by_no_other_thread()
    {
        using var ring = new Ring();
        // 301 and 302: io-wq workers of process 300 (sa_io_workers); 303 a plain thread of it.
        using var notes = ring.Open(tid => tid is 301 or 302 ? 300 : null);
        ring.Note(0, Unlink, "/tmp/linkdir/key.txt", ktime: 100, tgid: 300); // IORING_OP_UNLINKAT, noted at submission
        ring.Note(0, Unlink, "/tmp/linkdir/other", ktime: 110, tgid: 400);   // another process's request of another name
        var joined = new List<AfterCallNote>();
        Assert.Equal(0, notes.JoinAll(303, PathChange.Delete, "key.txt"u8, 500, joined));
        Assert.Equal(0, notes.JoinAll(301, PathChange.Delete, "other"u8, 500, joined));
        Assert.Equal(1, notes.JoinAll(301, PathChange.Delete, "key.txt"u8, 500, joined));
        Assert.Equal((0, 300, "/tmp/linkdir/key.txt"), (joined[0].Tid, joined[0].Tgid, Encoding.UTF8.GetString(joined[0].Passed(16)!)));
        // The watched file's link count falling is the same call, whichever worker fanotify names for it.
        var linkCount = new List<AfterCallNote>();
        Assert.Equal(1, notes.JoinAll(302, PathChange.Link | PathChange.Unlink, default, 500, linkCount));
        Assert.Equal(joined[0].Seq, linkCount[0].Seq);
    }

    [Fact]
    public void A_call_noted_while_an_earlier_entry_is_still_being_written_is_joined_and_so_is_the_earlier_call_once_written()
    {
        using var ring = new Ring();
        using var notes = ring.Open();
        long slow = ring.Claim(); // a call on another CPU, still writing its note
        ring.Note(7, Unlink, "/elsewhere/p/x1", ktime: 100);
        var joined = new List<AfterCallNote>();
        Assert.Equal(1, notes.JoinAll(7, PathChange.Delete, "x1"u8, 500, joined));
        ring.Note(8, Chmod, "/elsewhere/p/c1", ktime: 90, claimed: slow);
        ring.Note(9, Chmod, "/elsewhere/p/c2", ktime: 110);
        Assert.Equal(Chmod, notes.Join(8, PathChange.Mode, "c1"u8)!.Nr);
        Assert.Equal(Chmod, notes.Join(9, PathChange.Mode, "c2"u8)!.Nr);
        Assert.Equal(0, notes.Lost);
    }

    [Fact]
    public void Notes_overwritten_before_they_were_read_are_counted_as_lost_and_the_rest_still_join()
    {
        using var ring = new Ring();
        using var notes = ring.Open();
        for (int i = 0; i < Contract.AfterNotes + 10; i++)
            ring.Note(7, Unlink, "/elsewhere/p/x1", ktime: 100 + (ulong)i);
        var joined = new List<AfterCallNote>();
        Assert.Equal(Contract.AfterNotes, notes.JoinAll(7, PathChange.Delete, "x1"u8, ulong.MaxValue - 1, joined));
        Assert.Equal(10, notes.Lost);
    }
}
