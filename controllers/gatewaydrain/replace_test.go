//go:build !unit

package gatewaydrain_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
)

// ownedBy makes a pod its controller's: envtest runs no controller, so the
// tests create the replacements themselves.
func ownedBy(kind, name string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name, UID: types.UID("uid-" + name), Controller: ptr.To(true)}}
		if kind == "ReplicaSet" {
			p.Labels["pod-template-hash"] = strings.TrimPrefix(name, "web-")
		}
	}
}

func replacing(maxUnavailable intstr.IntOrString, servingTimeout time.Duration) func(*drainv1.GatewayDrain) {
	return func(d *drainv1.GatewayDrain) {
		d.Spec.Replace = &drainv1.ReplaceSpec{MaxUnavailable: &maxUnavailable, ServingTimeout: &metav1.Duration{Duration: servingTimeout}}
	}
}

// setReady marks the pod Ready, as the kubelet does once its probes pass.
func (g *gateway) setReady() {
	g.t.Helper()
	g.pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	if err := k8s.Status().Update(context.Background(), g.pod); err != nil {
		g.t.Fatal(err)
	}
}

// waitGone waits until the gateway's pod of this UID is gone: evicted.
func (g *gateway) waitGone() {
	g.t.Helper()
	testenv.Eventually(g.t, wait, func() (bool, string) {
		p := &corev1.Pod{}
		err := k8s.Get(context.Background(), client.ObjectKeyFromObject(g.pod), p)
		return apierrors.IsNotFound(err) || err == nil && p.UID != g.pod.UID, "pod " + g.name + " not evicted"
	})
}

// replaceAsItsStatefulSet plays a drained gateway and its StatefulSet: the
// gateway drains, its pod is evicted, the StatefulSet creates it again (the
// same name and home, a new UID), and the new gateway runs, until the drain
// counts it Replaced.
func (g *gateway) replaceAsItsStatefulSet(gwd *drainv1.GatewayDrain) {
	g.t.Helper()
	g.setState(marker.StateDraining, 0)
	g.waitGone()
	g.create()
	g.setReady()
	g.setState(marker.StateRunning, 0)
	waitFor(g.t, gwd, g.name+" replaced", targetState(g.name, drainv1.TargetReplaced))
}

// markedHomes names the gateways whose home holds a marker.
func markedHomes(gws []*gateway) []string {
	var marked []string
	for _, g := range gws {
		if g.marker() != nil {
			marked = append(marked, g.name)
		}
	}
	return marked
}

// A drain-and-replace takes its targets in one at a time (maxUnavailable
// 1), the idle first: each is drained, evicted, and done once the pod its
// StatefulSet creates under its name serves. No two gateways are ever out
// at once, a busy one waits its turn serving, our marker is removed from
// the replacement's durable home, and the drain ends Replaced, never
// Drained (issue 26, items 1 and 3).
func TestADrainAndReplaceGoesOneGatewayAtATime(t *testing.T) {
	ns := env.Namespace(t)
	var gws []*gateway
	for _, name := range []string{"gw-0", "gw-1", "gw-2"} {
		gws = append(gws, newGateway(t, ns, name, ownedBy("StatefulSet", "gw")))
	}
	for _, g := range gws {
		g.setReady()
	}
	gws[0].setState(marker.StateRunning, 2) // busy: taken in last
	gwd := newGatewayDrain(t, ns, "upgrade", replacing(intstr.FromInt32(1), time.Minute))

	var order []string
	for range gws {
		var g *gateway
		testenv.Eventually(t, wait, func() (bool, string) {
			marked := markedHomes(gws)
			if len(marked) > 1 {
				t.Fatalf("%v marked at once with maxUnavailable 1", marked)
			}
			for _, c := range gws {
				if len(marked) == 1 && c.name == marked[0] && (len(order) == 0 || order[len(order)-1] != c.name) {
					g = c
				}
			}
			return g != nil, "no next gateway marked"
		})
		order = append(order, g.name)
		waitFor(t, gwd, g.name+" out, the rest waiting", func(o *observed) bool {
			return o.Status.Unavailable == 1 && o.Status.MaxUnavailable == 1 && o.Status.Counts.Waiting == int32(len(gws)-len(order))
		})
		g.replaceAsItsStatefulSet(gwd) // gw-0's turns finish first
		if g.marker() != nil {
			t.Fatalf("%s: our marker was left in the replacement's home: %s", g.name, g.marker())
		}
	}
	if order[2] != "gw-0" {
		t.Errorf("taken in %v: the busy gw-0 should go last", order)
	}
	got := waitFor(t, gwd, "Replaced", condition(drainv1.ConditionReplaced, metav1.ConditionTrue, drainv1.ReasonReplaced))
	if !condition(drainv1.ConditionReady, metav1.ConditionTrue, drainv1.ReasonReplaced)(got) || !condition(drainv1.ConditionDrained, metav1.ConditionFalse, drainv1.ReasonReplaced)(got) {
		t.Errorf("conditions %+v: want Ready True and Drained False, both Replaced", got.Status.Conditions)
	}
	if got.Status.Counts.Replaced != 3 || got.Status.Progress != "3/3" || got.Status.Unavailable != 0 {
		t.Errorf("counts %+v progress %s unavailable %d", got.Status.Counts, got.Status.Progress, got.Status.Unavailable)
	}
	for _, tg := range got.Targets {
		if tg.Replacement != tg.PodName || tg.Owner != "StatefulSet/gw" || tg.EvictedAt == nil || tg.ReplacedAt == nil {
			t.Errorf("%s: replacement %q owner %q evicted %v replaced %v", tg.PodName, tg.Replacement, tg.Owner, tg.EvictedAt, tg.ReplacedAt)
		}
	}
	waitEvent(t, gwd, "Evicted")
	waitEvent(t, gwd, "Replaced")
}

