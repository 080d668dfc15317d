package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
	"github.com/hermes-agent/hermes-drain-operator/test/gatewaysim"
)

// The rollout recipe of docs/rollout.md, step by step, on a StatefulSet of
// gateways: drain, wait for Drained, roll the StatefulSet to a new template,
// the drain completes by itself as pods are replaced, delete the drain.
func TestRolloutRecipe(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	ctx := context.Background()
	const replicas = 3
	gws, err := lc.GatewayStatefulSet(ctx, ns, "gw", replicas, gatewayLabels, "hermes-gateway:1", appsv1.RollingUpdateStatefulSetStrategyType)
	if err != nil {
		t.Fatal(err)
	}
	mustKubectl(t, "-n", ns, "rollout", "status", "statefulset/gw", "--timeout=60s")
	for _, g := range gws {
		if err := gatewaysim.AddTurns(g.Home, 1); err != nil {
			t.Fatal(err)
		}
	}

	// 1. Drain, and wait until every gateway is drained.
	apply(t, ns, "upgrade")
	kubectlWait(t, ns, "upgrade", "Drained", "60s")
	for _, g := range gws {
		if m := g.Marker(); m == nil {
			t.Fatalf("%s: drained without a marker", g.Name)
		}
	}
	// 2. The disruptive work: a new template, rolled out pod by pod.
	mustKubectl(t, "-n", ns, "patch", "statefulset", "gw", "--type=merge", "-p", `{"spec":{"template":{"spec":{"containers":[{"name":"gateway","image":"hermes-gateway:2"}]}}}}`)
	mustKubectl(t, "-n", ns, "rollout", "status", "statefulset/gw", "--timeout=90s")
	// 3. The drain completed by itself: every target's instantiation is
	// over, the new ones are not drained, and no marker of ours is left.
	got := waitDrain(t, ns, "upgrade", "all restarted", func(d *drain.Observed) bool {
		return d.Status.Counts.Restarted == replicas
	})
	if r := conditionReason(got.GatewayDrain, drainv1.ConditionDrained); r != "True/"+drainv1.ReasonDrained {
		t.Errorf("Drained is %s after the rollout", r)
	}
	for _, g := range gws {
		testenv.Eventually(t, wait, func() (bool, string) {
			m := g.Marker()
			return m == nil, fmt.Sprintf("%s: marker left on the new instantiation: %s", g.Name, m)
		})
		waitSim(t, g, marker.StateRunning)
	}
	// 4. Clean up.
	mustKubectl(t, "-n", ns, "delete", "gwd", "upgrade", "--timeout=60s")
	if _, err := os.Stat(filepath.Join(gws[0].Home, marker.Filename)); err == nil {
		t.Errorf("a marker appeared after the cleanup")
	}
}
