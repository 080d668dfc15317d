package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
	"github.com/hermes-agent/hermes-drain-operator/test/cluster"
	"github.com/hermes-agent/hermes-drain-operator/test/gatewaysim"
)

func withGate(p *corev1.Pod) {
	p.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: drainv1.ReadinessGate}}
}

func TestReadinessGateFollowsTheGateway(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	ctx := context.Background()
	const n = 4
	gws, err := lc.CreateGateways(ctx, ns, n, gatewayLabels, withGate)
	if err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gateways"},
		Spec:       corev1.ServiceSpec{Selector: gatewayLabels, Ports: []corev1.ServicePort{{Port: 8642}}},
	}
	if err := k8s.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	waitEndpoints(t, ns, n, 0)

	// MarkerFirst: the gate follows the gateway's own state (traffic_test.go
	// has the default order, out of traffic before the marker).
	apply(t, ns, "d", "trafficOrder: MarkerFirst")
	latencies := measureFlips(t, gws, marker.StateDraining, corev1.ConditionFalse)
	t.Logf("gate flip to False after the gateway reported draining: %s", summary(latencies))
	waitEndpoints(t, ns, 0, n)
	for _, g := range gws {
		pod, _ := g.Pod(ctx)
		if c := gatewaypod.GateCondition(pod); c == nil || c.Reason != "Draining" {
			t.Errorf("%s: gate %+v", g.Name, c)
		}
	}

	cancelDrain(t, ns, "d")
	latencies = measureFlips(t, gws, marker.StateRunning, corev1.ConditionTrue)
	t.Logf("gate flip to True after the gateway reported running: %s", summary(latencies))
	waitEndpoints(t, ns, n, 0)
}

// measureFlips waits until every gateway reports state and its gate has
// status, and returns, per gateway, how long after the first the second
// was seen (polled every 20 ms).
func measureFlips(t *testing.T, gws []*cluster.Gateway, state string, status corev1.ConditionStatus) []time.Duration {
	t.Helper()
	stateAt := map[string]time.Time{}
	gateAt := map[string]time.Time{}
	deadline := time.Now().Add(wait)
	for len(gateAt) < len(gws) {
		if time.Now().After(deadline) {
			t.Fatalf("gates did not follow: state seen %v, gate seen %v", stateAt, gateAt)
		}
		for _, g := range gws {
			now := time.Now()
			if st, err := gatewaysim.ReadState(g.Home); err == nil && st.State == state && stateAt[g.Name].IsZero() {
				stateAt[g.Name] = now
			}
			if pod, err := g.Pod(context.Background()); err == nil && !stateAt[g.Name].IsZero() && gateAt[g.Name].IsZero() {
				if c := gatewaypod.GateCondition(pod); c != nil && c.Status == status {
					gateAt[g.Name] = now
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	var out []time.Duration
	for name, at := range gateAt {
		out = append(out, at.Sub(stateAt[name]))
	}
	return out
}

func summary(d []time.Duration) string {
	slices.Sort(d)
	p := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))] }
	return fmt.Sprintf("n=%d p50=%s p99=%s max=%s", len(d), p(0.5).Round(time.Millisecond), p(0.99).Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond))
}

// waitEndpoints waits until the Service's EndpointSlices list ready and
// notReady endpoints in these numbers.
func waitEndpoints(t *testing.T, ns string, ready, notReady int) {
	t.Helper()
	testenv.Eventually(t, wait, func() (bool, string) {
		var slices discoveryv1.EndpointSliceList
		if err := k8s.List(context.Background(), &slices, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: "gateways"}); err != nil {
			return false, err.Error()
		}
		r, nr := 0, 0
		for _, s := range slices.Items {
			for _, e := range s.Endpoints {
				if e.Conditions.Ready != nil && *e.Conditions.Ready {
					r++
				} else {
					nr++
				}
			}
		}
		return r == ready && nr == notReady, fmt.Sprintf("endpoints ready %d notReady %d, want %d and %d", r, nr, ready, notReady)
	})
}
