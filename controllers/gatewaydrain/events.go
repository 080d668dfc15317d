package gatewaydrain

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
)

// event records an event on the GatewayDrain; the reason doubles as the action.
func (r *Reconciler) event(gwd *drainv1.GatewayDrain, eventType, reason, note string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(gwd, nil, eventType, reason, reason, note, args...)
	}
}

// recordTransitions emits one event each time the Ready condition's reason
// changes: it names every phase of a drain (Progressing, Drained, Releasing,
// Released, DeadlineExceeded, NoTargets, InvalidSelector).
func (r *Reconciler) recordTransitions(before, after *drainv1.GatewayDrain) {
	was := meta.FindStatusCondition(before.Status.Conditions, drainv1.ConditionReady)
	now := meta.FindStatusCondition(after.Status.Conditions, drainv1.ConditionReady)
	if now == nil || (was != nil && was.Reason == now.Reason && was.Status == now.Status) {
		return
	}
	if now.Reason == drainv1.ReasonDrained && now.Status == metav1.ConditionTrue {
		drainSeconds.Observe(now.LastTransitionTime.Sub(after.CreationTimestamp.Time).Seconds())
	}
	eventType := corev1.EventTypeNormal
	if meta.IsStatusConditionTrue(after.Status.Conditions, drainv1.ConditionStalled) {
		eventType = corev1.EventTypeWarning
	}
	r.event(after, eventType, now.Reason, "%s", now.Message)
}
