using SecurityAgent.Deploy;
using SecurityAgent.Tests.Support;
using YamlDotNet.RepresentationModel;

namespace SecurityAgent.Tests.Unit;

public class DeployTests
{
    private static List<YamlMappingNode> Docs(string file)
    {
        var s = new YamlStream();
        s.Load(new StringReader(File.ReadAllText(Repo.File_("deploy", file))));
        return s.Documents.Select(d => (YamlMappingNode)d.RootNode).ToList();
    }

    private static string Str(YamlNode n, params string[] path) =>
        path.Aggregate(n, (cur, key) => ((YamlMappingNode)cur)[key]).ToString();

    [Fact]
    public void The_committed_crds_equal_the_ones_generated_from_the_policy_schema()
    {
        var generated = CrdGenerator.Generate(File.ReadAllText(Repo.File_("schemas", "tracingpolicy.schema.json")));
        Assert.True(generated == File.ReadAllText(Repo.File_("deploy", "crds.yaml")), "deploy/crds.yaml is stale: run `make crds`");
    }

    [Fact]
    public void The_crds_are_v1_structural_schemas_for_both_kinds()
    {
        var crds = Docs("crds.yaml");
        Assert.Equal(["TracingPolicy", "TracingPolicyNamespaced"], crds.Select(c => Str(c, "spec", "names", "kind")));
        Assert.Equal(["Cluster", "Namespaced"], crds.Select(c => Str(c, "spec", "scope")));
        foreach (var crd in crds)
        {
            Assert.Equal(("apiextensions.k8s.io/v1", "CustomResourceDefinition"), (Str(crd, "apiVersion"), Str(crd, "kind")));
            Assert.Equal("securityagent.io", Str(crd, "spec", "group"));
            var version = (YamlMappingNode)((YamlSequenceNode)crd["spec"]["versions"])[0];
            Assert.Equal("v1alpha1", Str(version, "name"));
            var schema = (YamlMappingNode)version["schema"]["openAPIV3Schema"];
            Assert.Equal("object", Str(schema, "type"));
            var text = File.ReadAllText(Repo.File_("deploy", "crds.yaml"));
            Assert.DoesNotContain("$ref", text);
            Assert.DoesNotContain("additionalProperties: false", text);
            // A field of the policy language, reachable through the generated schema.
            Assert.Equal("string", Str(schema, "properties", "spec", "properties", "kprobes", "items", "properties", "call", "type"));
        }
    }

    [Fact]
    public void The_manifests_are_kubernetes_objects_with_least_privilege_rbac_and_the_mounts_the_agent_needs()
    {
        var docs = Docs("agent.yaml");
        Assert.All(docs, d => { Assert.False(string.IsNullOrEmpty(Str(d, "apiVersion"))); Assert.False(string.IsNullOrEmpty(Str(d, "metadata", "name"))); });
        Assert.Equal(["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet"], docs.Select(d => Str(d, "kind")));

        var role = docs.Single(d => Str(d, "kind") == "ClusterRole");
        var verbs = ((YamlSequenceNode)role["rules"]).Cast<YamlMappingNode>().SelectMany(r => ((YamlSequenceNode)r["verbs"]).Select(v => v.ToString())).ToHashSet();
        Assert.Equal(new HashSet<string> { "get", "list", "watch" }, verbs);

        var ds = docs.Single(d => Str(d, "kind") == "DaemonSet");
        var pod = (YamlMappingNode)ds["spec"]["template"]["spec"];
        Assert.Equal("true", Str(pod, "hostPID"));
        var mounts = ((YamlSequenceNode)((YamlMappingNode)((YamlSequenceNode)pod["containers"])[0])["volumeMounts"]).Cast<YamlMappingNode>().Select(m => Str(m, "mountPath")).ToList();
        Assert.Superset(new HashSet<string> { "/sys/fs/bpf", "/sys/kernel/tracing", "/sys/kernel/security", "/sys/fs/cgroup", "/var/run/securityagent" }, mounts.ToHashSet());
    }
}
