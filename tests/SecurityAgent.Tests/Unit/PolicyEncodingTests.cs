using System.Buffers.Binary;
using SecurityAgent.Bpf;
using SecurityAgent.Events;
using SecurityAgent.Kernel;
using SecurityAgent.Policies;
using W = SecurityAgent.Events.PolicyWire;

namespace SecurityAgent.Tests.Unit;

/// <summary>The attach point layout (argument slots, selector bits, dimensions with their care and negation masks,
/// stored values) and the bytes of a generation, computed from hooks without a kernel.</summary>
public class PolicyEncodingTests
{
    private static readonly ArgPlan Path = new(0, 1, "string", ArgType.String, 24, 8, null);
    private static readonly ArgPlan Flags = new(1, 2, "int", ArgType.Int, 32, 4, null);

    private static SelectorPlan Sel(Cmp binCmp = Cmp.None, int? binSet = null, IReadOnlyList<ArgFilterPlan>? args = null, Actions actions = Actions.Post,
        IReadOnlyList<ParentBinaryRule>? parents = null) =>
        new(actions, 0, 0, 0, binCmp, binSet, Cmp.None, [], false, false, Cmp.None, 0, 0, args ?? [], parents ?? []);

    /// <summary>A policy with one openat hook; its selectors refer to value sets by index.</summary>
    private static PolicyPlan Plan(string name, IReadOnlyList<ValueSet> sets, params SelectorPlan[] selectors) =>
        new(name, name + ".yaml", true, [new HookPlan(HookKind.Tracepoint, Mechanism.Tracepoint, "syscalls/sys_enter_openat", "syscalls/sys_enter_openat", "",
            [Path, Flags], selectors, null, [])], sets);

    private static PlacedHook Place(PolicyPlan plan, uint hookId = 1) => new(hookId, hookId, plan, plan.Hooks[0], plan.Enforce, 0, []);

    private static ValueSet Set(ValueSetKind kind, params string[] values) =>
        new(kind, values) { Integers = kind == ValueSetKind.Int ? values.Select(ulong.Parse).ToList() : [] };

    private static bool Bit(ulong[] bitmap, int bit) => (bitmap[bit >> 6] & (1UL << (bit & 63))) != 0;

    private static int[] Bits(ulong[] bitmap) => Enumerable.Range(0, Contract.SelBits).Where(b => Bit(bitmap, b)).ToArray();

    private static DimValue Value(DimLayout d, string v) =>
        d.Values.Single(x => x.Data.AsSpan().SequenceEqual(PolicyEncoding.Stored(d.Kind, v).Data));

    private static readonly ArgPlan SyscallId = new(0, 4, "syscall64", ArgType.Syscall64, 8, 8, null);

    /// <summary>A policy with one raw_syscalls/sys_enter hook reading the syscall number (index 4, record offset 8).</summary>
    private static PolicyPlan RawSysEnter(string name, IReadOnlyList<ValueSet> sets, params SelectorPlan[] selectors) =>
        new(name, name + ".yaml", false, [new HookPlan(HookKind.Tracepoint, Mechanism.Tracepoint, "raw_syscalls/sys_enter", "raw_syscalls/sys_enter", "",
            [SyscallId], selectors, null, [])], sets);

    private static int[] Numbers(byte[] config) =>
        Enumerable.Range(0, Contract.SysidBits).Where(n => (BinaryPrimitives.ReadUInt64LittleEndian(config.AsSpan(W.Point.Sysids + n / 64 * 8)) & (1UL << (n % 64))) != 0).ToArray();

