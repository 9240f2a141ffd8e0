using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Logging;
using SecurityAgent.Kubernetes;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Unit;

public class KubeConfigTests
{
    /// <summary>A CA, a server certificate for 127.0.0.1 and a client certificate, both signed by the CA.</summary>
    private static (X509Certificate2 Ca, X509Certificate2 Server, X509Certificate2 Client) Pki()
    {
        using var caKey = ECDsa.Create();
        var caReq = new CertificateRequest("CN=test-ca", caKey, HashAlgorithmName.SHA256);
        caReq.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        // One instant for every validity period: a certificate may not outlive its issuer, even by the second that
        // passes between two calls to UtcNow.
        var now = DateTimeOffset.UtcNow;
        var ca = caReq.CreateSelfSigned(now.AddDays(-1), now.AddDays(1));
        X509Certificate2 Issue(string cn, bool server)
        {
            var key = ECDsa.Create();
            var req = new CertificateRequest(cn, key, HashAlgorithmName.SHA256);
            if (server)
            {
                var san = new SubjectAlternativeNameBuilder();
                san.AddIpAddress(IPAddress.Loopback);
                req.CertificateExtensions.Add(san.Build());
            }
            req.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(server ? "1.3.6.1.5.5.7.3.1" : "1.3.6.1.5.5.7.3.2")], false));
            var cert = req.Create(ca, now.AddDays(-1), now.AddDays(1), RandomNumberGenerator.GetBytes(8));
            return cert.CopyWithPrivateKey(key);
        }
        return (ca, Issue("CN=127.0.0.1", true), Issue("CN=agent", false));
    }

    private static string B64(string pem) => Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(pem));

    [Fact]
    public async Task A_kubeconfig_with_a_client_certificate_and_ca_authenticates_to_a_tls_api_server()
    {
        var (ca, serverCert, client) = Pki();
        int port;
        using (var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0)) { probe.Start(); port = ((IPEndPoint)probe.LocalEndpoint).Port; }
        var b = WebApplication.CreateSlimBuilder();
        b.Logging.ClearProviders();
        // Kestrel needs an exportable key for the server certificate.
        var serverWithKey = X509CertificateLoader.LoadPkcs12(serverCert.Export(X509ContentType.Pkcs12), null);
        b.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, port, o => o.UseHttps(h =>
        {
            h.ServerCertificate = serverWithKey;
            h.ClientCertificateMode = ClientCertificateMode.RequireCertificate;
            h.ClientCertificateValidation = (c, _, _) => c.Issuer == ca.Subject;
        })));
        await using var app = b.Build();
        app.MapGet("/api/v1/pods", (HttpContext ctx) => Results.Json(new { kind = "List", metadata = new { resourceVersion = "7" }, items = Array.Empty<object>(), who = ctx.Connection.ClientCertificate?.Subject }));
        await app.StartAsync();

        using var dir = new TempDir();
        var kubeconfig = dir.File("kubeconfig");
        File.WriteAllText(kubeconfig, $"""
            apiVersion: v1
            kind: Config
            current-context: c
            clusters:
            - name: tls
              cluster:
                server: https://127.0.0.1:{port}
                certificate-authority-data: {B64(ca.ExportCertificatePem())}
            users:
            - name: agent
              user:
                client-certificate-data: {B64(client.ExportCertificatePem())}
                client-key-data: {B64(client.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem())}
            contexts:
            - name: c
              context:
                cluster: tls
                user: agent
            """);
        var config = KubeConfig.FromFile(kubeconfig);
        Assert.NotNull(config.ClientCertificate);
        using var kube = new KubeClient(config);
        var (items, rv) = await kube.ListAsync("/api/v1/pods", CancellationToken.None);
        Assert.Equal(("7", 0), (rv, items.Count));

        // Without the CA the server is not trusted.
        File.WriteAllText(kubeconfig, File.ReadAllText(kubeconfig).Replace("certificate-authority-data", "x-unused"));
        using var untrusting = new KubeClient(KubeConfig.FromFile(kubeconfig));
        await Assert.ThrowsAsync<HttpRequestException>(() => untrusting.ListAsync("/api/v1/pods", CancellationToken.None));
    }

    [Fact]
    public void In_cluster_config_reads_the_service_account_and_picks_up_a_rotated_token()
    {
        var (ca, _, _) = Pki();
        using var dir = new TempDir();
        File.WriteAllText(dir.File("ca.crt"), ca.ExportCertificatePem());
        File.WriteAllText(dir.File("token"), "first-token\n");
        var environment = new Dictionary<string, string> { ["KUBERNETES_SERVICE_HOST"] = "10.96.0.1", ["KUBERNETES_SERVICE_PORT"] = "443" };
        var config = KubeConfig.FromCluster(dir.Path, tokenRefresh: TimeSpan.FromMilliseconds(100), environment: name => environment.GetValueOrDefault(name));
        Assert.Equal(new Uri("https://10.96.0.1:443"), config.Server);
        Assert.Equal(ca.Thumbprint, Assert.Single(config.CertificateAuthority!).Thumbprint);
        Assert.Equal("first-token", config.Token());
        File.WriteAllText(dir.File("token"), "rotated-token\n");
        Thread.Sleep(200);
        Assert.Equal("rotated-token", config.Token());
    }
}