// A PodDisruptionBudget that allows no disruption refuses the eviction: the
// target stays drained, the refusal is named in its message, in the
// Replaced condition and in an event, and the eviction goes through once
// the budget allows it (issue 26, item 1).
func TestAPodDisruptionBudgetsRefusalIsNamed(t *testing.T) {
	ns := env.Namespace(t)
	g := newGateway(t, ns, "gw-0", ownedBy("StatefulSet", "gw"))
	g.setReady()
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "one-gateway"},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(1)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "hermes-gateway"}}},
	}
	if err := k8s.Create(context.Background(), pdb); err != nil {
		t.Fatal(err)
	}
	setBudget := func(allowed int32) {
		t.Helper()
		// envtest runs no disruption controller: the test writes what it would.
		pdb.Status = policyv1.PodDisruptionBudgetStatus{ObservedGeneration: pdb.Generation, DisruptionsAllowed: allowed, CurrentHealthy: 1, DesiredHealthy: 1 - allowed, ExpectedPods: 1}
		if err := k8s.Status().Update(context.Background(), pdb); err != nil {
			t.Fatal(err)
		}
	}
	setBudget(0)
	gwd := newGatewayDrain(t, ns, "upgrade", replacing(intstr.FromInt32(1), time.Minute))
	g.waitHonoured(true)
	g.setState(marker.StateDraining, 0)
	// The status is written after the targets: waited for too.
	got := waitFor(t, gwd, "eviction refused, in the target and the condition", func(o *observed) bool {
		c := metaCondition(o, drainv1.ConditionReplaced)
		return strings.Contains(o.Target("gw-0").Message, "eviction refused by a PodDisruptionBudget") &&
			c.Status == metav1.ConditionFalse && strings.Contains(c.Message, "gw-0 (Drained: drained; eviction refused")
	})
	if tg := got.Target("gw-0"); tg.State != drainv1.TargetDrained || !strings.Contains(tg.Message, "one-gateway") {
		t.Errorf("gw-0: %s (%s): want Drained, naming the budget", tg.State, tg.Message)
	}
	waitEvent(t, gwd, "EvictionRefused")

	setBudget(1)
	g.waitGone()
	waitFor(t, gwd, "Replacing", targetState("gw-0", drainv1.TargetReplacing))
}