    [Fact]
    public void At_raw_sys_enter_the_syscall_numbers_every_selector_wants_become_the_points_syscall_filter()
    {
        var modules = RawSysEnter("modules", [Set(ValueSetKind.Int, "175", "313")], Sel(args: [new ArgFilterPlan(0, Cmp.In, 0, 0)]));
        var ptrace = RawSysEnter("ptrace", [Set(ValueSetKind.Int, "101"), Set(ValueSetKind.StringExact, "/x")], Sel(Cmp.In, 1, [new ArgFilterPlan(0, Cmp.In, 0, 0)]));
        var hooks = new[] { Place(modules, 1), Place(ptrace, 2) };
        var layout = PolicyEncoding.Layout(hooks, "raw_syscalls/sys_enter");

        var config = PolicyEncoding.Generation(1, 1, layout, hooks).Config.Value;
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(config.AsSpan(W.Point.SysidFilter)));
        Assert.Equal([101, 175, 313], Numbers(config));
        // An openat point never has one: its tracepoint fires for openat alone.
        var openat = Plan("o", [Set(ValueSetKind.StringExact, "/x")], Sel(Cmp.In, 0));
        Assert.Null(PolicyEncoding.Layout([Place(openat)], "openat").Syscalls);
    }

    [Theory]
    [InlineData("no condition on the number", Cmp.None, "175")]
    [InlineData("a negated set", Cmp.NotIn, "175")]
    [InlineData("an ia32 syscall (bit 31 set)", Cmp.In, "2147483689")]
    public void A_selector_that_can_match_a_syscall_the_filter_cannot_say_leaves_every_syscall_to_the_selectors(string why, Cmp cmp, string number)
    {
        var modules = RawSysEnter("modules", [Set(ValueSetKind.Int, "175", "313")], Sel(args: [new ArgFilterPlan(0, Cmp.In, 0, 0)]));
        var other = RawSysEnter("other", [Set(ValueSetKind.Int, number), Set(ValueSetKind.StringExact, "/x")],
            Sel(Cmp.In, 1, cmp == Cmp.None ? [] : [new ArgFilterPlan(0, cmp, 0, 0)]));
        var hooks = new[] { Place(modules, 1), Place(other, 2) };
        var layout = PolicyEncoding.Layout(hooks, "raw_syscalls/sys_enter");

        Assert.True(layout.Syscalls is null, why);
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(PolicyEncoding.Generation(1, 1, layout, hooks).Config.Value.AsSpan(W.Point.SysidFilter)));
        // A hook without selectors takes every call too.
        Assert.Null(PolicyEncoding.Layout([Place(modules, 1), Place(RawSysEnter("all", []), 2)], "raw_syscalls/sys_enter").Syscalls);
    }

    [Fact]
    public void Each_hook_gets_one_bit_per_selector_in_order_and_a_hook_without_selectors_one_bit()
    {
        var a = Plan("a", [Set(ValueSetKind.StringExact, "/x")], Sel(Cmp.In, 0), Sel(Cmp.In, 0));
        var b = Plan("b", []);
        var c = Plan("c", [Set(ValueSetKind.StringExact, "/y")], Sel(Cmp.In, 0), Sel(Cmp.In, 0), Sel(Cmp.In, 0));
        var layout = PolicyEncoding.Layout([Place(a, 1), Place(b, 2), Place(c, 3)], "openat");
        Assert.Equal([(0, 2), (2, 3), (3, 6)], layout.HookBits);
        Assert.Equal(6, layout.Bits);
        // The selector-less hook constrains nothing: its bit survives every dimension.
        Assert.All(layout.Dims, d => Assert.False(Bit(d.Care, 2)));
    }

    [Fact]
    public void Negated_operators_set_the_negation_bit_and_every_dimension_marks_the_selectors_that_care()
    {
        var plan = Plan("p", [Set(ValueSetKind.StringPrefix, "/etc/"), Set(ValueSetKind.StringPrefix, "/etc/ssl/"), Set(ValueSetKind.StringExact, "/bin/cat")],
            Sel(Cmp.NotIn, 2, [new ArgFilterPlan(0, Cmp.Prefix, 0, 0), new ArgFilterPlan(0, Cmp.NotPrefix, 1, 0)]),
            Sel(args: [new ArgFilterPlan(0, Cmp.Prefix, 0, 0)]));
        var layout = PolicyEncoding.Layout([Place(plan)], "openat");

        // Prefix and NotPrefix on the same argument in one selector are two instances of the dimension.
        Assert.Equal([W.DimKind.BinExact, W.DimKind.StrPrefix, W.DimKind.StrPrefix], layout.Dims.Select(d => d.Kind));
        Assert.Equal(1, layout.ProcessDims);
        var (bin, pre, notPre) = (layout.Dims[0], layout.Dims[1], layout.Dims[2]);
        Assert.Equal([0], Bits(bin.Care));
        Assert.Equal([0], Bits(bin.Neg));
        Assert.Equal([0, 1], Bits(pre.Care));
        Assert.Empty(Bits(pre.Neg));
        Assert.Equal([0], Bits(notPre.Care));
        Assert.Equal([0], Bits(notPre.Neg));
        // One stored value per distinct value of a dimension, holding every selector whose set has it.
        Assert.Equal([0, 1], Bits(Value(pre, "/etc/").Selectors));
    }

    [Fact]
    public void A_stored_prefix_stands_for_every_shorter_stored_prefix_so_the_longest_match_answers_for_all()
    {
        var p1 = Plan("p1", [Set(ValueSetKind.StringPrefix, "/a")], Sel(args: [new ArgFilterPlan(0, Cmp.Prefix, 0, 0)]));
        var p2 = Plan("p2", [Set(ValueSetKind.StringPrefix, "/a/b", "/c")], Sel(args: [new ArgFilterPlan(0, Cmp.Prefix, 0, 0)]));
        var p3 = Plan("p3", [Set(ValueSetKind.StringPrefix, "")], Sel(args: [new ArgFilterPlan(0, Cmp.Prefix, 0, 0)]));
        var dim = Assert.Single(PolicyEncoding.Layout([Place(p1, 1), Place(p2, 2), Place(p3, 3)], "openat").Dims);
        Assert.Equal([0, 2], Bits(Value(dim, "/a").Selectors));
        Assert.Equal([0, 1, 2], Bits(Value(dim, "/a/b").Selectors));
        Assert.Equal([1, 2], Bits(Value(dim, "/c").Selectors));
        Assert.Equal([2], Bits(Value(dim, "").Selectors));
    }

    [Fact]
    public void A_stored_cidr_stands_for_the_shorter_cidrs_that_contain_it_and_postfixes_are_stored_reversed()
    {
        var addr = Plan("net", [Set(ValueSetKind.Address, "10.0.0.0/8"), Set(ValueSetKind.Address, "10.1.0.0/16", "192.168.0.1/32")],
            Sel(args: [new ArgFilterPlan(0, Cmp.DAddr, 0, 0)]), Sel(args: [new ArgFilterPlan(0, Cmp.DAddr, 1, 0)]));
        var dim = Assert.Single(PolicyEncoding.Layout([Place(addr)], "connect").Dims);
        Assert.Equal(W.DimKind.Addr, dim.Kind);
        Assert.Equal([0, 1], Bits(Value(dim, "10.1.0.0/16").Selectors));
        Assert.Equal([0], Bits(Value(dim, "10.0.0.0/8").Selectors));
        Assert.Equal([1], Bits(Value(dim, "192.168.0.1/32").Selectors));
        Assert.Equal(8 + 16, Value(dim, "10.1.0.0/16").Bits);

        var (data, bits) = PolicyEncoding.Stored(W.DimKind.StrPostfix, ".so");
        Assert.Equal("os."u8.ToArray(), data);
        Assert.Equal(24, bits);
    }

    [Fact]
    public void Identical_reads_of_the_hooks_at_a_point_share_one_argument_slot()
    {
        var a = Plan("a", []);
        var b = new PolicyPlan("b", "b.yaml", true, [a.Hooks[0] with { Args = [Flags with { Slot = 0 }, Path with { Slot = 1 }, new ArgPlan(2, 2, "uint32", ArgType.UInt, 32, 4, null)] }], []);
        var layout = PolicyEncoding.Layout([Place(a, 1), Place(b, 2)], "openat");
        Assert.Equal(3, layout.Args.Count); // path, flags as int, flags as uint
        Assert.Equal([0, 1], layout.HookSlots[0]);
        Assert.Equal([1, 0, 2], layout.HookSlots[1]);
    }

    [Fact]
    public void An_open_whose_hooks_only_post_is_matched_at_its_exit_alone_and_one_that_kills_brings_the_enter_back()
    {
        var post = Plan("p", [Set(ValueSetKind.StringPrefix, "/etc/shadow", "/et")], Sel(args: [new ArgFilterPlan(0, Cmp.Prefix, 0, 0)]));
        var layout = PolicyEncoding.Layout([Place(post, 1)], "openat");
        Assert.Equal(W.PointFlags.Fd | W.PointFlags.Only | W.PointFlags.Quick, layout.Flags);
        // The quick dimension holds what the first component of the opened file's path must start with.
        Assert.Equal(["/et", "/etc/"], layout.Quick!.Values.Select(v => System.Text.Encoding.UTF8.GetString(v.Data)).Order());
        var gen = PolicyEncoding.Generation(9, 2, layout, [Place(post, 1)]);
        Assert.Equal(2, gen.Values.Count(e => BinaryPrimitives.ReadUInt16LittleEndian(e.Key.AsSpan(W.LpmKey.Hdr + W.ValueHeader.Dim)) == layout.Dims.Count));

        var kill = Plan("k", [Set(ValueSetKind.StringPrefix, "/etc/shadow")], Sel(args: [new ArgFilterPlan(0, Cmp.Prefix, 0, 0)], actions: Actions.Post | Actions.Sigkill));
        var mixed = PolicyEncoding.Layout([Place(post, 1), Place(kill, 2)], "openat");
        Assert.Equal(W.PointFlags.Fd, mixed.Flags);
        Assert.Null(mixed.Quick);
        Assert.Equal("Sigkill must come before the call", PathArguments.EnterNeeded(kill.Hooks[0]));
    }

    [Fact]
    public void A_postfix_on_an_opened_path_rejects_an_open_by_the_files_own_name_when_every_value_names_its_last_component()
    {
        var keys = Plan("k", [Set(ValueSetKind.StringPostfix, "/.ssh/id_rsa", "/.ssh/authorized_keys"), Set(ValueSetKind.StringPrefix, "/etc/shadow")],
            Sel(args: [new ArgFilterPlan(0, Cmp.Postfix, 0, 0)]), Sel(args: [new ArgFilterPlan(0, Cmp.Prefix, 1, 0)]));
        var layout = PolicyEncoding.Layout([Place(keys)], "openat");
        Assert.Equal(W.PointFlags.Fd | W.PointFlags.Only | W.PointFlags.Quick, layout.Flags);
        Assert.Equal(["/authorized_keys/", "/id_rsa/"], layout.QuickName!.Values.Select(v => System.Text.Encoding.UTF8.GetString(v.Data)).Order());
        Assert.Equal([0], Bits(layout.QuickName.Care)); // the Prefix selector is the top directory's to check
        Assert.Equal([1], Bits(layout.Quick!.Care));
        // Written after the top directory's quick dimension, under its own dimension number.
        var gen = PolicyEncoding.Generation(9, 2, layout, [Place(keys)]);
        int nameDim = layout.Dims.Count + 1;
        Assert.Equal((byte)W.DimKind.StrPrefix, gen.Config.Value[W.Point.Dims + nameDim * W.Dim.Length + W.Dim.Kind]);
        Assert.Equal(2, gen.Values.Count(e => BinaryPrimitives.ReadUInt16LittleEndian(e.Key.AsSpan(W.LpmKey.Hdr + W.ValueHeader.Dim)) == nameDim));

        // ".pem" (no "/"): the name only ends with it, and a name lookup cannot say that.
        var pem = PolicyEncoding.Layout([Place(Plan("p", [Set(ValueSetKind.StringPostfix, "/.ssh/id_rsa", ".pem")], Sel(args: [new ArgFilterPlan(0, Cmp.Postfix, 0, 0)])))], "openat");
        Assert.Null(pem.QuickName);
        Assert.Equal((null, "/id_rsa/", null), (PolicyEncoding.LastComponent(".pem"), PolicyEncoding.LastComponent("/.ssh/id_rsa"), PolicyEncoding.LastComponent("/.ssh/")));
    }

    [Fact]
    public void A_file_name_is_resolved_in_the_kernel_only_where_a_string_selector_matches_it()
    {
        var matched = PolicyEncoding.Layout([Place(Plan("m", [Set(ValueSetKind.StringPostfix, "/id_rsa")], Sel(args: [new ArgFilterPlan(0, Cmp.Postfix, 0, 0)])))], "openat");
        Assert.Equal((ArgType.UserPathAt, W.PointFlags.Fd | W.PointFlags.Only | W.PointFlags.Quick), (matched.Args[0].Type, matched.Flags)); // Post only: at exit alone

        var readOnly = PolicyEncoding.Layout([Place(Plan("r", [Set(ValueSetKind.StringExact, "/b")], Sel(Cmp.In, 0)))], "openat");
        Assert.Equal((ArgType.String, (W.PointFlags)0), (readOnly.Args[0].Type, readOnly.Flags)); // reported as passed, no cost

        var mask = PolicyEncoding.Layout([Place(Plan("k", [], Sel(args: [new ArgFilterPlan(1, Cmp.Mask, null, 1)])))], "openat");
        Assert.Equal(ArgType.Int, mask.Args[1].Type);
    }

    [Fact]
    public void Files_a_file_name_value_names_are_also_stored_by_inode_with_the_selectors_their_path_gets()
    {
        var plan = Plan("h", [Set(ValueSetKind.StringPrefix, "/s/", "/s/deep/")],
            Sel(args: [new ArgFilterPlan(0, Cmp.Prefix, 0, 0)]));
        var hook = Place(plan);
        var layout = PolicyEncoding.Layout([hook], "openat");
        PathArguments.FileId[] found = [new("/s/a", 5 << 20, 100), new("/s/deep/b", 5 << 20, 200)];
        var gen = PolicyEncoding.Generation(9, 2, layout, [hook], (v, prefix) => prefix ? found.Where(f => f.Path.StartsWith(v)) : []);
        var inodes = gen.Values.Where(e => e.Map == BpfNames.Maps.InodeSet).ToList();
        Assert.Equal(2, inodes.Count);
        var b = inodes.Single(e => BinaryPrimitives.ReadUInt64LittleEndian(e.Key.AsSpan(W.InodeKey.Ino)) == 200);
        Assert.Equal(5u << 20, BinaryPrimitives.ReadUInt32LittleEndian(b.Key.AsSpan(W.InodeKey.Dev)));
        Assert.Equal((2u, 9u), (BinaryPrimitives.ReadUInt32LittleEndian(b.Key.AsSpan(W.InodeKey.Hdr + W.ValueHeader.Gen)),
            (uint)BinaryPrimitives.ReadUInt16LittleEndian(b.Key.AsSpan(W.InodeKey.Hdr + W.ValueHeader.Ap))));
        Assert.Equal(1UL, BinaryPrimitives.ReadUInt64LittleEndian(b.Value));

        // Without the file system (or where nothing is resolved) nothing is stored by inode.
        Assert.DoesNotContain(PolicyEncoding.Generation(9, 2, layout, [hook]).Values, e => e.Map == BpfNames.Maps.InodeSet);
    }

    [Fact]
    public void An_exit_only_point_skips_the_opened_files_link_count_only_where_no_file_is_known_by_its_inode()
    {
        var plan = Plan("h", [Set(ValueSetKind.StringPrefix, "/s/")], Sel(args: [new ArgFilterPlan(0, Cmp.Prefix, 0, 0)]));
        var hook = Place(plan);
        var layout = PolicyEncoding.Layout([hook], "openat");
        Assert.True(layout.Flags.HasFlag(W.PointFlags.Quick));
        W.PointFlags FlagsOf(PointGeneration g) => (W.PointFlags)g.Config.Value[W.Point.Flags];

        // No file under the value: no other name of a file can match, so the quick answer need not read the link count.
        var none = PolicyEncoding.Generation(9, 2, layout, [hook], (_, _) => []);
        Assert.Equal(W.PointFlags.Fd | W.PointFlags.Only | W.PointFlags.Quick | W.PointFlags.NoLinks, FlagsOf(none));

        // A file there is known by its inode: a hard link to it elsewhere must reach the full path, which looks it up.
        var linked = PolicyEncoding.Generation(9, 2, layout, [hook], (v, _) => [new PathArguments.FileId(v + "a", 5 << 20, 100)]);
        Assert.Contains(linked.Values, e => e.Map == BpfNames.Maps.InodeSet);
        Assert.Equal(W.PointFlags.Fd | W.PointFlags.Only | W.PointFlags.Quick, FlagsOf(linked));

        // A point matched at enter and exit has no quick answer, whatever its files.
        var kill = Place(Plan("k", [Set(ValueSetKind.StringPrefix, "/s/")], Sel(args: [new ArgFilterPlan(0, Cmp.Prefix, 0, 0)], actions: Actions.Post | Actions.Sigkill)));
        Assert.Equal(W.PointFlags.Fd, FlagsOf(PolicyEncoding.Generation(9, 2, PolicyEncoding.Layout([kill], "openat"), [kill], (_, _) => [])));
    }

    [Theory]
    [InlineData("syscalls/sys_enter_openat", 24, ArgType.UserPathAt)]
    [InlineData("syscalls/sys_enter_open", 16, ArgType.UserPath)]
    [InlineData("syscalls/sys_enter_execve", 16, ArgType.UserPath)]
    [InlineData("syscalls/sys_enter_renameat2", 40, ArgType.UserPathAt)]
    [InlineData("syscalls/sys_enter_symlink", 16, null)]   // the link's content is not looked up
    [InlineData("syscalls/sys_enter_symlink", 24, ArgType.UserPath)]
    [InlineData("syscalls/sys_enter_write", 24, null)]
    [InlineData("raw_syscalls/sys_enter", 16, null)]
    public void The_file_name_arguments_of_syscalls_are_known_with_their_directory_fd(string target, int offset, ArgType? expected) =>
        Assert.Equal(expected, PathArguments.Resolved(target, offset, ArgType.String));

    [Fact]
    public void Opens_and_execs_look_the_file_up_again_at_their_exit_tracepoint()
    {
        Assert.Equal("syscalls/sys_exit_openat2", PathArguments.ExitTracepoint("syscalls/sys_enter_openat2"));
        Assert.Equal(W.PointFlags.Exe, PathArguments.Exit("syscalls/sys_enter_execveat"));
        Assert.Null(PathArguments.ExitTracepoint("syscalls/sys_enter_unlinkat"));
    }

    [Fact]
    public void A_generation_writes_its_configuration_selectors_and_values_under_its_own_attach_point_and_generation()
    {
        var plan = Plan("p", [Set(ValueSetKind.StringExact, "/b"), Set(ValueSetKind.StringPrefix, "/etc/")],
            Sel(Cmp.In, 0, [new ArgFilterPlan(0, Cmp.Prefix, 1, 0)], Actions.Post | Actions.Sigkill));
        var hook = Place(plan, hookId: 7);
        var gen = PolicyEncoding.Generation(ap: 12, gen: 3, PolicyEncoding.Layout([hook], "openat"), [hook]);

        Assert.Equal(BitConverter.GetBytes(12u * 2 + 1), gen.Config.Key);
        var c = gen.Config.Value;
        Assert.Equal((1, 2, 2, 1), (BinaryPrimitives.ReadUInt16LittleEndian(c.AsSpan(W.Point.Nbits)), (int)c[W.Point.Nargs], (int)c[W.Point.Ndims], (int)c[W.Point.NprocDims]));
        Assert.Equal(24, BinaryPrimitives.ReadUInt16LittleEndian(c.AsSpan(W.Point.Args + W.PointArg.Offset)));
        Assert.Equal((byte)ArgType.UserPathAt, c[W.Point.Args + W.PointArg.Type]); // openat's file name, matched by Prefix
        Assert.Equal((byte)W.PointFlags.Fd, c[W.Point.Flags]);
        Assert.Equal(1UL, BinaryPrimitives.ReadUInt64LittleEndian(c.AsSpan(W.Point.Valid)));
        Assert.Equal((byte)W.DimKind.BinExact, c[W.Point.Dims + W.Dim.Kind]);
        Assert.Equal(1UL, BinaryPrimitives.ReadUInt64LittleEndian(c.AsSpan(W.Point.Dims + W.Dim.Care)));

        var sel = Assert.Single(gen.Selectors);
        Assert.Equal(PolicyEncoding.SelectorKey(12, 3, 0), sel.Key);
        Assert.Equal(7u, BinaryPrimitives.ReadUInt32LittleEndian(sel.Value.AsSpan(W.Selector.HookId)));
        Assert.Equal((uint)(Actions.Post | Actions.Sigkill), BinaryPrimitives.ReadUInt32LittleEndian(sel.Value.AsSpan(W.Selector.Actions)));
        Assert.Equal((byte)W.SelectorFlags.Enforce, sel.Value[W.Selector.Flags]);
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(sel.Value.AsSpan(W.Selector.HookEnd)));

        var exact = gen.Values.Single(v => v.Map == "sa_str_set");
        Assert.Equal(3u, BinaryPrimitives.ReadUInt32LittleEndian(exact.Key.AsSpan(W.StrKey.Hdr + W.ValueHeader.Gen)));
        Assert.Equal(12, BinaryPrimitives.ReadUInt16LittleEndian(exact.Key.AsSpan(W.StrKey.Hdr + W.ValueHeader.Ap)));
        Assert.Equal(0, BinaryPrimitives.ReadUInt16LittleEndian(exact.Key.AsSpan(W.StrKey.Hdr + W.ValueHeader.Dim)));
        Assert.Equal("/b"u8.ToArray(), exact.Key[W.StrKey.Data..(W.StrKey.Data + 2)]);
        Assert.Equal(1UL, BinaryPrimitives.ReadUInt64LittleEndian(exact.Value));

        // The prefix key counts the header in its prefix length.
        var prefix = gen.Values.Single(v => v.Map == "sa_str_prefix");
        Assert.Equal(8u * W.ValueHeader.Length + 8 * 5, BinaryPrimitives.ReadUInt32LittleEndian(prefix.Key));
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(prefix.Key.AsSpan(W.LpmKey.Hdr + W.ValueHeader.Dim)));
        Assert.Equal("/etc/"u8.ToArray(), prefix.Key[W.LpmKey.Data..(W.LpmKey.Data + 5)]);
    }

    [Fact]
    public void An_address_key_counts_header_family_and_network_bits()
    {
        var k = PolicyEncoding.ValueKey(W.DimKind.Addr, new PolicyEncoding.ValueHeader(1, 9, 0), PolicyEncoding.Stored(W.DimKind.Addr, "10.0.0.0/8").Data, 8 + 8);
        Assert.Equal(8u * W.ValueHeader.Length + 8 + 8, BinaryPrimitives.ReadUInt32LittleEndian(k));
        Assert.Equal((Contract.AfInet, 10), (k[W.AddrKey.Family], k[W.AddrKey.Addr]));
    }

    [Fact]
    public void A_selector_with_ancestry_rules_only_posts_from_the_kernel_and_asks_for_the_deny_set()
    {
        var plan = Plan("p", [], Sel(actions: Actions.Post | Actions.Sigkill, parents: [new ParentBinaryRule("In", ["/bin/sh"])]));
        var b = PolicyEncoding.Selector(Place(plan), 0, 1, [0, 1]);
        Assert.Equal((uint)Actions.Post, BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(W.Selector.Actions)));
        Assert.True(((W.SelectorFlags)b[W.Selector.Flags]).HasFlag(W.SelectorFlags.UserSpace));
    }

    [Fact]
    public void Comparisons_that_are_not_indexed_travel_in_the_selector_record_with_the_point_slot_they_read()
    {
        var plan = Plan("p", [], Sel(args: [new ArgFilterPlan(1, Cmp.Mask, null, 0x41), new ArgFilterPlan(1, Cmp.GreaterThan, null, 5)]));
        var layout = PolicyEncoding.Layout([Place(plan)], "openat");
        Assert.Empty(layout.Dims);
        var b = PolicyEncoding.Selector(Place(plan), 0, 1, layout.HookSlots[0]);
        Assert.Equal(2, b[W.Selector.Ncmps]);
        Assert.Equal((1, (byte)Cmp.Mask, 1), (b[W.Selector.Cmps + W.IntCmp.Slot], b[W.Selector.Cmps + W.IntCmp.Cmp], b[W.Selector.Cmps + W.IntCmp.IsSigned]));
        Assert.Equal(0x41UL, BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(W.Selector.Cmps + W.IntCmp.Value)));
    }

    [Fact]
    public void More_selectors_than_an_attach_point_holds_are_refused_naming_the_policy_and_the_limit()
    {
        var hooks = Enumerable.Range(0, 103).Select(i => Place(Plan($"p{i}", [], Sel(), Sel(), Sel(), Sel(), Sel()), (uint)i)).ToList();
        var e = Assert.Throws<PolicyLimitException>(() => PolicyEncoding.Layout(hooks, "tracepoint syscalls/sys_enter_openat"));
        Assert.Contains("policy p102", e.Message);
        Assert.Contains("515 selectors, at most 512", e.Message);
        Assert.Contains("syscalls/sys_enter_openat", e.Message);
    }

    [Fact]
    public void The_values_a_policy_needs_are_counted_per_map_before_anything_is_written()
    {
        var plan = Plan("p", [Set(ValueSetKind.StringExact, "/a", "/b"), Set(ValueSetKind.StringPostfix, ".so"), Set(ValueSetKind.Int, "1", "2", "3")],
            Sel(Cmp.In, 0, [new ArgFilterPlan(0, Cmp.Postfix, 1, 0), new ArgFilterPlan(1, Cmp.In, 2, 0)]));
        Assert.Equal(new Dictionary<string, int> { ["sa_str_set"] = 2, ["sa_str_prefix"] = 1, ["sa_int_set"] = 3 }, PolicyEncoding.ValueCounts(plan));
    }
}
