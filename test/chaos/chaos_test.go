// Package chaos kills the operator at random moments of a drain, over and
// over, and checks that the drain still ends consistent: every target drained
// with a marker written for its own instantiation, and after a cancel, not one
// marker of ours anywhere. CHAOS_PODS and CHAOS_KILLS size it (`make chaos`:
// 100 pods, 20 kills; the default is CI's short run).
package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
	"github.com/hermes-agent/hermes-drain-operator/test/cluster"
	"github.com/hermes-agent/hermes-drain-operator/test/gatewaysim"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func TestKilledManagerLosesNoDrain(t *testing.T) {
	pods, kills := envInt("CHAOS_PODS", 20), envInt("CHAOS_KILLS", 5)
	ctx := context.Background()
	lc, _, stop, err := cluster.StartWithGateways(ctx, cluster.Options{}, 2*time.Second, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	bin, err := cluster.BuildManager(lc.Dir)
	if err != nil {
		t.Fatal(err)
	}
	ns := "fleet"
	if err := lc.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	gws, err := lc.CreateGateways(ctx, ns, pods, map[string]string{"app": "hermes-gateway"})
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range gws {
		if err := gatewaysim.AddTurns(g.Home, i%3); err != nil {
			t.Fatal(err)
		}
	}
	gwd := &drainv1.GatewayDrain{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "d"}}
	gwd.Spec.Selector.MatchLabels = map[string]string{"app": "hermes-gateway"}
	if err := lc.Client.Create(ctx, gwd); err != nil {
		t.Fatal(err)
	}
	args := []string{"--poll-interval=200ms", "--idle-poll-interval=1s", "--exec-concurrency=8"}
	get := func() *drainv1.GatewayDrain {
		got := &drainv1.GatewayDrain{}
		if err := lc.Client.Get(ctx, client.ObjectKeyFromObject(gwd), got); err != nil {
			t.Fatal(err)
		}
		return got
	}

	// Kill it at random moments; each restart picks up where the status says.
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	t.Logf("%-5s %-9s %s", "kill", "after", "targets at the kill (pending/draining/drained/failed)")
	for i := range kills {
		m, err := lc.StartManager(bin, fmt.Sprintf("manager-%d", i), lc.Kubeconfig, args...)
		if err != nil {
			t.Fatal(err)
		}
		after := time.Duration(300+rnd.IntN(5700)) * time.Millisecond
		time.Sleep(after) // the random kill point is the point of this test
		m.Kill()
		c := get().Status.Counts
		t.Logf("%-5d %-9s %d/%d/%d/%d of %d", i+1, after, c.Pending, c.Draining, c.Drained, c.Failed, c.Targets)
	}

	m, err := lc.StartManager(bin, "manager-final", lc.Kubeconfig, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	var got *drainv1.GatewayDrain
	testenv.Eventually(t, 2*time.Minute, func() (bool, string) {
		got = get()
		return meta.IsStatusConditionTrue(got.Status.Conditions, drainv1.ConditionDrained), fmt.Sprintf("not Drained: %+v", got.Status.Counts)
	})
	if int(got.Status.Counts.Targets) != pods || int(got.Status.Counts.Drained) != pods {
		t.Errorf("targets lost or not drained: %+v", got.Status.Counts)
	}
	seen := map[string]bool{}
	for _, tg := range got.Status.Targets {
		if seen[tg.PodName] {
			t.Errorf("%s is a target twice", tg.PodName)
		}
		seen[tg.PodName] = true
	}
	for _, g := range gws {
		pod, err := g.Pod(ctx)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := os.ReadFile(filepath.Join(g.Home, marker.Filename))
		o, ok := marker.Parse(raw).Origin()
		if !ok || o.GatewayDrainUID != string(got.UID) || o.PodUID != string(pod.UID) {
			t.Errorf("%s: marker %s is not this drain's for this instantiation", g.Name, raw)
		}
	}

	// Cancel, with one more kill in the middle of the release.
	patch := client.MergeFrom(got.DeepCopy())
	got.Spec.Action = drainv1.ActionCancel
	if err := lc.Client.Patch(ctx, got, patch); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		c := get().Status.Counts
		return c.Released > 0, "nothing released yet"
	})
	m.Kill()
	m, err = lc.StartManager(bin, "manager-release", lc.Kubeconfig, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		return meta.IsStatusConditionTrue(get().Status.Conditions, drainv1.ConditionReady), "not released"
	})
	for _, g := range gws {
		if raw, err := os.ReadFile(filepath.Join(g.Home, marker.Filename)); err == nil {
			t.Errorf("%s: marker left after cancel: %s", g.Name, raw)
		}
	}
}
