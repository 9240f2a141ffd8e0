using Microsoft.Extensions.Configuration;
using SecurityAgent.Deploy;
using SecurityAgent.Hosting;
using SecurityAgent.Tests.Support;
using YamlDotNet.RepresentationModel;

namespace SecurityAgent.Tests.Unit;

/// <summary>deploy/: the CRDs match the policy schema, and every Kustomize overlay renders (kubectl kustomize, offline)
/// into the objects a cluster needs, consistent with each other and with the agent's own options.</summary>
public class DeployTests
{
    public static readonly string[] Overlays = ["node", "kubernetes-policies", "otlp"];

    /// <summary>A fact that needs kubectl; skipped, with the reason, where kubectl is not installed.</summary>
    public sealed class KubectlFactAttribute : FactAttribute
    {
        public KubectlFactAttribute()
        {
            if (!(Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Any(d => File.Exists(Path.Combine(d, "kubectl"))))
                Skip = "kubectl is not installed: the Kustomize overlays of deploy/ are not rendered";
        }
    }

    private static List<YamlMappingNode> Parse(string yaml)
    {
        var s = new YamlStream();
        s.Load(new StringReader(yaml));
        return s.Documents.Select(d => (YamlMappingNode)d.RootNode).ToList();
    }

    private static List<YamlMappingNode> Render(string overlay)
    {
        var r = Run.Wait("kubectl", ["kustomize", Repo.File_("deploy", "overlays", overlay)]);
        Assert.True(r.Code == 0, $"kubectl kustomize deploy/overlays/{overlay}: {r.Stderr}");
        return Parse(r.Stdout);
    }

    private static string Str(YamlNode n, params string[] path) => path.Aggregate(n, (cur, key) => ((YamlMappingNode)cur)[key]).ToString();

    private static YamlNode? Find(YamlNode n, params string[] path)
    {
        foreach (var key in path)
            if (n is not YamlMappingNode m || !m.Children.TryGetValue(key, out n!)) return null;
        return n;
    }

    private static IEnumerable<YamlMappingNode> Seq(YamlNode n, params string[] path) => ((YamlSequenceNode)Find(n, path)!).Cast<YamlMappingNode>();

    private static YamlMappingNode One(List<YamlMappingNode> docs, string kind) => docs.Single(d => Str(d, "kind") == kind);

    [Fact]
    public void The_committed_crds_equal_the_ones_generated_from_the_policy_schema()
    {
        var generated = CrdGenerator.Generate(File.ReadAllText(Repo.File_("schemas", "tracingpolicy.schema.json")));
        Assert.True(generated == File.ReadAllText(Repo.File_("deploy", "crds", "crds.yaml")), "deploy/crds/crds.yaml is stale: run `make crds`");
    }

    [Fact]
    public void The_crds_are_v1_structural_schemas_for_both_kinds()
    {
        var text = File.ReadAllText(Repo.File_("deploy", "crds", "crds.yaml"));
        var crds = Parse(text);
        Assert.Equal(["TracingPolicy", "TracingPolicyNamespaced"], crds.Select(c => Str(c, "spec", "names", "kind")));
        Assert.Equal(["Cluster", "Namespaced"], crds.Select(c => Str(c, "spec", "scope")));
        Assert.DoesNotContain("$ref", text);
        Assert.DoesNotContain("additionalProperties: false", text);
        foreach (var crd in crds)
        {
            Assert.Equal(("apiextensions.k8s.io/v1", "CustomResourceDefinition"), (Str(crd, "apiVersion"), Str(crd, "kind")));
            Assert.Equal("securityagent.io", Str(crd, "spec", "group"));
            var version = (YamlMappingNode)((YamlSequenceNode)crd["spec"]["versions"])[0];
            Assert.Equal("v1alpha1", Str(version, "name"));
            var schema = (YamlMappingNode)version["schema"]["openAPIV3Schema"];
            Assert.Equal("object", Str(schema, "type"));
            Assert.Equal("string", Str(schema, "properties", "spec", "properties", "kprobes", "items", "properties", "call", "type"));
        }
    }

