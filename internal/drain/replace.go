package drain

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod"
)

// Replaces reports whether the drain replaces its targets in waves
// (spec.replace).
func Replaces(gwd *drainv1.GatewayDrain) bool { return gwd.Spec.Replace != nil }

// MaxUnavailable is spec.replace.maxUnavailable resolved against n targets:
// a percentage rounds down, as a StatefulSet's does, and never below 1, so
// that 10% of 5 gateways still moves.
func MaxUnavailable(gwd *drainv1.GatewayDrain, n int) int {
	v := intstr.FromInt32(1)
	if r := gwd.Spec.Replace; r != nil && r.MaxUnavailable != nil {
		v = *r.MaxUnavailable
	}
	got, err := intstr.GetScaledValueFromIntOrPercent(&v, n, false)
	if err != nil { // admission refuses what does not parse
		return 1
	}
	return max(got, 1)
}

// ServingTimeout is spec.replace.servingTimeout or its default.
func ServingTimeout(gwd *drainv1.GatewayDrain) time.Duration {
	if r := gwd.Spec.Replace; r != nil && r.ServingTimeout != nil {
		return r.ServingTimeout.Duration
	}
	return 5 * time.Minute
}

// Halted reports whether the drain's wave is halted: a replacement did not
// serve in time, and the drain was not resumed since.
func Halted(gwd *drainv1.GatewayDrain) bool {
	return gwd.Status.HaltedAt != nil && !Resumed(gwd)
}

// Resumed reports whether the resume annotation asks, after the halt, to
// carry on.
func Resumed(gwd *drainv1.GatewayDrain) bool {
	at, err := time.Parse(time.RFC3339, gwd.Annotations[drainv1.ResumeAnnotation])
	return err == nil && gwd.Status.HaltedAt != nil && at.After(gwd.Status.HaltedAt.Time)
}

// Unavailable reports whether a target counts against maxUnavailable: taken
// in (a marker may be in place, or it is out of traffic) and not yet
// replaced. A target a person let go of (MarkerRemoved) serves, and one the
// operator never writes to (Unreachable) was never taken in.
func Unavailable(t drainv1.Target) bool {
	switch t.State {
	case drainv1.TargetWaiting, drainv1.TargetReplaced, drainv1.TargetRestarted, drainv1.TargetReleased, drainv1.TargetMarkerRemoved:
		return false
	}
	return t.Unreachable == ""
}

// TakeIn chooses which waiting targets a wave takes in, at most n: the idle
// first (fewest turns in flight as last read, unread last), then in their
// order. An idle gateway's refusal window is only its restart, and a busy
// one left for later may be idle by its turn: the windows stay short.
func TakeIn(targets []drainv1.Target, n int) []int {
	var waiting []int
	for i, t := range targets {
		if t.State == drainv1.TargetWaiting && t.Unreachable == "" {
			waiting = append(waiting, i)
		}
	}
	busy := func(t drainv1.Target) int64 {
		if t.ActiveAgents == nil {
			return 1 << 40
		}
		return int64(*t.ActiveAgents)
	}
	slices.SortStableFunc(waiting, func(a, b int) int { return cmp.Compare(busy(targets[a]), busy(targets[b])) })
	return waiting[:max(0, min(n, len(waiting)))]
}

// OwnerOf names the controller that replaces pod, as Kind/name: its
// StatefulSet, its ReplicaSet's Deployment (from the ReplicaSet's name and
// the pod's pod-template-hash, as the Deployment controller names them), or
// its ReplicaSet; "" with the reason when none would replace it.
func OwnerOf(pod *corev1.Pod) (owner, why string) {
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return "", "no controller: it would not be replaced"
	}
	if !strings.HasPrefix(ref.APIVersion, appsv1.GroupName+"/") || (ref.Kind != "ReplicaSet" && ref.Kind != "StatefulSet") {
		return "", fmt.Sprintf("owned by %s %s, which the operator does not replace through (a ReplicaSet, so a Deployment, or a StatefulSet)", ref.Kind, ref.Name)
	}
	if hash := pod.Labels[appsv1.DefaultDeploymentUniqueLabelKey]; ref.Kind == "ReplicaSet" && hash != "" && strings.HasSuffix(ref.Name, "-"+hash) {
		return "Deployment/" + strings.TrimSuffix(ref.Name, "-"+hash), ""
	}
	return ref.Kind + "/" + ref.Name, ""
}

// SameName reports whether owner replaces a pod under its own name (a
// StatefulSet).
func SameName(owner string) bool { return strings.HasPrefix(owner, "StatefulSet/") }

// NotServing says why a replacement pod does not serve yet, as Kubernetes
// shows it, or "" when it runs, is Ready and is not going away. Whether its
// gateway accepts turns is read from the gateway.
func NotServing(pod *corev1.Pod, container string) string {
	switch {
	case pod.DeletionTimestamp != nil:
		return "terminating"
	case pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded:
		return fmt.Sprintf("phase %s", pod.Status.Phase)
	}
	if cs := gatewaypod.ContainerStatus(pod, container); cs != nil {
		switch {
		case cs.State.Terminated != nil:
			return fmt.Sprintf("gateway container exited (exit code %d, %s; %d restarts)", cs.State.Terminated.ExitCode, cs.State.Terminated.Reason, cs.RestartCount)
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
			why := "gateway container " + cs.State.Waiting.Reason
			if last := cs.LastTerminationState.Terminated; last != nil {
				why += fmt.Sprintf(" (last exit code %d, %s; %d restarts)", last.ExitCode, last.Reason, cs.RestartCount)
			}
			return why
		}
	}
	if !gatewaypod.Running(pod, container) {
		return fmt.Sprintf("gateway container %s not running (phase %s)", container, cmp.Or(string(pod.Status.Phase), "unknown"))
	}
	if gatewaypod.ConditionStatus(pod, corev1.PodReady) != corev1.ConditionTrue {
		return "not Ready"
	}
	return ""
}
