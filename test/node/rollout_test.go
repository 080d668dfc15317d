package node

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
	"github.com/hermes-agent/hermes-drain-operator/test/cluster"
)

// gatewayChart is docs/rollout.md's Helm recipe, as a chart.
var gatewayChart = filepath.Join(cluster.RepoRoot(), "docs", "examples", "hermes-gateway")

// The Helm recipe of docs/rollout.md, for real: `helm upgrade` of the
// example gateway chart drains every gateway before Helm touches a pod, holds
// each one drained until its pod is replaced, and its post-upgrade hook lets
// the drain go once the rollout is done. The hooks run kubectl from its
// upstream image name (make image writes it from the pinned kubectl).
func TestHelmUpgradeHoldsEveryGatewayUntilItsPodIsReplaced(t *testing.T) {
	ctx := context.Background()
	ns := testenv.CreateNamespace(t, lc.Client)
	api, err := url.Parse(lc.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	// The node has no pod network: the pods run in the node's, and the hooks
	// reach the API server at its loopback address.
	values := []string{"-n", ns, "--set", "image=hermes-gateway-sim:dev,hostNetwork=true,drain.podSpec.hostNetwork=true",
		"--set", "drain.env[0].name=KUBERNETES_SERVICE_HOST,drain.env[1].name=KUBERNETES_SERVICE_PORT",
		"--set-string", "drain.env[0].value=" + api.Hostname() + ",drain.env[1].value=" + api.Port()}
	if out, err := lc.Run("helm", append([]string{"install", "gw", gatewayChart, "--wait", "--timeout", "120s"}, values...)...); err != nil {
		t.Fatalf("helm install: %v: %s", err, out)
	}
	t.Cleanup(func() { _, _ = lc.Run("helm", "uninstall", "gw", "-n", ns, "--wait") })
	old := gatewayPods(t, ns)
	for _, p := range old {
		waitRunsFree(t, p)
	}

	upgrade := make(chan error, 1)
	go func() {
		// No --wait: the recipe must not rely on Helm waiting for the rollout.
		out, err := lc.Run("helm", append([]string{"upgrade", "gw", gatewayChart, "--timeout", "240s", "--set-string", "podAnnotations.revision=2"}, values...)...)
		if err != nil {
			err = fmt.Errorf("%w: %s", err, out)
		}
		upgrade <- err
	}()

	// Until Helm returns, watch the drain and every old pod: once the drain
	// is Drained, an old pod that still runs must hold its marker and drain.
	var drainedAt time.Time
	checked := map[string]int{}
	for done := false; !done; {
		select {
		case err := <-upgrade:
			if err != nil {
				jobs, _ := lc.Run("kubectl", "-n", ns, "get", "jobs,pods,gatewaydrains", "-o", "wide")
				t.Fatalf("helm upgrade: %v\n%s", err, jobs)
			}
			done = true
			continue
		case <-time.After(200 * time.Millisecond):
		}
		gwd := &drainv1.GatewayDrain{}
		err := lc.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "gw-upgrade"}, gwd)
		if err == nil && drainedAt.IsZero() && meta.IsStatusConditionTrue(gwd.Status.Conditions, drainv1.ConditionDrained) {
			drainedAt = time.Now()
			for name, p := range old {
				if !running(ctx, ns, name, p.UID) {
					t.Errorf("%s was replaced before the drain was Drained", name)
				}
			}
		}
		if err != nil && !apierrors.IsNotFound(err) || drainedAt.IsZero() {
			continue
		}
		for name, p := range old {
			if !running(ctx, ns, name, p.UID) {
				continue
			}
			state, err := lc.Run("kubectl", "-n", ns, "exec", name, "--", "sh", "-c", `[ -e /opt/data/.drain_request.json ] && echo marker; cat /opt/data/gateway_state.json`)
			if err != nil || !running(ctx, ns, name, p.UID) {
				continue // it stopped meanwhile
			}
			if !strings.HasPrefix(state, "marker") || strings.Contains(state, `"gateway_state":"running"`) {
				t.Errorf("%s (the old pod, %s) was released before it was replaced: %s", name, p.UID, state)
			}
			checked[name]++
		}
	}
	if drainedAt.IsZero() {
		t.Fatal("the upgrade finished without the drain ever being Drained")
	}
	t.Logf("checks of each old pod between Drained and its replacement: %v", checked)
	if len(checked) != len(old) {
		t.Errorf("only %d of the %d old pods were seen drained before their replacement", len(checked), len(old))
	}

	// After the upgrade: the drain is gone, every pod is new and takes turns.
	gwd := &drainv1.GatewayDrain{}
	if err := lc.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "gw-upgrade"}, gwd); !apierrors.IsNotFound(err) {
		t.Errorf("the post-upgrade hook left the drain: %v %+v", err, gwd.Status.Conditions)
	}
	for name, p := range gatewayPods(t, ns) {
		if p.UID == old[name].UID {
			t.Errorf("%s was not replaced", name)
		}
		waitRunsFree(t, p)
	}
}

// gatewayPods are the example chart's running pods, by name.
func gatewayPods(t *testing.T, ns string) map[string]*corev1.Pod {
	t.Helper()
	pods := map[string]*corev1.Pod{}
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		var list corev1.PodList
		if err := lc.Client.List(context.Background(), &list, client.InNamespace(ns), client.MatchingLabels{"app.kubernetes.io/instance": "gw"}); err != nil {
			return false, err.Error()
		}
		clear(pods)
		for i := range list.Items {
			p := &list.Items[i]
			if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
				pods[p.Name] = p
			}
		}
		return len(pods) == 2, fmt.Sprintf("%d gateway pods running, want 2", len(pods))
	})
	return pods
}

// running reports whether the pod of this name is still the one with uid,
// not terminating.
func running(ctx context.Context, ns, name string, uid types.UID) bool {
	p := &corev1.Pod{}
	err := lc.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, p)
	return err == nil && p.UID == uid && p.DeletionTimestamp == nil
}

// docs/rollout.md quotes the recipe this test runs, byte for byte.
func TestRolloutDocQuotesTheTestedRecipe(t *testing.T) {
	tmpl, err := os.ReadFile(filepath.Join(gatewayChart, "templates", "drain-hooks.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(cluster.RepoRoot(), "docs", "rollout.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```yaml\n"+string(tmpl)+"```") {
		t.Error("docs/rollout.md does not quote docs/examples/hermes-gateway/templates/drain-hooks.yaml as it is")
	}
}