    /// <summary>The agent's settings as the DaemonSet gives them: the rendered appsettings.json, then the environment of
    /// the agent container from ConfigMaps, bound as `secagent run` binds them (an unknown key is an error).</summary>
    private static AgentOptions AgentSettings(List<YamlMappingNode> docs, YamlMappingNode agent)
    {
        var configMaps = docs.Where(d => Str(d, "kind") == "ConfigMap").ToDictionary(d => Str(d, "metadata", "name"));
        var configName = Str(Seq(One(docs, "DaemonSet"), "spec", "template", "spec", "volumes").Single(v => Str(v, "name") == "config"), "configMap", "name");
        var json = Str(configMaps[configName], "data", "appsettings.json");
        var env = (Find(agent, "envFrom") as YamlSequenceNode)?.Cast<YamlMappingNode>()
            .SelectMany(e => ((YamlMappingNode)configMaps[Str(e, "configMapRef", "name")]["data"]).Children)
            .Select(kv => KeyValuePair.Create(kv.Key.ToString()["SECAGENT_".Length..].Replace("__", ":"), (string?)kv.Value.ToString())) ?? [];
        var config = new ConfigurationBuilder().AddJsonStream(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(json))).AddInMemoryCollection(env).Build();
        return config.GetSection("Agent").Get<AgentOptions>(b => b.ErrorOnUnknownConfiguration = true)!;
    }

    [KubectlFact]
    public void Every_overlay_renders_a_privileged_namespace_a_prioritised_linux_daemonset_with_health_probes_and_least_privilege_rbac()
    {
        foreach (var overlay in Overlays)
        {
            var docs = Render(overlay);
            Assert.All(docs, d => Assert.False(string.IsNullOrEmpty(Str(d, "metadata", "name")), $"{overlay}: an object without a name"));

            var ns = One(docs, "Namespace");
            foreach (var mode in new[] { "enforce", "audit", "warn" })
                Assert.Equal("privileged", Str(ns, "metadata", "labels", $"pod-security.kubernetes.io/{mode}"));
            Assert.All(docs.Where(d => Str(d, "kind") is not ("Namespace" or "ClusterRole" or "ClusterRoleBinding" or "PriorityClass" or "CustomResourceDefinition")),
                d => Assert.Equal(Str(ns, "metadata", "name"), Str(d, "metadata", "namespace")));

            var ds = One(docs, "DaemonSet");
            var pod = (YamlMappingNode)ds["spec"]["template"]["spec"];
            Assert.Equal("linux", Str(pod, "nodeSelector", "kubernetes.io/os"));
            Assert.Equal(Str(One(docs, "PriorityClass"), "metadata", "name"), Str(pod, "priorityClassName"));
            Assert.Equal("true", Str(pod, "hostPID"));
            var containers = Seq(pod, "containers").ToDictionary(c => Str(c, "name"));
            Assert.Equal(["agent", "export-stdout"], containers.Keys);
            foreach (var c in containers.Values)
            {
                var image = Str(c, "image");
                Assert.Equal($"securityagent:{BuildInfo.Version}", image); // the version built here, never :latest
            }

            var agent = containers["agent"];
            var settings = AgentSettings(docs, agent);
            Assert.True(AgentOptions.TryParseAddress(settings.MetricsAddress!, out var metrics), settings.MetricsAddress);
            var port = Seq(agent, "ports").Single(p => Str(p, "name") == "metrics");
            Assert.Equal(metrics.Port.ToString(), Str(port, "containerPort"));
            Assert.Equal(("/readyz", "metrics"), (Str(agent, "readinessProbe", "httpGet", "path"), Str(agent, "readinessProbe", "httpGet", "port")));
            Assert.Equal(("/readyz", "metrics"), (Str(agent, "startupProbe", "httpGet", "path"), Str(agent, "startupProbe", "httpGet", "port")));
            Assert.Equal(("/healthz", "metrics"), (Str(agent, "livenessProbe", "httpGet", "path"), Str(agent, "livenessProbe", "httpGet", "port")));

            // Policies come from a ConfigMap mounted where the agent reads them, not from the image.
            var volumes = Seq(pod, "volumes").ToDictionary(v => Str(v, "name"));
            var mounts = Seq(agent, "volumeMounts").ToDictionary(m => Str(m, "mountPath"));
            var policies = mounts[settings.PolicyDir];
            Assert.Equal("true", Str(policies, "readOnly"));
            Assert.Equal("securityagent-policies", Str(volumes[Str(policies, "name")], "configMap", "name"));
            Assert.Contains(docs, d => Str(d, "kind") == "ConfigMap" && Str(d, "metadata", "name") == "securityagent-policies");
            Assert.Superset(new HashSet<string> { "/sys/fs/bpf", "/sys/kernel/tracing", "/sys/kernel/security", "/sys/fs/cgroup", Path.GetDirectoryName(settings.ApiSocket)! }, mounts.Keys.ToHashSet());

            // kubectl logs -c export-stdout: the sidecar follows the file the agent exports to, through a shared volume.
            var tail = containers["export-stdout"];
            Assert.Equal(["tail", "-q", "-n", "+1", "-F", settings.ExportFile], ((YamlSequenceNode)tail["command"]).Select(x => x.ToString()));
            var exportDir = Path.GetDirectoryName(settings.ExportFile)!;
            Assert.Equal(Str(mounts[exportDir], "name"), Str(Seq(tail, "volumeMounts").Single(m => Str(m, "mountPath") == exportDir), "name"));
            Assert.True(settings.ExportFileMaxSize > 0, "the export file rotates");
            Assert.Equal("json", settings.Output);

            var svc = One(docs, "Service");
            var podLabels = (YamlMappingNode)ds["spec"]["template"]["metadata"]["labels"];
            Assert.All(((YamlMappingNode)svc["spec"]["selector"]).Children, kv => Assert.Equal(kv.Value.ToString(), podLabels[kv.Key].ToString()));
            Assert.Equal("metrics", Str(Seq(svc, "spec", "ports").Single(), "targetPort"));

            var verbs = Seq(One(docs, "ClusterRole"), "rules").SelectMany(r => ((YamlSequenceNode)r["verbs"]).Select(v => v.ToString())).ToHashSet();
            Assert.Equal(new HashSet<string> { "get", "list", "watch" }, verbs);
            var binding = One(docs, "ClusterRoleBinding");
            Assert.Equal(Str(pod, "serviceAccountName"), Str(Seq(binding, "subjects").Single(), "name"));
        }
    }

