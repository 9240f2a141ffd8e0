namespace SecurityAgent.Policies;

public enum Severity { Error, Warning, Note }

/// <summary>A position in a policy source: 1-based line and column.</summary>
public readonly record struct SourcePos(int Line, int Column)
{
    public static SourcePos Start { get; } = new(1, 1);
}

/// <summary>One problem in a policy file: where (file:line:column), which field, and what is wrong. Errors stop a
/// policy from loading; warnings point at what is almost certainly a mistake and do not.</summary>
public sealed record PolicyDiagnostic(string File, int Line, int Column, string Field, string Message, Severity Severity = Severity.Error)
{
    public PolicyDiagnostic(string file, SourcePos pos, string field, string message, Severity severity = Severity.Error)
        : this(file, pos.Line, pos.Column, field, message, severity) { }

    public override string ToString() =>
        $"{File}:{Line}:{Column}: {Severity switch { Severity.Warning => "warning: ", Severity.Note => "note: ", _ => "" }}{(string.IsNullOrEmpty(Field) ? "" : Field + ": ")}{Message}";
}

/// <summary>Collects the diagnostics of one policy document, at most <see cref="PolicyLimits.MaxDiagnostics"/> of
/// each severity (a hostile document cannot make the report itself unbounded). <see cref="EngineGap"/> reports what
/// the policy language and the target kernel allow but this build's kernel engine does not carry: an error when the
/// policy is to load here, a note when it is only checked for another kernel (<see cref="GapsAreNotes"/>).</summary>
public sealed class DiagnosticBag(string file, int max = PolicyLimits.MaxDiagnostics)
{
    private readonly List<PolicyDiagnostic> _errors = [];
    private readonly List<PolicyDiagnostic> _warnings = [];
    private readonly List<PolicyDiagnostic> _notes = [];
    private int _droppedErrors, _droppedWarnings, _droppedNotes;

    public bool GapsAreNotes { get; init; }

    public bool HasErrors => _errors.Count > 0;

    public void Error(SourcePos pos, string field, string message) => Add(_errors, ref _droppedErrors, new(file, pos, field, message));

    public void Warning(SourcePos pos, string field, string message) => Add(_warnings, ref _droppedWarnings, new(file, pos, field, message, Severity.Warning));

    public void Note(SourcePos pos, string field, string message) => Add(_notes, ref _droppedNotes, new(file, pos, field, message, Severity.Note));

    /// <summary>A feature the language and the kernel allow but the kernel engine of this build does not carry yet.</summary>
    public void EngineGap(SourcePos pos, string field, string feature)
    {
        var message = $"unsupported: {feature} is not carried by this build's kernel engine yet";
        if (GapsAreNotes) Note(pos, field, message);
        else Error(pos, field, message);
    }

    private void Add(List<PolicyDiagnostic> list, ref int dropped, PolicyDiagnostic d)
    {
        if (list.Count < max) list.Add(d);
        else dropped++;
    }

    public IReadOnlyList<PolicyDiagnostic> Errors => WithSummary(_errors, _droppedErrors, Severity.Error);
    public IReadOnlyList<PolicyDiagnostic> Warnings => WithSummary(_warnings, _droppedWarnings, Severity.Warning);
    public IReadOnlyList<PolicyDiagnostic> Notes => WithSummary(_notes, _droppedNotes, Severity.Note);

    private IReadOnlyList<PolicyDiagnostic> WithSummary(List<PolicyDiagnostic> list, int dropped, Severity severity) =>
        dropped == 0 ? list.ToList()
        : [.. list, new(file, list[^1].Line, list[^1].Column, "", $"{dropped} more {severity switch { Severity.Error => "errors", Severity.Warning => "warnings", _ => "notes" }} not shown", severity)];
}
