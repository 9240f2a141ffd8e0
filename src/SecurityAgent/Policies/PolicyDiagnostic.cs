namespace SecurityAgent.Policies;

/// <summary>One problem in a policy file: where (file:line:column), which field, and what is wrong.</summary>
public sealed record PolicyDiagnostic(string File, int Line, int Column, string Field, string Message)
{
    public override string ToString() =>
        $"{File}:{Line}:{Column}: {(string.IsNullOrEmpty(Field) ? "" : Field + ": ")}{Message}";
}
