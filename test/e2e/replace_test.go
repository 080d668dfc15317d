package e2e

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/test/cluster"
	"github.com/hermes-agent/hermes-drain-operator/test/gatewaysim"
)

// The upgrade recipes of docs/rollout.md for an OnDelete StatefulSet, step
// by step: apply the new template (nothing restarts), then one
// drain-and-replace, first with kubectl apply and kubectl wait, then with
// the plugin's restart. Each runs every pod's new template, never has more
// gateways marked at once than maxUnavailable allows, and leaves no marker
// (issue 26, items 3 and 4).
func TestTheOnDeleteUpgradeRecipes(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	ctx := context.Background()
	const replicas = 4
	gws, err := lc.GatewayStatefulSet(ctx, ns, "gw", replicas, gatewayLabels, "hermes-gateway:1", appsv1.OnDeleteStatefulSetStrategyType)
	if err != nil {
		t.Fatal(err)
	}
	upgrade := func(image string, run func()) {
		t.Helper()
		for _, g := range gws {
			if err := gatewaysim.AddTurns(g.Home, 1); err != nil {
				t.Fatal(err)
			}
		}
		// 1. The new template: an OnDelete StatefulSet restarts nothing.
		mustKubectl(t, "-n", ns, "set", "image", "statefulset/gw", "gateway="+image)
		// 2. One drain-and-replace, at most half the gateways out at once.
		most := watchMarked(t, gws)
		run()
		if n := most(); n > replicas/2 {
			t.Errorf("%d gateways marked at once; maxUnavailable is 50%% of %d", n, replicas)
		}
		for _, g := range gws {
			pod, err := g.Pod(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if img := pod.Spec.Containers[0].Image; img != image {
				t.Errorf("%s runs %s, want %s", g.Name, img, image)
			}
			if m := g.Marker(); m != nil {
				t.Errorf("%s: marker left: %s", g.Name, m)
			}
			waitSim(t, g, marker.StateRunning)
		}
	}

	upgrade("hermes-gateway:2", func() {
		apply(t, ns, "upgrade-v2", "replace:", "  maxUnavailable: 50%")
		kubectlWait(t, ns, "upgrade-v2", "Replaced", "120s")
		got := getDrain(t, ns, "upgrade-v2")
		if got.Status.Counts.Replaced != replicas || conditionReason(got.GatewayDrain, drainv1.ConditionReady) != "True/"+drainv1.ReasonReplaced {
			t.Errorf("counts %+v, Ready %s", got.Status.Counts, conditionReason(got.GatewayDrain, drainv1.ConditionReady))
		}
	})
	upgrade("hermes-gateway:3", func() {
		out, _, code := hermesDrain(t, ns, "restart", "-l", "app=hermes-gateway", "--name", "upgrade-v3", "--max-unavailable", "50%", "--wait", "--wait-timeout", "120s")
		if code != 0 || !strings.Contains(out, "gatewaydrain.drain.hermes.dev/upgrade-v3 created") {
			t.Fatalf("restart exited %d", code)
		}
		if !strings.Contains(out, "upgrade-v3 4/4 replaced, Replaced=True Replaced") || !strings.Contains(out, "2 out at once (at most 2)") {
			t.Errorf("the progress does not show the wave: %s", out)
		}
		got := getDrain(t, ns, "upgrade-v3")
		if !drain.Replaces(got.GatewayDrain) || got.Status.Progress != "4/4" {
			t.Errorf("spec.replace %+v, progress %s", got.Spec.Replace, got.Status.Progress)
		}
	})
	// Nothing to undo: the records go.
	mustKubectl(t, "-n", ns, "delete", "gwd", "upgrade-v2", "upgrade-v3", "--timeout=60s")
}

// watchMarked counts, until the returned function is called, the most
// gateways whose home held a marker at once; the function returns it.
func watchMarked(t *testing.T, gws []*cluster.Gateway) func() int {
	t.Helper()
	var most atomic.Int32
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			n := 0
			for _, g := range gws {
				if g.Marker() != nil {
					n++
				}
			}
			if int32(n) > most.Load() {
				most.Store(int32(n))
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	return func() int {
		close(stop)
		wg.Wait()
		return int(most.Load())
	}
}

// A pod no controller replaces is never evicted: a drain-and-replace that
// selects one says so and writes nothing.
func TestARestartOfAPodWithoutAControllerIsRefused(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	gws := gateways(t, ns, 1, 0)
	_, errOut, code := hermesDrain(t, ns, "restart", "-l", "app=hermes-gateway", "--name", "r", "--wait")
	if code != 2 || !strings.Contains(errOut, "CannotReplace") || !strings.Contains(errOut, "gw-0: no controller") {
		t.Errorf("exit %d (want 2, stalled): %s", code, errOut)
	}
	pod := &corev1.Pod{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "gw-0"}, pod); err != nil || pod.DeletionTimestamp != nil || gws[0].Marker() != nil {
		t.Errorf("gw-0 touched: %v, marker %s", err, gws[0].Marker())
	}
}

// A RollingUpdate StatefulSet's gateways restarted drained with the
// plugin: each evicted pod comes back under its name, from the template
// the StatefulSet has (issue 26, item 3).
func TestARollingUpdateStatefulSetIsRestartedDrained(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	ctx := context.Background()
	gws, err := lc.GatewayStatefulSet(ctx, ns, "gw", 2, gatewayLabels, "hermes-gateway:1", appsv1.RollingUpdateStatefulSetStrategyType)
	if err != nil {
		t.Fatal(err)
	}
	uids := map[string]types.UID{}
	for _, g := range gws {
		pod, err := g.Pod(ctx)
		if err != nil {
			t.Fatal(err)
		}
		uids[g.Name] = pod.UID
	}
	if _, _, code := hermesDrain(t, ns, "restart", "-l", "app=hermes-gateway", "--name", "restart", "--wait", "--wait-timeout", "90s"); code != 0 {
		t.Fatalf("restart exited %d", code)
	}
	for _, g := range gws {
		pod, err := g.Pod(ctx)
		if err != nil || pod.UID == uids[g.Name] {
			t.Errorf("%s not replaced (%v)", g.Name, err)
		}
		if m := g.Marker(); m != nil {
			t.Errorf("%s: marker left: %s", g.Name, m)
		}
		waitSim(t, g, marker.StateRunning)
	}
}
