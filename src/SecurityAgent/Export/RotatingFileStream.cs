namespace SecurityAgent.Export;

/// <summary>An append-only file that rotates by size: PATH → PATH.1 → PATH.2 ... up to maxBackups, oldest
/// deleted. Rotation renames (never copies or truncates), so a reader that follows the file by name, as
/// `tail -F` does, reads the rest of the old file and then the new one: no line is lost. Rotation happens
/// only between writes, which the exporter makes whole lines.</summary>
public sealed class RotatingFileStream(string path, long maxBytes, int maxBackups) : Stream
{
    private FileStream _file = Open(path);

    public long Rotations { get; private set; }

    private static FileStream Open(string path) =>
        new(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete, 64 * 1024, FileOptions.None);

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (maxBytes > 0 && _file.Length > 0 && _file.Length + buffer.Length > maxBytes)
            Rotate();
        _file.Write(buffer);
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    private void Rotate()
    {
        _file.Flush();
        _file.Dispose();
        if (maxBackups <= 0)
            File.Delete(path);
        else
        {
            File.Delete($"{path}.{maxBackups}");
            for (int i = maxBackups - 1; i >= 1; i--)
                if (File.Exists($"{path}.{i}"))
                    File.Move($"{path}.{i}", $"{path}.{i + 1}");
            File.Move(path, path + ".1");
        }
        _file = Open(path);
        Rotations++;
    }

    public override void Flush() => _file.Flush();
    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => _file.Length;
    public override long Position { get => _file.Position; set => throw new NotSupportedException(); }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) _file.Dispose();
        base.Dispose(disposing);
    }
}
