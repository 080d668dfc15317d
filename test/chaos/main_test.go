// Package chaos breaks what the operator stands on in the middle of a drain
// (its own process, killed at random moments, over and over; the API server,
// restarted) and checks that the drain still ends consistent: every target
// drained with a marker written for its own instantiation, and after a cancel
// or delete, not one marker of ours anywhere. CHAOS_PODS and CHAOS_KILLS size
// the kill test (`make chaos`: 100 pods, 20 kills; the default is CI's short
// run).
package chaos

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/test/cluster"
	"github.com/hermes-agent/hermes-drain-operator/test/gatewaysim"
)

var (
	lc         *cluster.Cluster
	managerBin string
)

var gatewayLabels = map[string]string{"app": "hermes-gateway"}

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	var stop func()
	var err error
	if lc, _, stop, err = cluster.StartWithGateways(context.Background(), cluster.Options{}, gatewaysim.Options{TurnDuration: 2 * time.Second}, 100*time.Millisecond); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stop()
	if managerBin, err = cluster.Build(lc.Dir, "./cmd/manager"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// fleet creates namespace ns with n gateways.
func fleet(t *testing.T, ns string, n int) []*cluster.Gateway {
	t.Helper()
	ctx := context.Background()
	if err := lc.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	gws, err := lc.CreateGateways(ctx, ns, n, gatewayLabels)
	if err != nil {
		t.Fatal(err)
	}
	return gws
}

// addTurns puts i%3 turns in flight on gateway i.
func addTurns(t *testing.T, gws []*cluster.Gateway) {
	t.Helper()
	for i, g := range gws {
		if err := gatewaysim.AddTurns(g.Home, i%3); err != nil {
			t.Fatal(err)
		}
	}
}

// get reads the drain again.
func get(t *testing.T, gwd *drainv1.GatewayDrain) *drain.Observed {
	t.Helper()
	got, err := drain.Observe(context.Background(), lc.Client, client.ObjectKeyFromObject(gwd))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// checkDrained checks that every gateway is a target once, drained, and
// holds a marker of this drain for its current pod.
func checkDrained(t *testing.T, gws []*cluster.Gateway, got *drain.Observed) {
	t.Helper()
	if int(got.Status.Counts.Targets) != len(gws) || int(got.Status.Counts.Drained) != len(gws) {
		t.Errorf("targets lost or not drained: %+v", got.Status.Counts)
	}
	seen := map[string]bool{}
	for _, tg := range got.Targets {
		if seen[tg.PodName] {
			t.Errorf("%s is a target twice", tg.PodName)
		}
		seen[tg.PodName] = true
	}
	for _, g := range gws {
		if err := g.CheckMarkerOf(context.Background(), got.UID); err != nil {
			t.Error(err)
		}
	}
}

// checkNoMarkers checks that no gateway holds a marker any more.
func checkNoMarkers(t *testing.T, gws []*cluster.Gateway) {
	t.Helper()
	for _, g := range gws {
		if m := g.Marker(); m != nil {
			t.Errorf("%s: marker left: %s", g.Name, m)
		}
	}
}
