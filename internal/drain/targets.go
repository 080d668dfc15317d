package drain

import (
	"cmp"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod"
)

// NewTarget records the instantiation a running pod is now: the pod UID and
// the gateway container's start. The marker location (container and
// HERMES_HOME) is resolved here, once, so it cannot drift during the drain.
func NewTarget(gwd *drainv1.GatewayDrain, pod *corev1.Pod) drainv1.Target {
	at, home, err := gatewaypod.Locate(pod, gwd.Spec.Container, gwd.Spec.HermesHome)
	t := drainv1.Target{PodName: pod.Name, PodUID: pod.UID, Container: at.Container, HermesHome: home, State: drainv1.TargetPending}
	if Replaces(gwd) {
		t.State = drainv1.TargetWaiting // a wave takes it in
	}
	if cs := gatewaypod.ContainerStatus(pod, t.Container); cs != nil && cs.State.Running != nil {
		started := cs.State.Running.StartedAt
		t.StartedAt, t.RestartCount, t.ContainerID = &started, cs.RestartCount, cs.ContainerID
	}
	if err != nil { // never sent to the pod
		t.Unreachable = err.Error()
		t.State, t.Message = drainv1.TargetFailed, err.Error()+"; the operator will not write to this gateway: it blocks the drain until it restarts"
	}
	return t
}

// NotRunning says why a pod cannot be a target now, or "" when it can: it
// must be running, not terminating, with its gateway container running.
func NotRunning(gwd *drainv1.GatewayDrain, pod *corev1.Pod) string {
	switch {
	case pod.DeletionTimestamp != nil:
		return "terminating"
	case pod.Status.Phase != corev1.PodRunning:
		return fmt.Sprintf("not running (phase %s)", cmp.Or(string(pod.Status.Phase), "unknown"))
	}
	name := gatewaypod.Container(pod, gwd.Spec.Container)
	if cs := gatewaypod.ContainerStatus(pod, name); cs != nil && cs.State.Running == nil {
		return "gateway container " + name + " not running"
	}
	return "" // a missing container becomes a Failed target that says so
}

// Skipped says why a pod the selector matches would not be a target of gwd
// now, or "" when it would be: what `kubectl hermes-drain preview` shows,
// decided as the reconciler chooses its targets.
func Skipped(gwd *drainv1.GatewayDrain, pod *corev1.Pod) string {
	if why := NotRunning(gwd, pod); why != "" {
		return why
	}
	if !gatewaypod.IsGateway(pod) {
		return fmt.Sprintf("not a gateway (no label %s=true, no readiness gate %s)", drainv1.GatewayLabel, drainv1.ReadinessGate)
	}
	return ""
}

// InstantiationOver reports why the target's instantiation no longer runs in
// pod (nil when the pod is gone), or "" while it still does. A recreated pod
// (new UID) and a restarted container (new start, restart count or ID) are
// new instantiations: the drain is over for them. This does not rely on the
// epoch, which a container restart leaves unchanged under shareProcessNamespace.
func InstantiationOver(t *drainv1.Target, pod *corev1.Pod) string {
	if pod == nil {
		return "pod deleted"
	}
	if pod.UID != t.PodUID {
		return "pod recreated (new UID " + string(pod.UID) + ")"
	}
	if t.StartedAt == nil {
		return "" // the container never ran; nothing to compare
	}
	cs := gatewaypod.ContainerStatus(pod, t.Container)
	switch {
	case cs == nil || cs.State.Running == nil:
		return "gateway container " + t.Container + " stopped"
	case !cs.State.Running.StartedAt.Equal(t.StartedAt) || cs.RestartCount != t.RestartCount || cs.ContainerID != t.ContainerID:
		return fmt.Sprintf("gateway container %s restarted (restartCount %d, started %s)",
			t.Container, cs.RestartCount, cs.State.Running.StartedAt.UTC().Format(metav1.RFC3339Micro))
	}
	return ""
}

// ComingBack reports whether pod will run its gateway again: it exists, is
// not terminating and has not finished (a restarted container, or a pod
// recreated under the same name and not running yet).
func ComingBack(pod *corev1.Pod) bool {
	return pod != nil && pod.DeletionTimestamp == nil && (pod.Status.Phase == corev1.PodRunning || pod.Status.Phase == corev1.PodPending)
}

// Holds reports whether a target still holds this instantiation of pod:
// it is the pod's, taken in (not waiting for a wave), and neither released,
// nor over, nor let go by a person who removed its marker.
func Holds(t drainv1.Target, pod *corev1.Pod) bool {
	switch t.State {
	case drainv1.TargetWaiting, drainv1.TargetReplaced, drainv1.TargetRestarted, drainv1.TargetReleased, drainv1.TargetMarkerRemoved:
		return false
	}
	return t.PodName == pod.Name && t.PodUID == pod.UID
}
