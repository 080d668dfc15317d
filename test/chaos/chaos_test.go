package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
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
	gws, gwd := fleet(t, "fleet", pods)
	args := []string{"--poll-interval=200ms", "--idle-poll-interval=1s", "--exec-concurrency=8"}
	// Kill it at random moments; each restart picks up where the status says.
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	t.Logf("%-5s %-9s %s", "kill", "after", "targets at the kill (pending/draining/drained/failed)")
	for i := range kills {
		m, err := lc.StartManager(managerBin, fmt.Sprintf("manager-%d", i), lc.Kubeconfig, args...)
		if err != nil {
			t.Fatal(err)
		}
		after := time.Duration(300+rnd.IntN(5700)) * time.Millisecond
		time.Sleep(after) // the random kill point is the point of this test
		m.Kill()
		c := get(t, gwd).Status.Counts
		t.Logf("%-5d %-9s %d/%d/%d/%d of %d", i+1, after, c.Pending, c.Draining, c.Drained, c.Failed, c.Targets)
	}

	m, err := lc.StartManager(managerBin, "manager-final", lc.Kubeconfig, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	var got *drainv1.GatewayDrain
	testenv.Eventually(t, 2*time.Minute, func() (bool, string) {
		got = get(t, gwd)
		return meta.IsStatusConditionTrue(got.Status.Conditions, drainv1.ConditionDrained), fmt.Sprintf("not Drained: %+v", got.Status.Counts)
	})
	checkDrained(t, gws, got)

	// Cancel, with one more kill in the middle of the release.
	patch := client.MergeFrom(got.DeepCopy())
	got.Spec.Action = drainv1.ActionCancel
	if err := lc.Client.Patch(ctx, got, patch); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		c := get(t, gwd).Status.Counts
		return c.Released > 0, "nothing released yet"
	})
	m.Kill()
	m, err = lc.StartManager(managerBin, "manager-release", lc.Kubeconfig, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		return meta.IsStatusConditionTrue(get(t, gwd).Status.Conditions, drainv1.ConditionReady), "not released"
	})
	checkNoMarkers(t, gws)
}
