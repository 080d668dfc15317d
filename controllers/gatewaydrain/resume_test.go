package gatewaydrain

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
)

// Resuming a halted wave: the targets the halt released wait their turn
// again, with nothing of their last drain kept (their markers are written
// anew); a target the operator never writes to stays so; a replacement
// still not serving gets servingTimeout again; a replaced target stays.
func TestResumeTakesBackWhatTheHaltReleased(t *testing.T) {
	now := time.Date(2026, 12, 7, 16, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { m := metav1.NewTime(now.Add(d)); return &m }
	gwd := &drainv1.GatewayDrain{Spec: drainv1.GatewayDrainSpec{Replace: &drainv1.ReplaceSpec{ServingTimeout: &metav1.Duration{Duration: time.Minute}}}}
	gwd.Status.HaltedAt, gwd.Status.HaltedBecause = at(-time.Hour), "gw-2 was not replaced"
	gwd.Annotations = map[string]string{drainv1.ResumeAnnotation: now.Add(-time.Minute).Format(time.RFC3339)}
	targets := []drainv1.Target{
		{PodName: "gw-0", PodUID: "u0", State: drainv1.TargetReleased, MarkerWrittenAt: at(-2 * time.Hour), MarkerRemovedAt: at(-time.Hour), MarkedProfiles: "alice", DrainSeenAt: at(-2 * time.Hour), Message: "drain halted; marker removed"},
		{PodName: "gw-1", PodUID: "u1", State: drainv1.TargetReleased, Unreachable: "HERMES_HOME is a link", Message: "drain halted; nothing was written"},
		{PodName: "gw-2", PodUID: "u2", State: drainv1.TargetReplacing, EvictedAt: at(-2 * time.Hour), ServeBy: at(-time.Hour)},
		{PodName: "gw-3", PodUID: "u3", State: drainv1.TargetReplaced, ReplacedAt: at(-3 * time.Hour)},
	}
	d := newView(gwd, targets, now, time.Second)
	(&Reconciler{}).resume(d)
	got := d.targets
	if gwd.Status.HaltedAt != nil || gwd.Status.HaltedBecause != "" || d.release != "" {
		t.Errorf("still halted: %v %q, release %q", gwd.Status.HaltedAt, gwd.Status.HaltedBecause, d.release)
	}
	if g := got[0]; g.State != drainv1.TargetWaiting || g.MarkerWrittenAt != nil || g.MarkerRemovedAt != nil || g.MarkedProfiles != "" || g.DrainSeenAt != nil || g.PodUID != "u0" {
		t.Errorf("gw-0: %+v", g)
	}
	if g := got[1]; g.State != drainv1.TargetFailed || g.Unreachable == "" {
		t.Errorf("gw-1, never written to, is %s (unreachable %q)", g.State, g.Unreachable)
	}
	if g := got[2]; g.State != drainv1.TargetReplacing || !g.ServeBy.Equal(at(time.Minute)) {
		t.Errorf("gw-2: %s, serve by %v", g.State, g.ServeBy)
	}
	if got[3].State != drainv1.TargetReplaced {
		t.Errorf("gw-3: %s", got[3].State)
	}

	// An annotation older than the halt resumes nothing.
	gwd.Status.HaltedAt = at(0)
	before := d.targets[0]
	d.targets[0].State = drainv1.TargetReleased
	if d = newView(gwd, d.targets, now, time.Second); d.release == "" {
		t.Error("a halted wave does not release")
	}
	(&Reconciler{}).resume(d)
	if gwd.Status.HaltedAt == nil || d.targets[0].State != drainv1.TargetReleased {
		t.Errorf("resumed by an annotation from before the halt: %+v, was %+v", d.targets[0], before)
	}
}
