package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/agent"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/test/cluster"
	"github.com/hermes-agent/hermes-drain-operator/test/gatewaysim"
)

// gateFlips drains n gated gateways and cancels the drain, and returns for
// each pod how long its readiness gate took to follow its gateway: to False
// after the gateway started draining, and to True after it was running again.
func gateFlips(ctx context.Context, n int) (down, up []time.Duration, err error) {
	ns := fmt.Sprintf("bench-gated-%d", n)
	gws, err := fleet(ctx, ns, n, func(p *corev1.Pod) {
		p.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: drainv1.ReadinessGate}}
	})
	if err != nil {
		return nil, nil, err
	}
	defer removeFleet(ctx, ns)
	if err := poll(ctx, 5*time.Minute, "every gate True", func() bool { return gatesAre(ctx, ns, corev1.ConditionTrue) == n }); err != nil {
		return nil, nil, err
	}

	flips, stop, err := watchGates(ctx, lc, ns)
	if err != nil {
		return nil, nil, err
	}
	defer stop()

	gwd := &drainv1.GatewayDrain{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bench"}}
	gwd.Spec.Selector.MatchLabels = gatewayLabels
	// Marker first: this measures how fast a gate follows its gateway's
	// state (taken out of traffic first, it turns False before any read).
	gwd.Spec.TrafficOrder = drainv1.TrafficMarkerFirst
	drainStart := time.Now()
	if err := lc.Client.Create(ctx, gwd); err != nil {
		return nil, nil, err
	}
	if down, err = gateLatencies(ctx, flips, gws, marker.StateDraining, string(corev1.ConditionFalse), drainStart); err != nil {
		return nil, nil, err
	}
	patch := client.MergeFrom(gwd.DeepCopy())
	gwd.Spec.Action = drainv1.ActionCancel
	cancelStart := time.Now()
	if err := lc.Client.Patch(ctx, gwd, patch); err != nil {
		return nil, nil, err
	}
	if up, err = gateLatencies(ctx, flips, gws, marker.StateRunning, string(corev1.ConditionTrue), cancelStart); err != nil {
		return nil, nil, err
	}
	return down, up, deleteDrain(ctx, gwd, gws)
}

// watchGates records, as they are seen, the changes of the gate of every
// pod of ns, until stop.
func watchGates(ctx context.Context, c *cluster.Cluster, ns string) (*stateLog, func(), error) {
	wc, err := client.NewWithWatch(c.Config, client.Options{Scheme: c.Client.Scheme()})
	if err != nil {
		return nil, nil, err
	}
	w, err := wc.Watch(ctx, &corev1.PodList{}, client.InNamespace(ns))
	if err != nil {
		return nil, nil, err
	}
	flips := &stateLog{}
	go func() {
		for ev := range w.ResultChan() {
			if pod, ok := ev.Object.(*corev1.Pod); ok {
				if c := gatewaypod.GateCondition(pod); c != nil {
					flips.record(pod.Name, string(c.Status))
				}
			}
		}
	}()
	return flips, w.Stop, nil
}

// gatesAre counts the pods of ns whose gate has status.
func gatesAre(ctx context.Context, ns string, status corev1.ConditionStatus) int {
	var pods corev1.PodList
	if err := lc.Client.List(ctx, &pods, client.InNamespace(ns)); err != nil {
		return 0
	}
	n := 0
	for i := range pods.Items {
		if c := gatewaypod.GateCondition(&pods.Items[i]); c != nil && c.Status == status {
			n++
		}
	}
	return n
}

// gateLatencies waits until every pod's gate (as the log gates saw it)
// turned status after t0 and returns, per pod, the time from its gateway
// entering state (as the simulator reported it to changes) to the flip.
func gateLatencies(ctx context.Context, gates *stateLog, gws []*cluster.Gateway, state, status string, t0 time.Time) ([]time.Duration, error) {
	var out []time.Duration
	err := poll(ctx, 10*time.Minute, "every gate "+status, func() bool {
		out = out[:0]
		for _, gw := range gws {
			flipped, ok := gates.firstSince(gw.Name, status, t0)
			changed, ok2 := changes.firstSince(gw.Home, state, t0)
			if !ok || !ok2 {
				return false
			}
			out = append(out, flipped.Sub(changed))
		}
		return true
	})
	return out, err
}