// A replacement that does not serve within servingTimeout halts the wave:
// nothing more is evicted, the target taken in but not yet evicted is
// released (its marker removed), those waiting stay untouched, and Stalled
// names the pod and why. Resumed once the replacement serves, the wave
// carries on to the end (issue 26, item 2).
func TestABadReplacementHaltsTheWave(t *testing.T) {
	ns := env.Namespace(t)
	rs := ownedBy("ReplicaSet", "web-5d8f")
	var gws []*gateway
	for _, name := range []string{"web-5d8f-a", "web-5d8f-b", "web-5d8f-c"} {
		gws = append(gws, newGateway(t, ns, name, rs))
	}
	for _, g := range gws {
		g.setReady()
	}
	gwd := newGatewayDrain(t, ns, "upgrade", replacing(intstr.FromString("67%"), 10*time.Second))
	// 67% of 3 rounds down to 2: a and b are taken in, c waits.
	gws[0].waitHonoured(true)
	gws[1].waitHonoured(true)
	if gws[2].marker() != nil {
		t.Fatal("c marked: 67% of 3 is 2")
	}
	gws[1].setState(marker.StateDraining, 1) // b still has a turn in flight
	gws[0].setState(marker.StateDraining, 0)
	gws[0].waitGone()
	// The ReplicaSet's replacement, under a new name: it crash-loops.
	bad := newGateway(t, ns, "web-5d8f-x", rs)
	bad.stopContainer()
	got := waitFor(t, gwd, "halted", condition(drainv1.ConditionStalled, metav1.ConditionTrue, drainv1.ReasonReplacementNotServing))
	if c := metaCondition(got, drainv1.ConditionStalled); !strings.Contains(c.Message, "web-5d8f-a was not replaced") || !strings.Contains(c.Message, "web-5d8f-x: gateway container CrashLoopBackOff") {
		t.Errorf("Stalled says %q: want the pod and why", c.Message)
	}
	got = waitFor(t, gwd, "b released", targetState("web-5d8f-b", drainv1.TargetReleased))
	if gws[1].marker() != nil || gws[2].marker() != nil {
		t.Errorf("markers left: b %q, c %q", gws[1].marker(), gws[2].marker())
	}
	if tg := got.Target("web-5d8f-c"); tg.State != drainv1.TargetWaiting {
		t.Errorf("c: %s, want Waiting", tg.State)
	}
	for _, g := range gws[1:] {
		if p := (&corev1.Pod{}); k8s.Get(context.Background(), client.ObjectKeyFromObject(g.pod), p) != nil || p.UID != g.pod.UID {
			t.Errorf("%s was evicted after the halt", g.name)
		}
	}
	waitEvent(t, gwd, drainv1.ReasonReplacementNotServing)

	// The template is fixed: the replacement serves. Resumed, the wave
	// carries on with b and c.
	bad.setContainer(1, time.Now())
	bad.setReady()
	gws[1].setState(marker.StateRunning, 0)
	patchSpec(t, gwd, func(d *drainv1.GatewayDrain) {
		metav1.SetMetaDataAnnotation(&d.ObjectMeta, drainv1.ResumeAnnotation, time.Now().Add(time.Second).UTC().Format(time.RFC3339))
	})
	waitFor(t, gwd, "a replaced", targetState("web-5d8f-a", drainv1.TargetReplaced))
	for i, g := range gws[1:] {
		g.waitHonoured(true)
		g.setState(marker.StateDraining, 0)
		g.waitGone()
		repl := newGatewayAt(t, ns, "web-5d8f-y"+string(rune('0'+i)), filepath.Join(t.TempDir(), "y"), rs)
		repl.setReady()
	}
	got = waitFor(t, gwd, "Replaced", condition(drainv1.ConditionReplaced, metav1.ConditionTrue, drainv1.ReasonReplaced))
	seen := map[string]bool{}
	for _, tg := range got.Targets {
		if tg.Owner != "Deployment/web" || seen[tg.Replacement] {
			t.Errorf("%s: owner %q, replacement %q (claimed twice: %v)", tg.PodName, tg.Owner, tg.Replacement, seen[tg.Replacement])
		}
		seen[tg.Replacement] = true
	}
}

