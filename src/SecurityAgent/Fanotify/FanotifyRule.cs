namespace SecurityAgent.Fanotify;

/// <summary>What a rule checks. Each kind is one fanotify permission event: <see cref="Open"/> is FAN_OPEN_PERM (the
/// file_open LSM hook; an exec opens its binary too), <see cref="Read"/> FAN_ACCESS_PERM (file_permission for reads:
/// asked on every read(2), not on writes, nor on page faults of an mmap), <see cref="Exec"/> FAN_OPEN_EXEC_PERM
/// (bprm_check_security: the binary an execve opens).</summary>
[Flags]
public enum FileOperations
{
    None = 0,
    Open = 1,
    Read = 2,
    Exec = 4,
}

/// <summary>How a path (or a binary) is compared, as the kernel filters compare strings: byte-wise, whole path.</summary>
public enum StringOp { Equal, Prefix, Postfix, NotEqual, NotPrefix, NotPostfix }

/// <summary>One path filter: true when the path compares true with any value (for the Not* operators: with none).
/// A rule's filters are ANDed, as the matchArgs entries of one selector are.</summary>
public sealed record PathFilter(StringOp Op, IReadOnlyList<string> Values);

/// <summary>Enforce denies (the opener gets EPERM); Monitor allows and reports what would have been denied.</summary>
public enum RuleMode { Enforce, Monitor }

/// <summary>The answer when no decision is reached in time (overload, a slow predicate, an internal error): allow
/// (fail-open, the default), or deny (fail-closed; only an enforcing rule denies on failure).</summary>
public enum FailMode { Open, Closed }

/// <summary>One deny or monitor rule, plain data: which operations, on which paths, by which processes.
/// <paramref name="Id"/> comes back in every <see cref="FanotifyReport"/> of the rule.</summary>
/// <param name="Process">Who the rule applies to; null: everybody (the agent, pid 1 and kernel threads are always allowed).</param>
/// <param name="Group">Rules of one group are a policy hook's selectors: of those that match an event, only the first
/// (in rule order) decides and reports, as the kernel takes a hook's first matching selector. Null: a group of its own.</param>
public sealed record FanotifyRule(
    string Id,
    FileOperations Operations,
    IReadOnlyList<PathFilter> Paths,
    IProcessPredicate? Process,
    RuleMode Mode = RuleMode.Enforce,
    FailMode FailMode = FailMode.Open,
    string? Group = null);
