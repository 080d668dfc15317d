//go:build !unit

package gatewaydrain_test

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// With a third of the calls failing, a tenth timing out and a tenth losing
// half their report, the drain still completes and its cancel still removes
// every marker; failures are retried with backoff, not in a hot loop, and
// named while they last.
func TestDrainCompletesDespiteTransportFaults(t *testing.T) {
	ns := env.Namespace(t)
	runner.inject(ns, faults{fail: 0.3, timeout: 0.1, truncate: 0.1})
	const n = 10
	var gws []*gateway
	for i := range n {
		g := newGateway(t, ns, fmt.Sprintf("gw-%d", i))
		g.setState(marker.StateDraining, 0)
		gws = append(gws, g)
	}
	gwd := newGatewayDrain(t, ns, "d")
	waitFor(t, gwd, "Drained despite faults", condition(drainv1.ConditionDrained, metav1.ConditionTrue, drainv1.ReasonDrained))
	waitEvent(t, gwd, "TargetFailed")

	// Backoff, not a hot loop: a target needs a few calls, a hot loop
	// would make hundreds in this time.
	total, most := 0, 0
	for _, g := range gws {
		c := runner.callsTo(ns + "/" + g.name)
		total += c
		most = max(most, c)
	}
	t.Logf("%d calls for %d targets to reach Drained (at most %d for one)", total, n, most)
	if most > 25 {
		t.Errorf("a target was called %d times: no backoff?", most)
	}

	patchSpec(t, gwd, func(d *drainv1.GatewayDrain) { d.Spec.Action = drainv1.ActionCancel })
	waitFor(t, gwd, "released despite faults", condition(drainv1.ConditionReady, metav1.ConditionTrue, drainv1.ReasonReleased))
	for _, g := range gws {
		if g.marker() != nil {
			t.Errorf("%s: marker left after cancel: %s", g.name, g.marker())
		}
	}
}

// Drains whose targets never answer, one for each drain worker, hold no
// worker past their batch and its call grace: another drain, of gateways
// that answer, is Drained meanwhile.
func TestTargetsThatNeverAnswerHoldNoWorker(t *testing.T) {
	for i := range 4 { // the suite's drain workers
		ns := env.Namespace(t)
		runner.inject(ns, faults{hang: true})
		t.Cleanup(func() { runner.inject(ns, faults{}) }) // the drains answer again, and let go
		newGateway(t, ns, "gw-0")
		newGatewayDrain(t, ns, fmt.Sprintf("hung-%d", i))
	}
	ns := env.Namespace(t)
	newGateway(t, ns, "gw-0").setState(marker.StateDraining, 0)
	gwd := newGatewayDrain(t, ns, "d")
	waitFor(t, gwd, "Drained beside drains whose targets never answer", condition(drainv1.ConditionDrained, metav1.ConditionTrue, drainv1.ReasonDrained))
}

// A pod recreated while the drain is being cancelled: the new instantiation
// is not drained and loses our stale marker; the others are released.
func TestPodRecreatedDuringCancel(t *testing.T) {
	ns := env.Namespace(t)
	a, b := newGateway(t, ns, "gw-0"), newGateway(t, ns, "gw-1")
	runner.inject(ns, faults{fail: 0.5}) // slows the release down, so the recreation lands mid-way
	gwd := newGatewayDrain(t, ns, "d")
	a.setState(marker.StateDraining, 0)
	b.setState(marker.StateDraining, 0)
	waitFor(t, gwd, "Drained", condition(drainv1.ConditionDrained, metav1.ConditionTrue, drainv1.ReasonDrained))

	patchSpec(t, gwd, func(d *drainv1.GatewayDrain) { d.Spec.Action = drainv1.ActionCancel })
	a.recreate()
	runner.inject(ns, faults{})
	got := waitFor(t, gwd, "released", condition(drainv1.ConditionReady, metav1.ConditionTrue, drainv1.ReasonReleased))
	for _, g := range []*gateway{a, b} {
		if g.marker() != nil {
			t.Errorf("%s: marker left: %s", g.name, g.marker())
		}
	}
	if s := got.Target("gw-0").State; s != drainv1.TargetRestarted && s != drainv1.TargetReleased {
		t.Errorf("gw-0 is %s", s)
	}
}

// Spec edits racing the reconciler's status writes lose nothing: every
// edit is observed, and the drain completes.
func TestSpecEditsRacingStatusWrites(t *testing.T) {
	ns := env.Namespace(t)
	var gws []*gateway
	for i := range 5 {
		g := newGateway(t, ns, fmt.Sprintf("gw-%d", i))
		g.setState(marker.StateDraining, 1)
		gws = append(gws, g)
	}
	gwd := newGatewayDrain(t, ns, "d")
	for i := range 20 {
		patchSpec(t, gwd, func(d *drainv1.GatewayDrain) {
			d.Spec.Timeout = &metav1.Duration{Duration: time.Duration(60+i) * time.Minute}
		})
	}
	for _, g := range gws {
		g.setState(marker.StateDraining, 0)
	}
	got := waitFor(t, gwd, "Drained at the last generation", func(d *observed) bool {
		return condition(drainv1.ConditionDrained, metav1.ConditionTrue, drainv1.ReasonDrained)(d) && d.Status.Counts.Drained == 5
	})
	if got.Spec.Timeout.Duration != 79*time.Minute || got.Status.ObservedGeneration != got.Generation {
		t.Errorf("timeout %s, observed generation %d of %d", got.Spec.Timeout.Duration, got.Status.ObservedGeneration, got.Generation)
	}
}