    [KubectlFact]
    public void The_kubernetes_policies_overlay_installs_the_crds_and_the_node_overlay_does_not()
    {
        Assert.Equal(2, Render("kubernetes-policies").Count(d => Str(d, "kind") == "CustomResourceDefinition"));
        Assert.DoesNotContain(Render("node"), d => Str(d, "kind") == "CustomResourceDefinition");
    }

    [KubectlFact]
    public void The_otlp_overlay_points_the_agent_at_a_collector_and_a_servicemonitor_at_the_metrics_service()
    {
        var docs = Render("otlp");
        var agent = Seq(One(docs, "DaemonSet"), "spec", "template", "spec", "containers").Single(c => Str(c, "name") == "agent");
        var settings = AgentSettings(docs, agent);
        Assert.StartsWith("http://", settings.OtlpEndpoint);
        Assert.Equal("grpc", settings.OtlpProtocol);
        var monitor = One(docs, "ServiceMonitor");
        var svc = One(docs, "Service");
        Assert.All(((YamlMappingNode)monitor["spec"]["selector"]["matchLabels"]).Children, kv => Assert.Equal(kv.Value.ToString(), Str(svc, "metadata", "labels", kv.Key.ToString())));
        Assert.Equal(Str(Seq(svc, "spec", "ports").Single(), "name"), Str(Seq(monitor, "spec", "endpoints").Single(), "port"));
        Assert.Equal("/metrics", Str(Seq(monitor, "spec", "endpoints").Single(), "path"));
    }

    [Fact]
    public void The_image_carries_no_policies_and_runs_the_agent_with_its_defaults()
    {
        var dockerfile = File.ReadAllText(Repo.File_("Dockerfile"));
        Assert.DoesNotContain("COPY policies", dockerfile);
        Assert.Contains($"mkdir -p {AgentOptions.DefaultPolicyDir}", dockerfile);
        Assert.Contains("CMD [\"run\"]", dockerfile);
    }
}
