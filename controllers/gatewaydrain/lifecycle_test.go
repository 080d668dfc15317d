//go:build !unit

package gatewaydrain_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
)

func TestDrainUntilDrainedThenCancel(t *testing.T) {
	ns := env.Namespace(t)
	gws := []*gateway{newGateway(t, ns, "gw-0"), newGateway(t, ns, "gw-1"), newGateway(t, ns, "gw-2")}
	gws[1].setState(marker.StateRunning, 3)
	gwd := newGatewayDrain(t, ns, "upgrade")

	for _, g := range gws {
		g.waitHonoured(true)
	}
	m := marker.Parse(gws[1].marker())
	o, _ := m.Origin()
	if m.Principal() != "gatewaydrain/"+ns+"/upgrade" || m.EpochValue() != nativeEpoch || o.GatewayDrain != ns+"/upgrade" || o.PodUID != string(gws[1].pod.UID) || o.Container != "gateway" {
		t.Errorf("marker %s: want the default principal, the native epoch and our identity", gws[1].marker())
	}

	// The gateways notice the marker; gw-1 still has turns in flight.
	for _, g := range gws {
		g.setState(marker.StateDraining, 0)
	}
	gws[1].setState(marker.StateDraining, 2)
	got := waitFor(t, gwd, "gw-1 draining with 2 agents", func(g *observed) bool {
		tg := g.Target("gw-1")
		return tg.State == drainv1.TargetDraining && tg.ActiveAgents != nil && *tg.ActiveAgents == 2 && tg.GatewayState == "draining" &&
			g.Target("gw-0").State == drainv1.TargetDrained && g.Target("gw-2").State == drainv1.TargetDrained &&
			// The status follows the slices a moment later, in the same
			// reconcile: wait for the one that describes them.
			g.Status.Counts.Drained == 2 && strings.Contains(metaCondition(g, drainv1.ConditionDrained).Message, "gw-1 (Draining: gateway draining")
	})
	if c := metaCondition(got, drainv1.ConditionDrained); c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "gw-1 (Draining: gateway draining: 2 active agents)") {
		t.Errorf("Drained condition %+v should name gw-1 and its agents", c)
	}
	if got.Status.Progress != "2/3" || got.Status.Counts.Draining != 1 {
		t.Errorf("progress %q counts %+v", got.Status.Progress, got.Status.Counts)
	}

	gws[1].setState(marker.StateDraining, 0)
	got = waitFor(t, gwd, "Drained", condition(drainv1.ConditionDrained, metav1.ConditionTrue, drainv1.ReasonDrained))
	if !condition(drainv1.ConditionReady, metav1.ConditionTrue, drainv1.ReasonDrained)(got) || !condition(drainv1.ConditionReconciling, metav1.ConditionFalse, drainv1.ReasonSucceeded)(got) {
		t.Errorf("conditions %+v", got.Status.Conditions)
	}
	for _, tg := range got.Targets {
		if tg.Epoch != nativeEpoch || tg.MarkerWrittenAt == nil || tg.StartedAt == nil || tg.HermesHome == "" {
			t.Errorf("target %+v lacks its instantiation facts", tg)
		}
	}

	patchSpec(t, gwd, func(g *drainv1.GatewayDrain) { g.Spec.Action = drainv1.ActionCancel })
	got = waitFor(t, gwd, "released", condition(drainv1.ConditionReady, metav1.ConditionTrue, drainv1.ReasonReleased))
	for _, g := range gws {
		if g.marker() != nil {
			t.Errorf("%s still has a marker after cancel: %s", g.name, g.marker())
		}
	}
	if !condition(drainv1.ConditionDrained, metav1.ConditionFalse, drainv1.ReasonCancelled)(got) || got.Status.Counts.Released != 3 {
		t.Errorf("after cancel: %+v", got.Status)
	}
	for _, reason := range []string{"DrainStarted", drainv1.ReasonDrained, drainv1.ReasonReleased} {
		waitEvent(t, gwd, reason)
	}
}

