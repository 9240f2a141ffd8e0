using System.Text;

namespace SecurityAgent.Fanotify;

/// <summary>A rule's path filters compiled to UTF-8: byte-wise Equal/Prefix/Postfix (and their negations) over the
/// whole path, the comparison the kernel's string filters make, without allocating. All filters must hold (AND);
/// inside a filter any value may (OR).</summary>
public sealed class PathMatcher
{
    private readonly (StringOp Op, byte[][] Values)[] _filters;

    public PathMatcher(IEnumerable<PathFilter> filters) =>
        _filters = filters.Select(f => (f.Op, f.Values.Select(Encoding.UTF8.GetBytes).ToArray())).ToArray();

    public bool Matches(ReadOnlySpan<byte> path)
    {
        foreach (var (op, values) in _filters)
            if (!Holds(op, values, path))
                return false;
        return true;
    }

    private static bool Holds(StringOp op, byte[][] values, ReadOnlySpan<byte> s)
    {
        bool any = false;
        foreach (var v in values)
        {
            any = op switch
            {
                StringOp.Equal or StringOp.NotEqual => s.SequenceEqual(v),
                StringOp.Prefix or StringOp.NotPrefix => s.StartsWith(v),
                _ => s.EndsWith(v),
            };
            if (any) break;
        }
        return op is StringOp.Equal or StringOp.Prefix or StringOp.Postfix ? any : !any;
    }
}
