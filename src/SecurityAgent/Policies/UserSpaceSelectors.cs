using System.Text;
using SecurityAgent.Processes;

namespace SecurityAgent.Policies;

/// <summary>Selector evaluation in user space: the comparison the `--debug-userspace-filter` option exists for
/// (the kernel posts every call and the agent filters here, as a user-space-only design would). Supports
/// the common selectors; <see cref="Supports"/> tells whether a plan can run this way.</summary>
public static class UserSpaceSelectors
{
    public static bool Supports(PolicyPlan plan, out string why)
    {
        foreach (var sel in plan.Hooks.SelectMany(h => h.Selectors))
        {
            if (sel.PidCmp != Cmp.None || sel.CapCmp != Cmp.None || sel.ParentBinaries.Count > 0)
            {
                why = "user-space filtering supports matchArgs and matchBinaries only";
                return false;
            }
            if (sel.Args.Any(a => a.Cmp is >= Cmp.DAddr and <= Cmp.NotFamily or >= Cmp.SAddr and <= Cmp.NotState))
            {
                why = "user-space filtering does not support socket address operators";
                return false;
            }
        }
        why = "";
        return true;
    }

    /// <summary>The index of the first matching selector, or -1 (no selectors: 0, everything matches).</summary>
    public static int Match(PolicyPlan plan, HookPlan hook, ulong[] ints, byte[][] strings, ProcessInfo process)
    {
        if (hook.Selectors.Count == 0) return 0;
        for (int s = 0; s < hook.Selectors.Count; s++)
            if (Matches(plan, hook, hook.Selectors[s], ints, strings, process))
                return s;
        return -1;
    }

    private static bool Matches(PolicyPlan plan, HookPlan hook, SelectorPlan sel, ulong[] ints, byte[][] strings, ProcessInfo process)
    {
        if (sel.BinaryCmp != Cmp.None && !Str(sel.BinaryCmp, process.Binary, plan.ValueSets[sel.BinaryValueSet!.Value].Values))
            return false;
        foreach (var f in sel.Args)
        {
            var arg = hook.Args[f.Slot];
            bool isString = PolicyEncoding.IsString(arg.KernelType);
            var set = f.ValueSet is { } vs ? plan.ValueSets[vs] : null;
            bool ok = isString
                ? Str(f.Cmp, Encoding.UTF8.GetString(strings[f.Slot]), set?.Values ?? [])
                : Int(f.Cmp, ints[f.Slot], f.Value, set, arg.KernelType == ArgType.Int);
            if (!ok) return false;
        }
        return true;
    }

    private static bool Str(Cmp cmp, string s, IReadOnlyList<string> values) => cmp switch
    {
        Cmp.In => values.Contains(s),
        Cmp.NotIn => !values.Contains(s),
        Cmp.Prefix => values.Any(s.StartsWith),
        Cmp.NotPrefix => !values.Any(s.StartsWith),
        Cmp.Postfix => values.Any(s.EndsWith),
        Cmp.NotPostfix => !values.Any(s.EndsWith),
        _ => false,
    };

    private static bool Int(Cmp cmp, ulong v, ulong operand, ValueSet? set, bool signed) => cmp switch
    {
        Cmp.In => set is not null && set.ContainsInteger(v),
        Cmp.NotIn => set is null || !set.ContainsInteger(v),
        Cmp.GreaterThan => signed ? (long)v > (long)operand : v > operand,
        Cmp.LessThan => signed ? (long)v < (long)operand : v < operand,
        Cmp.Mask => (v & operand) != 0,
        _ => false,
    };
}