func TestDeleteRemovesMarkersThenTheObject(t *testing.T) {
	ns := env.Namespace(t)
	g := newGateway(t, ns, "gw-0")
	gwd := newGatewayDrain(t, ns, "d")
	g.waitHonoured(true)
	g.setState(marker.StateDraining, 0)
	waitFor(t, gwd, "Drained", condition(drainv1.ConditionDrained, metav1.ConditionTrue, drainv1.ReasonDrained))
	own := map[string]string{"namespace": ns, "name": "d"}
	testenv.Eventually(t, wait, func() (bool, string) {
		drained, _ := testenv.Metric(t, "hermes_drain_gatewaydrain_targets", map[string]string{"namespace": ns, "name": "d", "state": "Drained"})
		cond, _ := testenv.Metric(t, "hermes_drain_gatewaydrain_condition", map[string]string{"namespace": ns, "name": "d", "type": "Drained", "status": "True"})
		return drained == 1 && cond == 1, fmt.Sprintf("metrics say %v drained targets, Drained=True %v", drained, cond)
	})
	if n, _ := testenv.Metric(t, "hermes_drain_transport_calls_total", map[string]string{"op": "project", "result": "written"}); n < 1 {
		t.Errorf("no marker write counted")
	}
	if n, _ := testenv.Metric(t, "hermes_drain_gatewaydrain_drained_seconds", nil); n < 1 {
		t.Errorf("no drain duration observed")
	}
	if got := get(t, gwd); len(got.Finalizers) != 1 || got.Finalizers[0] != "drain.hermes.dev/release-markers" {
		t.Fatalf("finalizers %v", got.Finalizers)
	}
	if err := k8s.Delete(context.Background(), gwd); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, func() (bool, string) {
		err := k8s.Get(context.Background(), client.ObjectKeyFromObject(gwd), &drainv1.GatewayDrain{})
		return err != nil && g.marker() == nil, "object or marker still there"
	})
	// envtest runs no garbage collector: the drain removed its slices itself.
	var left drainv1.TargetSliceList
	if err := k8s.List(context.Background(), &left, client.InNamespace(ns)); err != nil || len(left.Items) != 0 {
		t.Errorf("%d TargetSlices left by the deleted drain (%v)", len(left.Items), err)
	}
	testenv.Eventually(t, wait, func() (bool, string) {
		_, targets := testenv.Metric(t, "hermes_drain_gatewaydrain_targets", own)
		_, conds := testenv.Metric(t, "hermes_drain_gatewaydrain_condition", own)
		return !targets && !conds, "the deleted drain's series are still exported"
	})
	if n, ok := testenv.Metric(t, "hermes_drain_markers_left_total", map[string]string{"namespace": ns}); !ok || n != 0 {
		t.Errorf("markers left %v (exported: %v), want 0: every marker was removed", n, ok)
	}
}

func TestDeleteLetsGoOfAnUnreachablePod(t *testing.T) {
	ns := env.Namespace(t)
	g := newGateway(t, ns, "gw-0")
	gwd := newGatewayDrain(t, ns, "d")
	g.waitHonoured(true)
	// The home disappears: the marker can no longer be removed.
	if err := os.RemoveAll(g.home); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Delete(context.Background(), gwd); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, gwd, "MarkersLeft")
	testenv.Eventually(t, wait, func() (bool, string) {
		err := k8s.Get(context.Background(), client.ObjectKeyFromObject(gwd), &drainv1.GatewayDrain{})
		return err != nil, "deletion still blocked"
	})
	// Counted once the finalizer's removal returns: a moment after the object is gone.
	testenv.Eventually(t, wait, func() (bool, string) {
		n, _ := testenv.Metric(t, "hermes_drain_markers_left_total", map[string]string{"namespace": ns})
		return n == 1, fmt.Sprintf("markers left %v, want 1", n)
	})
}

