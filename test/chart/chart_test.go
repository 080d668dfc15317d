// Package chart checks the Helm chart: lint, what it renders, that its CRD
// and RBAC are the code's, that a wrong value fails at install, and that
// everything it renders passes a server-side dry run with strict validation
// against a real API server.
package chart

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
)

var (
	env   *testenv.Env
	root  = filepath.Join("..", "..")
	chart = filepath.Join(root, "charts", "hermes-drain-operator")
	bin   = filepath.Join(root, "bin")
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env)) }

func helm(args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command(filepath.Join(bin, "helm"), args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// render runs helm template with --set values and returns the objects.
func render(t *testing.T, set ...string) []*unstructured.Unstructured {
	t.Helper()
	args := []string{"template", "hdo", chart, "--namespace", "hermes-drain-system", "--kube-version", "1.36.3"}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := helm(args...)
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", set, err, out)
	}
	return decode(t, out)
}

func decode(t *testing.T, manifests string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := k8syaml.NewYAMLOrJSONDecoder(strings.NewReader(manifests), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			return objs
		} else if err != nil {
			t.Fatal(err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

func ofKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func TestLint(t *testing.T) {
	for _, set := range [][]string{nil, {"replicaCount=3", "watchNamespaces={a,b}", "metrics.serviceMonitor.enabled=true", "metrics.secure=false",
		"prometheusRule.enabled=true", "grafanaDashboard.enabled=true"}} {
		args := []string{"lint", "--strict", chart, "--kube-version", "1.36.3"}
		for _, s := range set {
			args = append(args, "--set", s)
		}
		if out, err := helm(args...); err != nil {
			t.Errorf("helm lint %v: %v\n%s", set, err, out)
		}
	}
}

func TestCRDsAreControllerGensOutput(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*unstructured.Unstructured{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		crd := decode(t, string(raw))[0]
		want[crd.GetName()] = crd
	}
	crds := ofKind(render(t), "CustomResourceDefinition")
	if len(crds) != len(want) || len(want) != 2 {
		t.Fatalf("%d CRDs rendered, %d generated: want GatewayDrain and TargetSlice", len(crds), len(want))
	}
	for _, crd := range crds {
		got := crd.DeepCopy()
		ann := got.GetAnnotations()
		if ann["helm.sh/resource-policy"] != "keep" {
			t.Errorf("%s is not kept on uninstall: %v", got.GetName(), ann)
		}
		delete(ann, "helm.sh/resource-policy")
		got.SetAnnotations(ann)
		if w := want[got.GetName()]; w == nil || !reflect.DeepEqual(got.Object, w.Object) {
			t.Errorf("the chart's %s differs from controller-gen's output: run `make generate`", got.GetName())
		}
	}
	if n := len(ofKind(render(t, "crds.install=false"), "CustomResourceDefinition")); n != 0 {
		t.Errorf("crds.install=false still renders %d CRDs", n)
	}
	for _, crd := range ofKind(render(t, "crds.keep=false"), "CustomResourceDefinition") {
		if ann := crd.GetAnnotations(); ann["helm.sh/resource-policy"] != "" {
			t.Errorf("crds.keep=false still keeps %s: %v", crd.GetName(), ann)
		}
	}
}

// rules returns an RBAC object's rules.
func rules(o *unstructured.Unstructured) []any {
	r, _, _ := unstructured.NestedSlice(o.Object, "rules")
	return r
}

func grants(o *unstructured.Unstructured, resource string) bool {
	for _, r := range rules(o) {
		res, _, _ := unstructured.NestedStringSlice(r.(map[string]any), "resources")
		if slices.Contains(res, resource) {
			return true
		}
	}
	return false
}

func TestRBACIsTheCodesAndLeastPrivilege(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	generated := decode(t, string(raw))[0]

	all := render(t)
	var manager *unstructured.Unstructured
	for _, cr := range ofKind(all, "ClusterRole") {
		if cr.GetName() == "hdo-hermes-drain-operator" {
			manager = cr
		}
	}
	if manager == nil || !reflect.DeepEqual(rules(manager), rules(generated)) {
		t.Fatalf("the chart's ClusterRole rules differ from config/rbac/role.yaml (generated from the code)")
	}

	scoped := render(t, "watchNamespaces={team-a,team-b}")
	for _, kind := range []string{"ClusterRole", "ClusterRoleBinding"} {
		for _, o := range ofKind(scoped, kind) {
			if grants(o, "pods") || grants(o, "pods/exec") || grants(o, "gatewaydrains") {
				t.Errorf("with watchNamespaces, %s %s grants cluster-wide access", kind, o.GetName())
			}
		}
	}
	var execNamespaces []string
	for _, r := range ofKind(scoped, "Role") {
		if grants(r, "pods/exec") {
			execNamespaces = append(execNamespaces, r.GetNamespace())
			if !reflect.DeepEqual(rules(r), rules(generated)) {
				t.Errorf("Role in %s has rules other than the code's", r.GetNamespace())
			}
		}
	}
	if !reflect.DeepEqual(execNamespaces, []string{"team-a", "team-b"}) {
		t.Errorf("pods/exec granted in %v, want team-a and team-b", execNamespaces)
	}
	for _, objs := range [][]*unstructured.Unstructured{all, scoped} {
		for _, o := range objs {
			if (o.GetKind() == "Role" || o.GetKind() == "ClusterRole") && grants(o, "secrets") {
				t.Errorf("%s %s grants secrets", o.GetKind(), o.GetName())
			}
		}
	}
}

// With exec off (a fleet that runs the agent everywhere), no rule grants
// pods/exec and the manager is told so; otherwise the rules are the code's.
func TestExecOffGrantsNoExec(t *testing.T) {
	for _, set := range [][]string{{"exec.enabled=false"}, {"exec.enabled=false", "watchNamespaces={team-a}"}} {
		objs := render(t, set...)
		for _, o := range objs {
			if (o.GetKind() == "Role" || o.GetKind() == "ClusterRole") && grants(o, "pods/exec") {
				t.Errorf("%v: %s %s grants pods/exec", set, o.GetKind(), o.GetName())
			}
		}
		args := toStrings(deployment(t, objs)["containers"].([]any)[0].(map[string]any)["args"])
		if !slices.Contains(args, "--exec=false") {
			t.Errorf("%v: args %q", set, args)
		}
	}
	if out, err := helm("template", "hdo", chart, "--kube-version", "1.36.3", "--set", "exec.enabled=false,agent.enabled=false"); err == nil || !strings.Contains(out, "could reach no gateway") {
		t.Errorf("exec and agent both off: %v %s", err, out)
	}
}

// The operator requests its tokens for agents itself, each for one pod, as
// its own ServiceAccount, which may create tokens of itself and of no other
// account; without the agent, it may create none.
func TestTheAgentTokensAreTheOperatorsOwnOnly(t *testing.T) {
	out := render(t)
	spec := deployment(t, out)
	c := spec["containers"].([]any)[0].(map[string]any)
	args := toStrings(c["args"])
	if !slices.Contains(args, "--agent-account=hermes-drain-system/hdo-hermes-drain-operator") || !slices.Contains(args, "--agent-token-lifetime=3600s") {
		t.Errorf("args %q", c["args"])
	}
	rules := roleRules(t, out, "hdo-hermes-drain-operator-agent-tokens")
	const want = "[map[apiGroups:[] resourceNames:[hdo-hermes-drain-operator] resources:[serviceaccounts/token] verbs:[create]]]"
	if fmt.Sprint(rules) != want {
		t.Errorf("the agent tokens' rules: %v, want %s", rules, want)
	}
	if spec["volumes"] != nil {
		t.Errorf("volumes %v: the operator mounts no token for agents", spec["volumes"])
	}
	spec = deployment(t, render(t, "agent.enabled=false"))
	c = spec["containers"].([]any)[0].(map[string]any)
	if strings.Contains(strings.Join(toStrings(c["args"]), " "), "--agent-") {
		t.Errorf("agent off: args %v", c["args"])
	}
	if rules := roleRules(t, render(t, "agent.enabled=false"), "hdo-hermes-drain-operator-agent-tokens"); rules != nil {
		t.Errorf("agent off: the operator may still create tokens: %v", rules)
	}
}

// With networkPolicy.enabled, each namespace of gateways admits only the
// operator's pods to the agents' calls port and no one to their probe port
// (the node's kubelet is always admitted), and leaves every other port of
// the gateway pods open to all.
func TestTheAgentsCallsPortIsTheOperatorsOnly(t *testing.T) {
	if policies := ofKind(render(t), "NetworkPolicy"); len(policies) != 0 {
		t.Errorf("%d NetworkPolicies by default", len(policies))
	}
	policies := ofKind(render(t, "networkPolicy.enabled=true", "networkPolicy.namespaces={team-a,team-b}", "networkPolicy.probePort=9500"), "NetworkPolicy")
	if len(policies) != 2 || policies[0].GetNamespace() != "team-a" || policies[1].GetNamespace() != "team-b" {
		t.Fatalf("%d NetworkPolicies, want one in team-a and one in team-b", len(policies))
	}
	spec, _, _ := unstructured.NestedMap(policies[0].Object, "spec")
	if fmt.Sprint(spec["podSelector"]) != "map[matchLabels:map[drain.hermes.dev/gateway:true]]" || fmt.Sprint(spec["policyTypes"]) != "[Ingress]" {
		t.Errorf("the policy selects %v for %v", spec["podSelector"], spec["policyTypes"])
	}
	rules := spec["ingress"].([]any)
	operator := rules[0].(map[string]any)
	const fromOperator = "[map[namespaceSelector:map[matchLabels:map[kubernetes.io/metadata.name:hermes-drain-system]] podSelector:map[matchLabels:map[app.kubernetes.io/instance:hdo app.kubernetes.io/name:hermes-drain-operator]]]]"
	if fmt.Sprint(operator["from"]) != fromOperator || fmt.Sprint(operator["ports"]) != "[map[port:9443 protocol:TCP]]" {
		t.Errorf("the calls port's rule: %v", operator)
	}
	// Which TCP ports the rules without a from admit to anyone.
	open := func(port float64) bool {
		for _, r := range rules[1:] {
			if _, ok := r.(map[string]any)["from"]; ok {
				continue
			}
			for _, p := range r.(map[string]any)["ports"].([]any) {
				p := p.(map[string]any)
				low, high := p["port"].(float64), p["port"].(float64) // JSON numbers
				if end, ok := p["endPort"].(float64); ok {
					high = end
				}
				if p["protocol"] == "TCP" && low <= port && port <= high {
					return true
				}
			}
		}
		return false
	}
	for port := 1.0; port <= 65535; port++ {
		if want := port != 9443 && port != 9500; open(port) != want {
			t.Errorf("TCP port %v open to all: %v, want %v", port, open(port), want)
		}
	}
	for set, want := range map[string]string{
		"networkPolicy.enabled=true":                                      "needs networkPolicy.namespaces",
		"networkPolicy.enabled=true,hostNetwork=true,watchNamespaces={a}": "host network",
	} {
		if out, err := helm("template", "hdo", chart, "--kube-version", "1.36.3", "--set", set); err == nil || !strings.Contains(out, want) {
			t.Errorf("--set %s: %v, want an error naming %q", set, err, want)
		}
	}
}

// roleRules are the rules of the Role name, or nil when there is none.
func roleRules(t *testing.T, objs []*unstructured.Unstructured, name string) []any {
	t.Helper()
	for _, r := range ofKind(objs, "Role") {
		if r.GetName() == name {
			rules, _, _ := unstructured.NestedSlice(r.Object, "rules")
			return rules
		}
	}
	return nil
}

func deployment(t *testing.T, objs []*unstructured.Unstructured) map[string]any {
	t.Helper()
	d := ofKind(objs, "Deployment")
	if len(d) != 1 {
		t.Fatalf("%d Deployments", len(d))
	}
	spec, _, _ := unstructured.NestedMap(d[0].Object, "spec", "template", "spec")
	return spec
}

func TestHardenedAndHighlyAvailable(t *testing.T) {
	one := render(t)
	spec := deployment(t, one)
	pod := spec["securityContext"].(map[string]any)
	c := spec["containers"].([]any)[0].(map[string]any)
	sc := c["securityContext"].(map[string]any)
	if pod["runAsNonRoot"] != true || pod["seccompProfile"].(map[string]any)["type"] != "RuntimeDefault" ||
		sc["readOnlyRootFilesystem"] != true || sc["allowPrivilegeEscalation"] != false ||
		!reflect.DeepEqual(sc["capabilities"], map[string]any{"drop": []any{"ALL"}}) {
		t.Errorf("security context: pod %v container %v", pod, sc)
	}
	if c["resources"] == nil || c["livenessProbe"] == nil || c["readinessProbe"] == nil {
		t.Errorf("no resources or probes: %v", c)
	}
	memLimit := []any{map[string]any{"name": "GOMEMLIMIT", "valueFrom": map[string]any{"resourceFieldRef": map[string]any{"resource": "limits.memory"}}}}
	if !reflect.DeepEqual(c["env"], memLimit) {
		t.Errorf("env %v: GOMEMLIMIT should follow the memory limit", c["env"])
	}
	args := strings.Join(toStrings(c["args"]), " ")
	for _, want := range []string{"--leader-elect=true", "--zap-encoder=json", "--metrics-secure=true"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %s", args, want)
		}
	}
	if len(ofKind(one, "PodDisruptionBudget")) != 0 || spec["affinity"] != nil {
		t.Errorf("one replica should have neither a PDB nor anti-affinity")
	}
	three := render(t, "replicaCount=3")
	if len(ofKind(three, "PodDisruptionBudget")) != 1 || deployment(t, three)["affinity"] == nil {
		t.Errorf("three replicas should have a PDB and anti-affinity")
	}
	if sm := ofKind(render(t, "metrics.serviceMonitor.enabled=true"), "ServiceMonitor"); len(sm) != 1 {
		t.Errorf("%d ServiceMonitors", len(sm))
	} else if endpoints, _, _ := unstructured.NestedSlice(sm[0].Object, "spec", "endpoints"); endpoints[0].(map[string]any)["honorLabels"] != true {
		t.Errorf("the ServiceMonitor would rename the drains' namespace label exported_namespace: %v", endpoints)
	}
}

// On a node without a pod network the operator runs in the node's network,
// its servers on one address, with the API server's address given.
func TestHostNetworkListensOnTheBindAddress(t *testing.T) {
	spec := deployment(t, render(t, "hostNetwork=true", "bindAddress=127.0.0.1", "healthProbePort=18081",
		"env[0].name=KUBERNETES_SERVICE_HOST", "env[0].value=127.0.0.1"))
	if spec["hostNetwork"] != true || spec["dnsPolicy"] != "ClusterFirstWithHostNet" {
		t.Errorf("hostNetwork %v, dnsPolicy %v", spec["hostNetwork"], spec["dnsPolicy"])
	}
	objs := render(t, "hostNetwork=true")
	if d := ofKind(objs, "Deployment")[0]; fmt.Sprint(d.Object["spec"].(map[string]any)["strategy"]) != "map[rollingUpdate:map[maxSurge:0 maxUnavailable:1]]" {
		t.Errorf("an upgrade must stop the pod holding the node's ports first: strategy %v", d.Object["spec"].(map[string]any)["strategy"])
	}
	c := spec["containers"].([]any)[0].(map[string]any)
	args := toStrings(c["args"])
	for _, want := range []string{"--health-probe-bind-address=127.0.0.1:18081", "--metrics-bind-address=127.0.0.1:8443"} {
		if !slices.Contains(args, want) {
			t.Errorf("args %q lack %s", args, want)
		}
	}
	env := c["env"].([]any)
	if len(env) != 2 || !reflect.DeepEqual(env[1], map[string]any{"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"}) {
		t.Errorf("env %v: want GOMEMLIMIT, then the value's variable", env)
	}
	if spec := deployment(t, render(t)); spec["hostNetwork"] != nil || spec["dnsPolicy"] != nil {
		t.Errorf("by default: hostNetwork %v, dnsPolicy %v", spec["hostNetwork"], spec["dnsPolicy"])
	}
}

// A pod selector reaches the manager as one argument, spaces and all.
func TestPodSelectorIsOneArgument(t *testing.T) {
	for set, want := range map[string]string{
		"": "",
		`podSelector=app in (hermes-gateway\, canary)`: "--pod-selector=app in (hermes-gateway, canary)",
	} {
		var sets []string
		if set != "" {
			sets = append(sets, set)
		}
		c := deployment(t, render(t, sets...))["containers"].([]any)[0].(map[string]any)
		var got string
		for _, a := range toStrings(c["args"]) {
			if strings.HasPrefix(a, "--pod-selector") {
				got = a
			}
		}
		if got != want {
			t.Errorf("--set %q: argument %q, want %q", set, got, want)
		}
	}
}

func toStrings(v any) []string {
	var out []string
	for _, s := range v.([]any) {
		out = append(out, s.(string))
	}
	return out
}

func TestWrongValuesFailAtInstall(t *testing.T) {
	for set, want := range map[string]string{
		"replicaCount=0":                  "/replicaCount",
		"replicaCount=two":                "/replicaCount",
		"logging.level=verbose":           "/logging/level",
		"pollInterval=soon":               "/pollInterval",
		"watchNamespaces={Team_A}":        "/watchNamespaces/0",
		"metrics.port=70000":              "/metrics/port",
		"image.pullPolicy=Sometimes":      "/image/pullPolicy",
		"leaderElection.enabled=maybe":    "/leaderElection/enabled",
		"unknownValue=1":                  "unknownValue",
		"bindAddress=localhost":           "/bindAddress",
		"hostNetwork=yes":                 "/hostNetwork",
		"env[0].value=x":                  "/env/0",
		"agent.tokenExpirationSeconds=60": "/agent/tokenExpirationSeconds",
	} {
		out, err := helm("template", "hdo", chart, "--kube-version", "1.36.3", "--set", set)
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("--set %s: %v, output should name %s:\n%s", set, err, want, out)
		}
	}
}

// Everything the chart renders is accepted by a real API server with strict
// field validation (kubeconform cannot download its schemas here). The
// Prometheus Operator's kinds (ServiceMonitor, PrometheusRule) are left out:
// their CRDs are not installed here.
func TestManifestsPassServerSideDryRun(t *testing.T) {
	ctx := context.Background()
	for _, ns := range []string{"hermes-drain-system", "team-a", "team-b"} {
		if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	kubeconfig, err := env.Kubeconfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, set := range [][]string{nil, {"watchNamespaces={team-a,team-b}", "replicaCount=2", "metrics.secure=false", "hostNetwork=true", "bindAddress=127.0.0.1", "env[0].name=A", "env[0].value=b", "grafanaDashboard.enabled=true"},
		{"watchNamespaces={team-a,team-b}", "networkPolicy.enabled=true"}} {
		args := []string{"template", "hdo", chart, "--namespace", "hermes-drain-system", "--kube-version", "1.36.3"}
		for _, s := range set {
			args = append(args, "--set", s)
		}
		out, err := helm(args...)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "rendered.yaml")
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(filepath.Join(bin, "kubectl"), "--kubeconfig", kubeconfig, "apply", "--dry-run=server", "--validate=strict", "-f", path)
		if got, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("values %d %v: server-side dry run refused: %v\n%s", i, set, err, got)
		}
	}
	// The kustomize layout too.
	cmd := exec.Command(filepath.Join(bin, "kubectl"), "--kubeconfig", kubeconfig, "apply", "--dry-run=server", "--validate=strict", "-k", filepath.Join(root, "config", "default"))
	if got, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("config/default: server-side dry run refused: %v\n%s", err, got)
	}
}
