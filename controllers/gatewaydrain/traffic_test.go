//go:build !unit

package gatewaydrain_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
)

// gated declares the readiness gate, as a pod that wants the zero-refusal
// drain does.
func gated(p *corev1.Pod) {
	p.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: drainv1.ReadinessGate}}
}

// setReadiness writes the pod's gate and Ready conditions, as the
// readiness reconciler and the kubelet would.
func (g *gateway) setReadiness(gate, ready corev1.ConditionStatus) {
	g.t.Helper()
	g.pod.Status.Conditions = []corev1.PodCondition{
		{Type: drainv1.ReadinessGate, Status: gate, LastTransitionTime: metav1.Now()},
		{Type: corev1.PodReady, Status: ready, LastTransitionTime: metav1.Now()},
	}
	if err := k8s.Status().Update(context.Background(), g.pod); err != nil {
		g.t.Fatal(err)
	}
}

// endpointSlice writes an EndpointSlice of Service svc listing the pods,
// ready or not, as the EndpointSlice controller would.
func endpointSlice(t *testing.T, ns, svc string, ready bool, pods ...*gateway) *discoveryv1.EndpointSlice {
	t.Helper()
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: svc + "-abcde", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for i, g := range pods {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.0.0.%d", i+1)},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: g.name, UID: g.pod.UID},
		})
	}
	cur := &discoveryv1.EndpointSlice{}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(s), cur); err == nil {
		cur.Endpoints = s.Endpoints
		if err := k8s.Update(context.Background(), cur); err != nil {
			t.Fatal(err)
		}
		return cur
	}
	if err := k8s.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	return s
}

// leavingFor waits until the target is LeavingTraffic, waiting for what.
func leavingFor(t *testing.T, gwd *drainv1.GatewayDrain, pod, what string) {
	t.Helper()
	waitFor(t, gwd, pod+" leaving traffic, waiting for "+what, func(d *observed) bool {
		tg := d.Target(pod)
		return tg.State == drainv1.TargetLeavingTraffic && strings.Contains(tg.Message, what) && d.Status.Counts.LeavingTraffic == 1
	})
}

// A gated gateway leaves its Services before its marker is written: its
// gate False, then the pod not Ready, then no EndpointSlice listing it as
// ready, then the data plane's delay; only then is the marker written. The
// status names each step. A pod without the gate is drained at once.
func TestAGatedGatewayLeavesTrafficBeforeItsMarker(t *testing.T) {
	ns := env.Namespace(t)
	g := newGateway(t, ns, "gw-gated", gated)
	plain := newGateway(t, ns, "gw-plain")
	g.setReadiness(corev1.ConditionTrue, corev1.ConditionTrue)
	endpointSlice(t, ns, "gateways", true, g, plain)
	gwd := newGatewayDrain(t, ns, "d")

	plain.waitHonoured(true)
	leavingFor(t, gwd, "gw-gated", "its readiness gate")
	g.setReadiness(corev1.ConditionFalse, corev1.ConditionTrue)
	leavingFor(t, gwd, "gw-gated", "the kubelet to report the pod not Ready")
	g.setReadiness(corev1.ConditionFalse, corev1.ConditionFalse)
	leavingFor(t, gwd, "gw-gated", "EndpointSlice gateways-abcde (Service gateways) to mark it not ready")
	if g.marker() != nil {
		t.Fatalf("the marker was written while the pod was still a ready endpoint: %s", g.marker())
	}
	left := time.Now()
	endpointSlice(t, ns, "gateways", false, g, plain)
	g.waitHonoured(true)
	got := waitFor(t, gwd, "its marker written", func(d *observed) bool { return d.Target("gw-gated").MarkerWrittenAt != nil }).Target("gw-gated")
	if got.LeavingTrafficSince == nil || got.OutOfTrafficAt == nil || got.MarkerWrittenAt == nil ||
		got.OutOfTrafficAt.Time.Before(left.Truncate(time.Second)) || got.MarkerWrittenAt.Before(got.OutOfTrafficAt) {
		t.Errorf("target %+v: want it out of traffic once its slice let it go (%s), and its marker after", got, left)
	}
}

// A gated gateway that no EndpointSlice lists is behind no Service: it has
// no Service traffic to leave, and its marker is written at once, gate or
// not (issue 24, item 9).
func TestAGatewayBehindNoServiceSpendsNoTimeLeavingTraffic(t *testing.T) {
	ns := env.Namespace(t)
	g := newGateway(t, ns, "gw-0", gated)
	g.setReadiness(corev1.ConditionTrue, corev1.ConditionTrue)
	gwd := newGatewayDrain(t, ns, "d", func(d *drainv1.GatewayDrain) {
		d.Spec.DeregistrationDelay = &metav1.Duration{Duration: time.Hour}
	})
	g.waitHonoured(true)
	if tg := observe(t, gwd).Target("gw-0"); tg.LeavingTrafficSince != nil {
		t.Errorf("target %s (%s): it waited to leave traffic it never had", tg.State, tg.Message)
	}
}

// spec.deregistrationDelay holds the marker back after the pod left every
// EndpointSlice, and MarkerFirst writes it at once, gate or not.
func TestTheTrafficOrderAndTheDeregistrationDelay(t *testing.T) {
	ns := env.Namespace(t)
	g := newGateway(t, ns, "gw-0", gated)
	g.setReadiness(corev1.ConditionFalse, corev1.ConditionFalse)
	endpointSlice(t, ns, "gateways", false, g)
	gwd := newGatewayDrain(t, ns, "d", func(d *drainv1.GatewayDrain) {
		d.Spec.DeregistrationDelay = &metav1.Duration{Duration: time.Hour}
	})
	leavingFor(t, gwd, "gw-0", "deregistration delay")
	if g.marker() != nil {
		t.Fatalf("the marker was written before the deregistration delay passed: %s", g.marker())
	}
	patchSpec(t, gwd, func(d *drainv1.GatewayDrain) { d.Spec.DeregistrationDelay = &metav1.Duration{Duration: time.Second} })
	g.waitHonoured(true)

	ns2 := env.Namespace(t)
	first := newGateway(t, ns2, "gw-0", gated)
	first.setReadiness(corev1.ConditionTrue, corev1.ConditionTrue)
	newGatewayDrain(t, ns2, "d", func(d *drainv1.GatewayDrain) { d.Spec.TrafficOrder = drainv1.TrafficMarkerFirst })
	first.waitHonoured(true)
}

// A gated gateway whose Services never let it go is drained anyway once
// --endpoints-settle-timeout (1 min in this suite) has passed, and a
// Warning event says so: a drain that never comes is worse than refused
// turns.
func TestAGatewayStuckInTrafficIsDrainedAfterTheSettleTimeout(t *testing.T) {
	ns := env.Namespace(t)
	g := newGateway(t, ns, "gw-0", gated)
	g.setReadiness(corev1.ConditionTrue, corev1.ConditionTrue)
	endpointSlice(t, ns, "gateways", true, g)
	gwd := newGatewayDrain(t, ns, "d")
	leavingFor(t, gwd, "gw-0", "its readiness gate")
	offset.Store(int64(2 * time.Minute))
	t.Cleanup(func() { offset.Store(0) })
	patchSpec(t, gwd, func(d *drainv1.GatewayDrain) { d.Spec.DeregistrationDelay = &metav1.Duration{} }) // wakes it
	g.waitHonoured(true)
	waitEvent(t, gwd, "TrafficNotSettled")
}