func TestDeadlineWithdrawsTheDrain(t *testing.T) {
	ns := env.Namespace(t)
	g := newGateway(t, ns, "gw-0")
	g.setState(marker.StateDraining, 4) // turns that never finish
	gwd := newGatewayDrain(t, ns, "d", func(d *drainv1.GatewayDrain) { d.Spec.Timeout = &metav1.Duration{Duration: time.Minute} })
	waitFor(t, gwd, "draining", targetState("gw-0", drainv1.TargetDraining))

	offset.Store(int64(2 * time.Minute))
	t.Cleanup(func() { offset.Store(0) })
	got := waitFor(t, gwd, "deadline exceeded", condition(drainv1.ConditionStalled, metav1.ConditionTrue, drainv1.ReasonDeadlineExceeded))
	if g.marker() != nil {
		t.Errorf("marker survived the deadline: %s", g.marker())
	}
	if !condition(drainv1.ConditionDrained, metav1.ConditionFalse, drainv1.ReasonDeadlineExceeded)(got) || got.Target("gw-0").State != drainv1.TargetReleased ||
		!got.Status.DeadlineExceeded {
		t.Errorf("after the deadline: %+v", got.Status)
	}
	waitEvent(t, gwd, drainv1.ReasonDeadlineExceeded)

	// Raising the timeout afterwards does not drain again, even with the
	// clock back before the deadline: the latch is a status field.
	offset.Store(0)
	patchSpec(t, gwd, func(d *drainv1.GatewayDrain) { d.Spec.Timeout = &metav1.Duration{Duration: 24 * time.Hour} })
	waitFor(t, gwd, "observed the new generation", func(d *observed) bool { return d.Status.ObservedGeneration == d.Generation })
	if g.marker() != nil || !condition(drainv1.ConditionDrained, metav1.ConditionFalse, drainv1.ReasonDeadlineExceeded)(observe(t, gwd)) {
		t.Errorf("a raised timeout re-drained: marker %s", g.marker())
	}
}

// The marker is rewritten every refresh interval, each time stamped anew by
// the gateway's container, so that upstream's hour never runs out on a long
// drain (issue 24, item 5: the container's clock, not the operator's).
func TestKeepAliveRewritesRequestedAt(t *testing.T) {
	ns := env.Namespace(t)
	g := newGateway(t, ns, "gw-0")
	gwd := newGatewayDrain(t, ns, "d")
	written := waitFor(t, gwd, "marker written", func(d *observed) bool {
		return len(d.Targets) == 1 && d.Targets[0].MarkerWrittenAt != nil
	}).Targets[0].MarkerWrittenAt.Time
	if at, ok := marker.Parse(g.marker()).RequestedAt(); !ok || time.Since(at) > time.Minute {
		t.Fatalf("requested_at %v: want the container's clock, now", at)
	}
	// Forty minutes pass on the gateway's clock: the marker it holds ages.
	old := regexp.MustCompile(`"requested_at":"[^"]*"`).ReplaceAll(g.marker(), []byte(`"requested_at":"`+time.Now().Add(-40*time.Minute).UTC().Format(marker.TimeLayout)+`"`))
	g.writeMarker(string(old))
	first := marker.Parse(g.marker())

	offset.Store(int64(21 * time.Minute)) // past the 20 min refresh, within the 1 h upstream expiry
	t.Cleanup(func() { offset.Store(0) })
	g.setState(marker.StateRunning, 1) // fresh updated_at; keeps the target polled
	waitFor(t, gwd, "marker rewritten", func(d *observed) bool {
		return d.Targets[0].MarkerWrittenAt.After(written.Add(20 * time.Minute))
	})
	again := marker.Parse(g.marker())
	was, _ := first.RequestedAt()
	now, _ := again.RequestedAt()
	if now.Sub(was) < 39*time.Minute || again.Principal() != first.Principal() || again.EpochValue() != nativeEpoch {
		t.Errorf("rewritten marker %s should keep its identity and renew requested_at (was %s)", g.marker(), was)
	}
	if !again.Honoured(nativeEpoch, time.Now().Add(50*time.Minute)) {
		t.Errorf("the rewritten marker expires with the old one")
	}
}

// From the first Drained on, the targets are frozen: a recreated pod is a
// new instantiation whose drain is over (the automation's restart is the
// drain's purpose), and the marker we wrote for the old one is removed from
// its durable HERMES_HOME.
func TestAfterDrainedARecreatedPodIsNotDrainedAndLosesOurStaleMarker(t *testing.T) {
	ns := env.Namespace(t)
	a, b := newGateway(t, ns, "gw-0"), newGateway(t, ns, "gw-1")
	gwd := newGatewayDrain(t, ns, "d")
	a.setState(marker.StateDraining, 0)
	b.setState(marker.StateDraining, 0)
	waitFor(t, gwd, "Drained", condition(drainv1.ConditionDrained, metav1.ConditionTrue, drainv1.ReasonDrained))
	oldUID := a.pod.UID

	// StatefulSet-style: same name, new UID, same HERMES_HOME (a durable volume).
	// The host's epoch does not change, so only the operator can clear it.
	a.recreate()
	got := waitFor(t, gwd, "gw-0 restarted and cleaned", func(d *observed) bool {
		tg := d.Target("gw-0")
		return tg.State == drainv1.TargetRestarted && tg.MarkerRemovedAt != nil
	})
	if a.marker() != nil {
		t.Errorf("stale marker left on the new instantiation: %s", a.marker())
	}
	if tg := got.Target("gw-0"); tg.PodUID != oldUID || !strings.Contains(tg.Message, "pod recreated") {
		t.Errorf("target %+v should keep the old instantiation and say why it is over", tg)
	}
	if !condition(drainv1.ConditionDrained, metav1.ConditionTrue, drainv1.ReasonDrained)(got) {
		t.Errorf("Drained did not stay True: %+v", got.Status.Conditions)
	}
	waitEvent(t, gwd, "TargetRestarted")
}

