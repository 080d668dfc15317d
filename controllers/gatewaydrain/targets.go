package gatewaydrain

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// newTarget records the instantiation a running pod is now: the pod UID and
// the gateway container's start. The marker location (container and
// HERMES_HOME) is resolved here, once, so it cannot drift during the drain.
func newTarget(gwd *drainv1.GatewayDrain, pod *corev1.Pod) drainv1.Target {
	t := drainv1.Target{
		PodName:   pod.Name,
		PodUID:    pod.UID,
		Container: gatewayContainer(gwd, pod),
		State:     drainv1.TargetPending,
	}
	if cs := containerStatus(pod, t.Container); cs != nil && cs.State.Running != nil {
		started := cs.State.Running.StartedAt
		t.StartedAt, t.RestartCount, t.ContainerID = &started, cs.RestartCount, cs.ContainerID
	}
	home, err := hermesHome(gwd, pod, t.Container)
	t.HermesHome = home
	if err != nil {
		t.State, t.Message = drainv1.TargetFailed, err.Error()
	}
	return t
}

// gatewayContainer is spec.container, else the pod's container annotation,
// else the pod's first container.
func gatewayContainer(gwd *drainv1.GatewayDrain, pod *corev1.Pod) string {
	if gwd.Spec.Container != "" {
		return gwd.Spec.Container
	}
	if name := pod.Annotations[drainv1.ContainerAnnotation]; name != "" {
		return name
	}
	if len(pod.Spec.Containers) > 0 {
		return pod.Spec.Containers[0].Name
	}
	return ""
}

// hermesHome is spec.hermesHome, else the container's literal HERMES_HOME env
// value (validated like the spec field, since no API server checked it),
// else the upstream default.
func hermesHome(gwd *drainv1.GatewayDrain, pod *corev1.Pod, container string) (string, error) {
	if gwd.Spec.HermesHome != "" {
		return gwd.Spec.HermesHome, nil
	}
	for _, c := range pod.Spec.Containers {
		if c.Name != container {
			continue
		}
		for _, env := range c.Env {
			if env.Name == "HERMES_HOME" && env.ValueFrom == nil && env.Value != "" {
				if err := marker.ValidateHome(env.Value); err != nil {
					return env.Value, fmt.Errorf("the container's HERMES_HOME %q %v: set spec.hermesHome", env.Value, err)
				}
				return env.Value, nil
			}
		}
	}
	return drainv1.DefaultHermesHome, nil
}

func containerStatus(pod *corev1.Pod, name string) *corev1.ContainerStatus {
	for i := range pod.Status.ContainerStatuses {
		if pod.Status.ContainerStatuses[i].Name == name {
			return &pod.Status.ContainerStatuses[i]
		}
	}
	return nil
}

// isCandidate reports whether a pod can be a target when the drain starts:
// running, not terminating, with its gateway container running.
func isCandidate(gwd *drainv1.GatewayDrain, pod *corev1.Pod) bool {
	if pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodRunning {
		return false
	}
	cs := containerStatus(pod, gatewayContainer(gwd, pod))
	return cs == nil || cs.State.Running != nil // a missing container becomes a Failed target that says so
}

// instantiationOver reports why the target's instantiation no longer runs in
// pod (nil when the pod is gone), or "" while it still does. A recreated pod
// (new UID) and a restarted container (new start, restart count or ID) are
// new instantiations: the drain is over for them. This does not rely on the
// epoch, which a container restart leaves unchanged under shareProcessNamespace.
func instantiationOver(t *drainv1.Target, pod *corev1.Pod) string {
	if pod == nil {
		return "pod deleted"
	}
	if pod.UID != t.PodUID {
		return "pod recreated (new UID " + string(pod.UID) + ")"
	}
	if t.StartedAt == nil {
		return "" // the container never ran; nothing to compare
	}
	cs := containerStatus(pod, t.Container)
	switch {
	case cs == nil || cs.State.Running == nil:
		return "gateway container " + t.Container + " stopped"
	case !cs.State.Running.StartedAt.Equal(t.StartedAt) || cs.RestartCount != t.RestartCount || cs.ContainerID != t.ContainerID:
		return fmt.Sprintf("gateway container %s restarted (restartCount %d, started %s)",
			t.Container, cs.RestartCount, cs.State.Running.StartedAt.UTC().Format(metav1.RFC3339Micro))
	}
	return ""
}

// runningContainer reports whether pod runs its container c, so that a stale
// marker can be removed from whatever instantiation now runs there.
func runningContainer(pod *corev1.Pod, c string) bool {
	if pod == nil || pod.DeletionTimestamp != nil {
		return false
	}
	cs := containerStatus(pod, c)
	return cs != nil && cs.State.Running != nil
}
