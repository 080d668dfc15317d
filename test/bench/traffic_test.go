package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/test/cluster"
	"github.com/hermes-agent/hermes-drain-operator/test/gatewaysim"
	"github.com/hermes-agent/hermes-drain-operator/test/traffic"
)

// TestRefusedTurns drains gated gateways under steady traffic through a
// Service, half of them out of traffic first and half marker first (the
// old order), and reports what became of the turns sent during each drain
// and how long each took. BENCH_TRAFFIC_GATEWAYS sizes the fleet (20; make
// bench: 100); with BENCH_OUT it writes refused-turns.md there.
//
// It runs in a cluster of its own, with the operator's default flags: the
// bench's cluster gives pods loopback IPs for its agents, and the API
// server refuses those in EndpointSlices.
func TestRefusedTurns(t *testing.T) {
	n := 20
	if v := os.Getenv("BENCH_TRAFFIC_GATEWAYS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 2 {
			t.Fatalf("BENCH_TRAFFIC_GATEWAYS=%q: want a number of at least 2", v)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Upstream's gateway reads its marker once a second.
	tc, sim, stop, err := cluster.StartWithGateways(ctx, cluster.Options{PodCIDR: cluster.TurnsPodCIDR}, gatewaysim.Options{TurnDuration: turnDuration}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	m, err := tc.StartManager(managerBin, "manager-traffic", tc.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()

	const ns = "bench-traffic"
	if err := tc.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	// One turn a second per gateway.
	gen, err := tc.TrafficFleet(ctx, sim, ns, n, turnPort, n, gatewayLabels)
	if err != nil {
		t.Fatal(err)
	}
	gates, stopGates, err := watchGates(ctx, tc, ns)
	if err != nil {
		t.Fatal(err)
	}
	defer stopGates()
	// Half a out of traffic first, then half b marker first.
	orders := []drainv1.TrafficOrder{drainv1.TrafficLeaveFirst, drainv1.TrafficMarkerFirst}
	var windows []traffic.Window
	for i, order := range orders {
		w, err := gen.Drain(ctx, tc.Client, &drainv1.GatewayDrain{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: strings.ToLower(string(order))},
			Spec:       drainv1.GatewayDrainSpec{Selector: metav1.LabelSelector{MatchLabels: map[string]string{"half": []string{"a", "b"}[i]}}, TrafficOrder: order},
		}, 10*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		windows = append(windows, w)
	}
	gen.Stop()

	var b strings.Builder
	fmt.Fprintf(&b, "%d gated gateways behind one Service, %d turns a second (one per gateway), each turn %s, EndpointSlices reaching the data plane after 1 s; half of them drained in each order, one after the other, with the operator's defaults (`--data-plane-delay=2s`).\n\n", n, n, turnDuration)
	b.WriteString("| order | gateways drained | drain took | gate False after the drain's creation, p50 / p99 | turns sent meanwhile | completed | refused | failed | unroutable |\n|---|---|---|---|---|---|---|---|---|\n")
	for i, w := range windows {
		c := gen.Between(w.From, w.To)
		var flips []time.Duration
		for j := i; j < n; j += 2 { // the half this drain took
			if at, ok := gates.firstSince(fmt.Sprintf("gw-%d", j), string(corev1.ConditionFalse), w.From); ok {
				flips = append(flips, at.Sub(w.From))
			}
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %d | %d | **%d** | %d | %d |\n", orders[i], n/2,
			w.Took().Round(100*time.Millisecond), p50p99(flips), c.Sent, c.Completed, c.Refused, c.Failed, c.Unroutable)
	}
	t.Log("\n" + b.String())
	if leave := gen.Between(windows[0].From, windows[0].To); leave.Refused+leave.Failed+leave.Unroutable != 0 {
		t.Errorf("out of traffic first: %s; want every turn completed", leave)
	}
	if cfg, err := configFromEnv(); err == nil && cfg.out != "" {
		if err := os.WriteFile(filepath.Join(cfg.out, "refused-turns.md"), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// turnPort is where the simulated gateways serve turns: not upstream's API
// port (8642), which the e2e suite's gateways use on the same loopback
// addresses (cluster.TurnsPodCIDR), perhaps at the same time.
const turnPort = 8643