func TestAfterDrainedARestartedContainerIsNotDrainedEvenWithTheSameEpoch(t *testing.T) {
	ns := env.Namespace(t)
	g := newGateway(t, ns, "gw-0")
	gwd := newGatewayDrain(t, ns, "d")
	g.setState(marker.StateDraining, 0)
	waitFor(t, gwd, "Drained", condition(drainv1.ConditionDrained, metav1.ConditionTrue, drainv1.ReasonDrained))

	// As with shareProcessNamespace: the container restarts, the epoch stays.
	g.restartContainer()
	got := waitFor(t, gwd, "restarted and cleaned", func(d *observed) bool {
		tg := d.Target("gw-0")
		return tg.State == drainv1.TargetRestarted && tg.MarkerRemovedAt != nil
	})
	if g.marker() != nil {
		t.Errorf("marker left on the restarted container: %s", g.marker())
	}
	if !strings.Contains(got.Target("gw-0").Message, "restarted") {
		t.Errorf("message %q", got.Target("gw-0").Message)
	}
}

// Drained is never True while a target gateway serves turns: until the
// drain is first Drained, a target's new instantiation (a container
// restarted in place, a pod recreated) and a gateway pod that starts are
// drained too, each with its own marker (item B8).
func TestUntilDrainedNewInstantiationsAreDrainedToo(t *testing.T) {
	ns := env.Namespace(t)
	a := newGateway(t, ns, "gw-0")
	gwd := newGatewayDrain(t, ns, "d")
	a.waitHonoured(true)

	a.restartContainer() // OOM-killed or liveness: it serves turns again
	got := waitFor(t, gwd, "the new instantiation is a target", func(d *observed) bool {
		tg := d.Target("gw-0")
		return tg.RestartCount == 1 && tg.AddedAt != nil && tg.MarkerWrittenAt != nil
	})
	if o, _ := marker.Parse(a.marker()).Origin(); o.RestartCount != 1 {
		t.Errorf("the marker is not the new instantiation's: %s", a.marker())
	}
	if c := metaCondition(got, drainv1.ConditionDrained); c.Status == metav1.ConditionTrue {
		t.Errorf("Drained while the restarted gateway runs: %+v", c)
	}

	late := newGateway(t, ns, "gw-late")
	waitFor(t, gwd, "the late pod is a target", func(d *observed) bool {
		return len(d.Targets) == 2 && d.Target("gw-late").AddedAt != nil
	})
	late.waitHonoured(true)
	waitEvent(t, gwd, "TargetsAdded")

	a.setState(marker.StateDraining, 0)
	late.setState(marker.StateDraining, 0)
	got = waitFor(t, gwd, "Drained", condition(drainv1.ConditionDrained, metav1.ConditionTrue, drainv1.ReasonDrained))
	if got.Status.DrainedAt == nil || got.Status.Counts.Added != 2 {
		t.Errorf("drainedAt %v, added %d: want set and 2", got.Status.DrainedAt, got.Status.Counts.Added)
	}

	// From the first Drained on, the targets are frozen.
	later := newGateway(t, ns, "gw-later")
	patchSpec(t, gwd, func(d *drainv1.GatewayDrain) { d.Spec.Timeout = &metav1.Duration{Duration: 3 * time.Hour} })
	got = waitFor(t, gwd, "reconciled again", func(d *observed) bool { return d.Status.ObservedGeneration == d.Generation })
	if len(got.Targets) != 2 || later.marker() != nil {
		t.Errorf("a pod that started after Drained became a target: %+v, marker %s", got.Targets, later.marker())
	}
}

