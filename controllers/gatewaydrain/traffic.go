package gatewaydrain

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod"
)

// leaveTraffic keeps a gated target away from its marker until it is out
// of traffic: the readiness reconciler turns its gate False as soon as the
// target joins a drain that stands (it knows without reading the gateway);
// then the kubelet turns the pod not Ready, the EndpointSlice controller
// marks it not ready in every slice that lists it, and kube-proxy and load
// balancers follow. It reports whether the marker may be written now, and
// otherwise the target as it waits and when to look again (EndpointSlice
// and pod events wake it earlier). The wait is bounded by
// --endpoints-settle-timeout: a gateway whose Services never let it go is
// drained anyway, with a Warning event, since a drain that never comes is
// worse than refused turns.
//
// A pod that no EndpointSlice lists, ready or not, is behind no Service: it
// has no Service traffic to leave, and its marker is written at once. (Most
// turns reach a gateway on connections it opens itself, which only the
// marker stops.)
func (r *Reconciler) leaveTraffic(ctx context.Context, d *view, t drainv1.Target, pod *corev1.Pod, now time.Time) (drainv1.Target, time.Time, bool) {
	if t.MarkerWrittenAt != nil || pod == nil || !gatewaypod.Gated(pod) || !drain.LeavesTrafficFirst(d.gwd) {
		return t, time.Time{}, true
	}
	slices, err := r.slicesListing(ctx, pod)
	if err == nil && len(slices) == 0 && t.LeavingTrafficSince == nil {
		return t, time.Time{}, true // behind no Service
	}
	if t.LeavingTrafficSince == nil {
		since := metav1.NewTime(now)
		t.LeavingTrafficSince = &since
	}
	if t.OutOfTrafficAt == nil {
		giveUpAt := t.LeavingTrafficSince.Add(r.EndpointsSettleTimeout)
		inTraffic := inTraffic(pod, slices)
		if err != nil {
			inTraffic = "its EndpointSlices could not be read: " + err.Error()
		}
		if inTraffic != "" && now.Before(giveUpAt) {
			t.State = drainv1.TargetLeavingTraffic
			// The message stays the same from one reconcile to the next
			// (no running count): each change is a TargetSlice write.
			t.Message = fmt.Sprintf("out of traffic before the marker: waiting for %s (at most until %s)",
				inTraffic, giveUpAt.UTC().Format(time.RFC3339))
			return t, giveUpAt, false
		}
		if inTraffic != "" {
			r.event(d.gwd, corev1.EventTypeWarning, "TrafficNotSettled",
				"%s: still in traffic after %s (%s); writing its marker anyway", t.PodName, r.EndpointsSettleTimeout, inTraffic)
		}
		out := metav1.NewTime(now)
		t.OutOfTrafficAt = &out
	}
	delay := r.DataPlaneDelay
	if d.gwd.Spec.DeregistrationDelay != nil {
		delay += d.gwd.Spec.DeregistrationDelay.Duration
	}
	if writeAt := t.OutOfTrafficAt.Add(delay); now.Before(writeAt) {
		t.State = drainv1.TargetLeavingTraffic
		t.Message = fmt.Sprintf("out of traffic before the marker: no EndpointSlice lists it as ready; the marker is written at %s (data plane and deregistration delay)",
			writeAt.UTC().Format(time.RFC3339))
		return t, writeAt, false
	}
	return t, time.Time{}, true
}

// behindAService reports whether an EndpointSlice lists the pod, ready or
// not (or whether that cannot be told).
func (r *Reconciler) behindAService(ctx context.Context, pod *corev1.Pod) bool {
	slices, err := r.slicesListing(ctx, pod)
	return err != nil || len(slices) > 0
}

// slicesListing are the EndpointSlices that list the pod, ready or not.
func (r *Reconciler) slicesListing(ctx context.Context, pod *corev1.Pod) ([]discoveryv1.EndpointSlice, error) {
	var slices discoveryv1.EndpointSliceList
	err := r.List(ctx, &slices, client.InNamespace(pod.Namespace), client.MatchingFields{drain.EndpointPodIndex: pod.Name}, client.UnsafeDisableDeepCopy)
	return slices.Items, err
}

// inTraffic says what still sends the pod traffic, or "" when nothing
// does: its readiness gate still True, the pod still Ready, or one of
// slices that lists it as a ready endpoint (a missing ready condition
// means ready, as kube-proxy reads it).
func inTraffic(pod *corev1.Pod, slices []discoveryv1.EndpointSlice) string {
	if gatewaypod.ConditionStatus(pod, drainv1.ReadinessGate) == corev1.ConditionTrue {
		return "its readiness gate " + string(drainv1.ReadinessGate) + " to turn False"
	}
	if gatewaypod.ConditionStatus(pod, corev1.PodReady) == corev1.ConditionTrue {
		return "the kubelet to report the pod not Ready"
	}
	for _, s := range slices {
		for _, e := range s.Endpoints {
			if e.TargetRef != nil && e.TargetRef.Kind == "Pod" && e.TargetRef.Name == pod.Name &&
				(e.Conditions.Ready == nil || *e.Conditions.Ready) {
				return fmt.Sprintf("EndpointSlice %s (Service %s) to mark it not ready", s.Name, s.Labels[discoveryv1.LabelServiceName])
			}
		}
	}
	return ""
}
