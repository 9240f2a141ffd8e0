using System.Security.Cryptography.X509Certificates;
using YamlDotNet.RepresentationModel;

namespace SecurityAgent.Kubernetes;

/// <summary>How to reach and authenticate to the API server: in-cluster (service-account token, re-read so a
/// rotated token is picked up, and the cluster CA) or a kubeconfig file (token or client certificate).</summary>
public sealed class KubeConfig
{
    public required Uri Server { get; init; }
    public Func<string?> Token { get; init; } = () => null;
    public X509Certificate2? ClientCertificate { get; init; }
    public X509Certificate2Collection? CertificateAuthority { get; init; }
    public bool InsecureSkipTlsVerify { get; init; }

    private const string ServiceAccount = "/var/run/secrets/kubernetes.io/serviceaccount";

    public static bool InCluster => Environment.GetEnvironmentVariable("KUBERNETES_SERVICE_HOST") is { Length: > 0 };

    /// <param name="serviceAccountDir">Where the kubelet mounts the service account (token, ca.crt).</param>
    /// <param name="tokenRefresh">How often the token is re-read (the kubelet rotates it).</param>
    /// <param name="environment">Where KUBERNETES_SERVICE_HOST/PORT are read (the process environment; tests pass
    /// their own rather than change one that the processes they start would inherit).</param>
    public static KubeConfig FromCluster(string serviceAccountDir = ServiceAccount, TimeSpan? tokenRefresh = null,
        Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        var host = environment("KUBERNETES_SERVICE_HOST") ?? throw new InvalidOperationException("KUBERNETES_SERVICE_HOST is not set");
        var port = environment("KUBERNETES_SERVICE_PORT") ?? "443";
        var ca = new X509Certificate2Collection();
        ca.ImportFromPemFile(Path.Combine(serviceAccountDir, "ca.crt"));
        return new KubeConfig
        {
            Server = new Uri($"https://{(host.Contains(':') ? $"[{host}]" : host)}:{port}"),
            Token = CachedFile(Path.Combine(serviceAccountDir, "token"), tokenRefresh ?? TimeSpan.FromMinutes(1)),
            CertificateAuthority = ca,
        };
    }

    /// <summary>A kubeconfig file's current context.</summary>
    public static KubeConfig FromFile(string path)
    {
        var yaml = new YamlStream();
        yaml.Load(new StringReader(File.ReadAllText(path)));
        var root = (YamlMappingNode)yaml.Documents[0].RootNode;
        string current = root["current-context"].ToString();
        YamlMappingNode Named(string list, string name, string inner) =>
            (YamlMappingNode)((YamlSequenceNode)root[list]).Cast<YamlMappingNode>().Single(x => x["name"].ToString() == name)[inner];
        var context = Named("contexts", current, "context");
        var cluster = Named("clusters", context["cluster"].ToString(), "cluster");
        var user = Named("users", context["user"].ToString(), "user");
        string? Get(YamlMappingNode m, string key) => m.Children.TryGetValue(key, out var v) ? v.ToString() : null;
        string? Data(YamlMappingNode m, string key) =>
            Get(m, key + "-data") is { } b64 ? System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(b64))
            : Get(m, key) is { } file ? File.ReadAllText(Path.IsPathRooted(file) ? file : Path.Combine(Path.GetDirectoryName(path)!, file)) : null;

        X509Certificate2Collection? ca = null;
        if (Data(cluster, "certificate-authority") is { } caPem)
        {
            ca = new X509Certificate2Collection();
            ca.ImportFromPem(caPem);
        }
        X509Certificate2? client = null;
        if (Data(user, "client-certificate") is { } certPem && Data(user, "client-key") is { } keyPem)
            client = X509Certificate2.CreateFromPem(certPem, keyPem);
        var token = Get(user, "token");
        var tokenFile = Get(user, "tokenFile");
        return new KubeConfig
        {
            Server = new Uri(Get(cluster, "server")!),
            Token = tokenFile is not null ? CachedFile(tokenFile, TimeSpan.FromMinutes(1)) : () => token,
            ClientCertificate = client,
            CertificateAuthority = ca,
            InsecureSkipTlsVerify = Get(cluster, "insecure-skip-tls-verify") == "true",
        };
    }

    /// <summary>A file's content, re-read at most once per period (service-account tokens rotate).</summary>
    private static Func<string?> CachedFile(string path, TimeSpan period)
    {
        string? value = null;
        var readAt = DateTime.MinValue;
        return () =>
        {
            if (DateTime.UtcNow - readAt > period)
            {
                value = File.ReadAllText(path).Trim();
                readAt = DateTime.UtcNow;
            }
            return value;
        };
    }
}