func TestNoTargetsAndInvalidSelectorsStall(t *testing.T) {
	ns := env.Namespace(t)
	none := newGatewayDrain(t, ns, "none")
	waitFor(t, none, "stalled", condition(drainv1.ConditionStalled, metav1.ConditionTrue, drainv1.ReasonNoTargets))
	waitEvent(t, none, drainv1.ReasonNoTargets)
	// A pod that starts later is not drained, even when the drain is reconciled again.
	late := newGateway(t, ns, "gw-late")
	patchSpec(t, none, func(d *drainv1.GatewayDrain) { d.Spec.Timeout = &metav1.Duration{Duration: 3 * time.Hour} })
	got := waitFor(t, none, "reconciled again", func(d *observed) bool {
		return d.Status.ObservedGeneration == d.Generation && condition(drainv1.ConditionStalled, metav1.ConditionTrue, drainv1.ReasonNoTargets)(d)
	})
	if len(got.Targets) != 0 || late.marker() != nil {
		t.Errorf("a pod that started later was drained: %+v, marker %s", got.Targets, late.marker())
	}

	bad := newGatewayDrain(t, ns, "bad", func(d *drainv1.GatewayDrain) {
		d.Spec.Selector = metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Sometimes"}}}
	})
	got = waitFor(t, bad, "stalled", condition(drainv1.ConditionStalled, metav1.ConditionTrue, drainv1.ReasonInvalidSelector))
	if c := metaCondition(got, drainv1.ConditionReady); !strings.Contains(c.Message, "Sometimes") {
		t.Errorf("Ready %+v should say what is wrong with the selector", c)
	}
}

// Letting a deleted drain go is a success, not an error: the status is not
// written to an object that is gone (item D14).
func TestDeletingIsNotAReconcileError(t *testing.T) {
	ns := env.Namespace(t)
	g := newGateway(t, ns, "gw-0")
	gwd := newGatewayDrain(t, ns, "d")
	g.waitHonoured(true)
	errorsBefore, _ := testenv.Metric(t, "controller_runtime_reconcile_errors_total", map[string]string{"controller": "gatewaydrain"})
	if err := k8s.Delete(context.Background(), gwd); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, func() (bool, string) {
		err := k8s.Get(context.Background(), client.ObjectKeyFromObject(gwd), &drainv1.GatewayDrain{})
		return apierrors.IsNotFound(err) && g.marker() == nil, "object or marker still there"
	})
	// Its series go once the reconcile that let it go has returned (before
	// the fix, on the retry of the failed status write).
	own := map[string]string{"namespace": ns, "name": "d"}
	testenv.Eventually(t, wait, func() (bool, string) {
		_, targets := testenv.Metric(t, "hermes_drain_gatewaydrain_targets", own)
		return !targets, "the deleted drain's series are still exported"
	})
	if after, _ := testenv.Metric(t, "controller_runtime_reconcile_errors_total", map[string]string{"controller": "gatewaydrain"}); after != errorsBefore {
		t.Errorf("deleting the drain counted %v reconcile errors", after-errorsBefore)
	}
}

// A gateway's state file is never judged by its age on the operator's
// clock: an idle drained gateway, whose record upstream never rewrites,
// stays Drained however long it is unchanged (issue 24, item 1).
func TestAnUnchangedStateFileStillConfirmsTheDrain(t *testing.T) {
	ns := env.Namespace(t)
	g := newGateway(t, ns, "gw-0")
	gwd := newGatewayDrain(t, ns, "d")
	g.waitHonoured(true)
	g.setState(marker.StateDraining, 0)
	waitFor(t, gwd, "Drained", condition(drainv1.ConditionDrained, metav1.ConditionTrue, drainv1.ReasonDrained))

	// Ten minutes pass on the operator's clock; the file does not change.
	offset.Store(int64(10 * time.Minute))
	t.Cleanup(func() { offset.Store(0) })
	got := waitFor(t, gwd, "the target read ten minutes on", func(o *observed) bool {
		tg := o.Target("gw-0")
		return tg.LastAttemptTime != nil && tg.LastAttemptTime.After(time.Now().Add(9*time.Minute))
	})
	if tg := got.Target("gw-0"); tg.State != drainv1.TargetDrained || !condition(drainv1.ConditionDrained, metav1.ConditionTrue, drainv1.ReasonDrained)(got) {
		t.Errorf("target %s (%s): an idle gateway's unchanged record no longer confirms the drain", tg.State, tg.Message)
	}
}