// A selector that matches a gateway pod no controller would replace gets a
// clear error in status, and nothing is drained until those pods are gone
// (issue 26, item 3).
func TestAPodWithoutAControllerIsNeverEvicted(t *testing.T) {
	ns := env.Namespace(t)
	owned := newGateway(t, ns, "gw-0", ownedBy("StatefulSet", "gw"))
	bare := newGateway(t, ns, "bare")
	job := newGateway(t, ns, "batch", func(p *corev1.Pod) {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: "once", UID: "j", Controller: ptr.To(true)}}
	})
	gwd := newGatewayDrain(t, ns, "upgrade", replacing(intstr.FromString("100%"), time.Minute))
	got := waitFor(t, gwd, "CannotReplace", condition(drainv1.ConditionStalled, metav1.ConditionTrue, drainv1.ReasonCannotReplace))
	c := metaCondition(got, drainv1.ConditionStalled)
	if !strings.Contains(c.Message, "2 of the 3 gateway pods") || !strings.Contains(c.Message, "bare: no controller") || !strings.Contains(c.Message, "batch: owned by Job once") {
		t.Errorf("Stalled says %q", c.Message)
	}
	if len(got.Targets) != 0 || owned.marker() != nil || bare.marker() != nil || job.marker() != nil {
		t.Errorf("something was drained: %d targets", len(got.Targets))
	}
	// Once the pods no controller replaces are gone, the drain starts.
	for _, g := range []*gateway{bare, job} {
		if err := k8s.Delete(context.Background(), g.pod); err != nil {
			t.Fatal(err)
		}
	}
	owned.waitHonoured(true)
	if got := observe(t, gwd); len(got.Targets) != 1 || got.Targets[0].PodName != "gw-0" {
		t.Errorf("targets %+v, want gw-0 alone", got.Targets)
	}
}

// A wave cancelled half-way lets go of everything it holds and touches
// nothing more: the replaced stay replaced, the drained one's marker is
// removed, the waiting one is released with nothing written, and nothing
// more is evicted (issue 26, item 1).
func TestACancelledWaveLetsGoOfWhatItHolds(t *testing.T) {
	ns := env.Namespace(t)
	var gws []*gateway
	for _, name := range []string{"gw-0", "gw-1", "gw-2"} {
		gws = append(gws, newGateway(t, ns, name, ownedBy("StatefulSet", "gw")))
		gws[len(gws)-1].setReady()
	}
	gwd := newGatewayDrain(t, ns, "upgrade", replacing(intstr.FromInt32(1), time.Minute))
	// The first one taken in is replaced.
	var first *gateway
	testenv.Eventually(t, wait, func() (bool, string) {
		for _, g := range gws {
			if g.marker() != nil {
				first = g
			}
		}
		return first != nil, "none marked"
	})
	first.replaceAsItsStatefulSet(gwd)
	// The second is taken in and held drained: its turn never finishes.
	var second *gateway
	testenv.Eventually(t, wait, func() (bool, string) {
		for _, g := range gws {
			if g != first && g.marker() != nil {
				second = g
			}
		}
		return second != nil, "no second marked"
	})
	second.setState(marker.StateDraining, 1)
	waitFor(t, gwd, second.name+" draining", targetState(second.name, drainv1.TargetDraining))

	patchSpec(t, gwd, func(d *drainv1.GatewayDrain) { d.Spec.Action = drainv1.ActionCancel })
	got := waitFor(t, gwd, "released", condition(drainv1.ConditionReady, metav1.ConditionTrue, drainv1.ReasonReleased))
	for _, g := range gws {
		tg := got.Target(g.name)
		want := map[*gateway]drainv1.TargetState{first: drainv1.TargetReplaced, second: drainv1.TargetReleased}[g]
		if want == "" {
			want = drainv1.TargetReleased
			if tg.MarkerWrittenAt != nil || !strings.Contains(tg.Message, "before its turn: nothing was written") {
				t.Errorf("%s, waiting its turn: %q, marker written %v", g.name, tg.Message, tg.MarkerWrittenAt)
			}
		}
		if tg.State != want || g.marker() != nil {
			t.Errorf("%s: %s (%s), marker %q; want %s and no marker", g.name, tg.State, tg.Message, g.marker(), want)
		}
	}
	if p := (&corev1.Pod{}); k8s.Get(context.Background(), client.ObjectKeyFromObject(second.pod), p) != nil || p.UID != second.pod.UID {
		t.Errorf("%s was evicted after the cancel", second.name)
	}
	if c := metaCondition(got, drainv1.ConditionReplaced); c.Status != metav1.ConditionFalse || c.Reason != drainv1.ReasonCancelled {
		t.Errorf("Replaced %+v: want False/Cancelled", c)
	}
}
