using SecurityAgent.ContractGen;

// contractgen CONTRACT_OBJECT OBJECT_DIR OUTPUT: writes OUTPUT when its content changes (make bpf runs it).
if (args.Length != 3)
{
    Console.Error.WriteLine("usage: contractgen CONTRACT_OBJECT OBJECT_DIR OUTPUT");
    return 2;
}
var text = ContractGenerator.Generate(Btf.Read(args[0]),
    Directory.GetFiles(args[1], "*.bpf.o").Select(f => (Path.GetFileName(f), Btf.Read(f))));
if (!File.Exists(args[2]) || File.ReadAllText(args[2]) != text)
{
    File.WriteAllText(args[2], text);
    Console.WriteLine($"wrote {args[2]}");
}
return 0;