// A gateway container that stopped in a pod that still runs (a crash loop)
// holds the drain as Pending until its new instantiation runs, which is
// then drained too: the gap between the two is not a Drained (item B8).
func TestAStoppedContainerHoldsTheDrainUntilItRunsAgain(t *testing.T) {
	ns := env.Namespace(t)
	g := newGateway(t, ns, "gw-0")
	gwd := newGatewayDrain(t, ns, "d")
	g.waitHonoured(true)
	g.stopContainer()
	got := waitFor(t, gwd, "pending, waiting for the container to run again", func(d *observed) bool {
		tg := d.Target("gw-0")
		return tg.State == drainv1.TargetPending && strings.Contains(tg.Message, "waiting for its new instantiation") &&
			d.Status.Counts.Pending == 1 && d.Status.Counts.Draining == 0
	})
	if c := metaCondition(got, drainv1.ConditionDrained); c.Status != metav1.ConditionFalse {
		t.Errorf("Drained %+v while the gateway is between instantiations", c)
	}

	g.setContainer(1, time.Now())
	g.waitHonoured(true)
	g.setState(marker.StateDraining, 0)
	got = waitFor(t, gwd, "Drained", condition(drainv1.ConditionDrained, metav1.ConditionTrue, drainv1.ReasonDrained))
	if tg := got.Target("gw-0"); tg.RestartCount != 1 || tg.AddedAt == nil {
		t.Errorf("target %+v: want the new instantiation, added", tg)
	}
}

// A state file that says draining with no agents confirms nothing when the
// process that wrote it is gone: a gateway SIGKILLed mid-drain never makes
// the drain Drained (item B9).
func TestADeadGatewaysStateFileNeverConfirmsADrain(t *testing.T) {
	ns := env.Namespace(t)
	g := newGateway(t, ns, "gw-0")
	gwd := newGatewayDrain(t, ns, "d")
	g.waitHonoured(true)
	// The gateway that runs now has named itself in gateway.pid, and has
	// not written its record yet.
	pidFile := filepath.Join(g.home, marker.PIDFilename)
	if err := os.WriteFile(pidFile, []byte(fmt.Sprintf(`{"pid": %d}`, os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	g.setStateBy(deadPID(t), marker.StateDraining, 0)
	got := waitFor(t, gwd, "draining, its writer gone", func(d *observed) bool {
		tg := d.Target("gw-0")
		return tg.State == drainv1.TargetDraining && strings.Contains(tg.Message, "has not written") && d.Status.Counts.Draining == 1
	})
	if c := metaCondition(got, drainv1.ConditionDrained); c.Status != metav1.ConditionFalse {
		t.Errorf("Drained %+v on a dead gateway's word", c)
	}
	g.setStateBy(os.Getpid(), marker.StateDraining, 0) // the live process writes it
	waitFor(t, gwd, "Drained", condition(drainv1.ConditionDrained, metav1.ConditionTrue, drainv1.ReasonDrained))
}

// With no live gateway at all (the record's writer gone, and gateway.pid
// naming none), the gateway serves no turn: with our marker in place it is
// drained, said apart (issue 24, item 4).
func TestNoLiveGatewayIsDrainedWithOurMarker(t *testing.T) {
	ns := env.Namespace(t)
	g := newGateway(t, ns, "gw-0")
	gwd := newGatewayDrain(t, ns, "d")
	g.waitHonoured(true)
	g.setStateBy(deadPID(t), marker.StateRunning, 0)
	got := waitFor(t, gwd, "Drained", condition(drainv1.ConditionDrained, metav1.ConditionTrue, drainv1.ReasonDrained))
	if tg := got.Target("gw-0"); tg.GatewayState != "not-running" || !strings.Contains(tg.Message, "no gateway runs") {
		t.Errorf("state %q: %s; want not-running, said apart", tg.GatewayState, tg.Message)
	}
}

// deadPID is the PID of a process that has exited.
func deadPID(t *testing.T) int {
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	return gone.Process.Pid
}