// probeFlips drains gws through their agents and deletes the drain, and
// returns for each pod how long its agent's /readyz took to follow its
// gateway: to not ready after the gateway started draining, and to ready
// after it was running again. Each answer says since when it holds, so one
// read after the flip measures it.
func probeFlips(ctx context.Context, gws []*cluster.Gateway) (down, up []time.Duration, err error) {
	urls := map[*cluster.Gateway]string{}
	for _, g := range gws {
		pod, err := g.Pod(ctx)
		if err != nil {
			return nil, nil, err
		}
		urls[g] = "http://" + net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(cluster.AgentProbePort)) + "/readyz"
	}
	// Each gateway must run first: one whose last drain's marker went and
	// this drain's came within one of its looks never left draining.
	if err := poll(ctx, time.Minute, "every gateway running", func() bool {
		for _, g := range gws {
			if st, err := gatewaysim.ReadState(g.Home); err != nil || st.State != marker.StateRunning {
				return false
			}
		}
		return true
	}); err != nil {
		return nil, nil, err
	}
	gwd := &drainv1.GatewayDrain{ObjectMeta: metav1.ObjectMeta{Namespace: gws[0].Namespace, Name: "bench-probes"}}
	gwd.Spec.Selector.MatchLabels = gatewayLabels
	// Marker first: this measures how fast /readyz follows the gateway.
	gwd.Spec.TrafficOrder = drainv1.TrafficMarkerFirst
	t0 := time.Now()
	if err := lc.Client.Create(ctx, gwd); err != nil {
		return nil, nil, err
	}
	if down, err = probeLatencies(ctx, gws, urls, marker.StateDraining, http.StatusServiceUnavailable, t0); err != nil {
		return nil, nil, err
	}
	t1 := time.Now()
	if err := deleteDrain(ctx, gwd, gws); err != nil {
		return nil, nil, err
	}
	up, err = probeLatencies(ctx, gws, urls, marker.StateRunning, http.StatusOK, t1)
	return down, up, err
}

// probeLatencies waits until every agent answers want, and returns for
// each the time from its gateway's first change to state since t0 to the
// answer's since.
func probeLatencies(ctx context.Context, gws []*cluster.Gateway, urls map[*cluster.Gateway]string, state string, want int, t0 time.Time) ([]time.Duration, error) {
	var mu sync.Mutex
	var latencies []time.Duration
	var last string // what the last pending agent answered
	pending := slices.Clone(gws)
	err := poll(ctx, 2*time.Minute, fmt.Sprintf("every agent answering %d", want), func() bool {
		var still []*cluster.Gateway
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(32)
		for _, gw := range pending {
			g.Go(func() error {
				changed, ok := changes.firstSince(gw.Home, state, t0)
				since, code, err := probe(gctx, urls[gw])
				mu.Lock()
				defer mu.Unlock()
				if err != nil || code != want || !ok || since.Before(changed) {
					still = append(still, gw)
					last = fmt.Sprintf("%s: gateway %s at %s (seen: %v); /readyz %d since %s (%v)", gw.Name, state, changed, ok, code, since, err)
					return nil
				}
				latencies = append(latencies, since.Sub(changed))
				return nil
			})
		}
		_ = g.Wait()
		pending = still
		return len(pending) == 0
	})
	if err != nil {
		err = fmt.Errorf("%w; %d agents pending, e.g. %s", err, len(pending), last)
	}
	return latencies, err
}

// probe reads an agent's /readyz: since when its answer holds, and the answer.
func probe(ctx context.Context, url string) (time.Time, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return time.Time{}, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return time.Time{}, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return time.Time{}, 0, err
	}
	since, err := agent.SinceOf(string(body))
	return since, resp.StatusCode, err
}
