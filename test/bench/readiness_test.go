package bench

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/test/cluster"
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

	flips := &stateLog{}
	wc, err := client.NewWithWatch(lc.Config, client.Options{Scheme: lc.Client.Scheme()})
	if err != nil {
		return nil, nil, err
	}
	w, err := wc.Watch(ctx, &corev1.PodList{}, client.InNamespace(ns))
	if err != nil {
		return nil, nil, err
	}
	defer w.Stop()
	go func() {
		for ev := range w.ResultChan() {
			if pod, ok := ev.Object.(*corev1.Pod); ok {
				if c := gatewaypod.GateCondition(pod); c != nil {
					flips.record(pod.Name, string(c.Status))
				}
			}
		}
	}()

	gwd := &drainv1.GatewayDrain{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bench"}}
	gwd.Spec.Selector.MatchLabels = gatewayLabels
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
