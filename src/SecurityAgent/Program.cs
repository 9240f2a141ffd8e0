namespace SecurityAgent;

public static class Program
{
    public static Task<int> Main(string[] args) => Cli.Commands.Invoke(args);
}
