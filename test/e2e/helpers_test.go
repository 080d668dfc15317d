package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
	"github.com/hermes-agent/hermes-drain-operator/test/cluster"
	"github.com/hermes-agent/hermes-drain-operator/test/gatewaysim"
)

const wait = 60 * time.Second

var gatewayLabels = map[string]string{"app": "hermes-gateway"}

// gateways creates n running gateway pods, each with turns in flight.
func gateways(t *testing.T, ns string, n, turns int) []*cluster.Gateway {
	t.Helper()
	gs, err := lc.CreateGateways(context.Background(), ns, n, gatewayLabels)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gs {
		if turns > 0 {
			if err := gatewaysim.AddTurns(g.Home, turns); err != nil {
				t.Fatal(err)
			}
		}
	}
	return gs
}

// apply applies a GatewayDrain with kubectl; extra is YAML spec lines.
func apply(t *testing.T, ns, name string, extra ...string) {
	t.Helper()
	manifest := fmt.Sprintf("apiVersion: drain.hermes.dev/v1alpha1\nkind: GatewayDrain\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  selector:\n    matchLabels:\n      app: hermes-gateway\n", name, ns)
	for _, l := range extra {
		manifest += "  " + l + "\n"
	}
	path := filepath.Join(t.TempDir(), "gwd.yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := kubectl("apply", "-f", path); err != nil {
		t.Fatalf("kubectl apply: %v: %s", err, out)
	}
}

func mustKubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := kubectl(args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return out
}

// kubectlWait waits for a condition as rollout automation does, with kubectl
// wait, and quotes the drain's status when the wait times out.
func kubectlWait(t *testing.T, ns, name, condition, timeout string) {
	t.Helper()
	args := []string{"-n", ns, "wait", "--for=condition=" + condition, "gwd/" + name, "--timeout=" + timeout}
	if out, err := kubectl(args...); err != nil {
		b, _ := json.Marshal(getDrain(t, ns, name).Status)
		t.Fatalf("kubectl %s: %v: %s\nstatus %s", strings.Join(args, " "), err, out, b)
	}
}

func cancelDrain(t *testing.T, ns, name string) {
	t.Helper()
	mustKubectl(t, "-n", ns, "patch", "gwd", name, "--type=merge", "-p", `{"spec":{"action":"Cancel"}}`)
}

func getDrain(t *testing.T, ns, name string) *drain.Observed {
	t.Helper()
	gwd, err := drain.Observe(context.Background(), k8s, client.ObjectKey{Namespace: ns, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return gwd
}

func waitDrain(t *testing.T, ns, name, what string, cond func(*drain.Observed) bool) *drain.Observed {
	t.Helper()
	var gwd *drain.Observed
	testenv.Eventually(t, wait, func() (bool, string) {
		gwd = getDrain(t, ns, name)
		b, _ := json.Marshal(gwd.Status)
		return cond(gwd), what + "; status " + string(b)
	})
	return gwd
}

func conditionReason(gwd *drainv1.GatewayDrain, typ string) string {
	if c := meta.FindStatusCondition(gwd.Status.Conditions, typ); c != nil {
		return string(c.Status) + "/" + c.Reason
	}
	return ""
}

// waitReleased checks that no gateway holds a marker any more, after what
// released them, and waits until each gateway runs again.
func waitReleased(t *testing.T, gws []*cluster.Gateway, after string) {
	t.Helper()
	for _, g := range gws {
		if m := g.Marker(); m != nil {
			t.Errorf("%s: marker left after %s: %s", g.Name, after, m)
		}
		waitSim(t, g, marker.StateRunning)
	}
}

// waitSim waits until the simulated gateway reports state.
func waitSim(t *testing.T, g *cluster.Gateway, state string) {
	t.Helper()
	testenv.Eventually(t, wait, func() (bool, string) {
		st, err := gatewaysim.ReadState(g.Home)
		return err == nil && st.State == state, fmt.Sprintf("%s: gateway state %+v (%v), want %s", g.Name, st, err, state)
	})
}
