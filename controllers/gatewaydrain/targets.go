package gatewaydrain

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod"
)

// newTarget records the instantiation a running pod is now: the pod UID and
// the gateway container's start. The marker location (container and
// HERMES_HOME) is resolved here, once, so it cannot drift during the drain.
func newTarget(gwd *drainv1.GatewayDrain, pod *corev1.Pod) drainv1.Target {
	t := drainv1.Target{
		PodName:   pod.Name,
		PodUID:    pod.UID,
		Container: gatewaypod.Container(pod, gwd.Spec.Container),
		State:     drainv1.TargetPending,
	}
	if cs := gatewaypod.ContainerStatus(pod, t.Container); cs != nil && cs.State.Running != nil {
		started := cs.State.Running.StartedAt
		t.StartedAt, t.RestartCount, t.ContainerID = &started, cs.RestartCount, cs.ContainerID
	}
	home, err := gatewaypod.Home(pod, t.Container, gwd.Spec.HermesHome)
	t.HermesHome = home
	if err != nil { // never sent to the pod
		t.Unreachable = err.Error()
		t.State, t.Message = drainv1.TargetFailed, err.Error()+"; the operator will not write to this gateway: it blocks the drain until it restarts"
	}
	return t
}

// notRunning says why a pod cannot be a target now, or "" when it can: it
// must be running, not terminating, with its gateway container running.
func notRunning(gwd *drainv1.GatewayDrain, pod *corev1.Pod) string {
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
// decided as chooseTargets decides.
func Skipped(gwd *drainv1.GatewayDrain, pod *corev1.Pod) string {
	if why := notRunning(gwd, pod); why != "" {
		return why
	}
	if !gatewaypod.IsGateway(pod) {
		return fmt.Sprintf("not a gateway (no label %s=true, no readiness gate %s)", drainv1.GatewayLabel, drainv1.ReadinessGate)
	}
	return ""
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

// comingBack reports whether pod will run its gateway again: it exists, is
// not terminating and has not finished (a restarted container, or a pod
// recreated under the same name and not running yet).
func comingBack(pod *corev1.Pod) bool {
	return pod != nil && pod.DeletionTimestamp == nil && (pod.Status.Phase == corev1.PodRunning || pod.Status.Phase == corev1.PodPending)
}

// chooseTargets takes the snapshot: the pods that match the selector and run
// now are the drain's targets, for good.
func (r *Reconciler) chooseTargets(ctx context.Context, d *drain) (*stall, error) {
	gwd := d.gwd
	sel, err := metav1.LabelSelectorAsSelector(&gwd.Spec.Selector)
	if err != nil {
		return &stall{drainv1.ReasonInvalidSelector, "invalid selector: " + err.Error()}, nil
	}
	gateways, notGateways, err := r.matching(ctx, gwd, sel)
	if err != nil {
		return nil, err
	}
	var targets []drainv1.Target
	for _, pod := range gateways {
		targets = append(targets, newTarget(gwd, pod))
	}
	gwd.Status.NotGateways = int32(len(notGateways))
	if len(notGateways) > 0 {
		r.event(gwd, corev1.EventTypeWarning, "NotGateways", "skipped %d matching pods that do not declare themselves gateways (label %s=true or the readiness gate %s): %s",
			len(notGateways), drainv1.GatewayLabel, drainv1.ReadinessGate, someOf(len(notGateways), ", ", func(i int) string { return notGateways[i] }))
	}
	slices.SortFunc(targets, func(a, b drainv1.Target) int { return strings.Compare(a.PodName, b.PodName) })
	started := metav1.NewTime(d.now)
	deadline := metav1.NewTime(d.now.Add(timeout(gwd)))
	gwd.Status.StartedAt, gwd.Status.Deadline, d.targets = &started, &deadline, targets
	if len(targets) > 0 { // an empty snapshot is reported as NoTargets by computeStatus
		r.event(gwd, corev1.EventTypeNormal, "DrainStarted", "draining %d targets: %s", len(targets), podNames(targets))
	}
	return nil, nil
}

// matching lists the running pods the selector matches: those that declare
// themselves gateways, and the names of those that do not. The pods are the
// cache's own (a namespace may hold thousands): callers must not modify them.
func (r *Reconciler) matching(ctx context.Context, gwd *drainv1.GatewayDrain, sel labels.Selector) (gateways []*corev1.Pod, notGateways []string, err error) {
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(gwd.Namespace), client.MatchingLabelsSelector{Selector: sel}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, nil, err
	}
	for i := range pods.Items {
		switch pod := &pods.Items[i]; {
		case notRunning(gwd, pod) != "":
		case !gatewaypod.IsGateway(pod):
			notGateways = append(notGateways, pod.Name)
		default:
			gateways = append(gateways, pod)
		}
	}
	return gateways, notGateways, nil
}

// followSelector adds the gateway pods that match the selector and run a
// new instantiation: a pod that appeared, or a target's pod whose container
// restarted or that was recreated (in its old place). It reports whether it
// added any.
func (r *Reconciler) followSelector(ctx context.Context, d *drain) (bool, error) {
	gwd := d.gwd
	sel, err := metav1.LabelSelectorAsSelector(&gwd.Spec.Selector)
	if err != nil {
		return false, err // parsed when the targets were chosen: cannot happen
	}
	pods, _, err := r.matching(ctx, gwd, sel)
	if err != nil {
		return false, err
	}
	index := map[string]int{}
	for i, t := range d.targets {
		index[t.PodName] = i
	}
	added := metav1.NewTime(d.now)
	var names []string
	for _, pod := range pods {
		i, known := index[pod.Name]
		if known && instantiationOver(&d.targets[i], pod) == "" {
			continue
		}
		t := newTarget(gwd, pod)
		t.AddedAt = &added
		if known {
			d.targets[i] = t
			names = append(names, pod.Name+" (new instantiation)")
		} else {
			d.targets = append(d.targets, t)
			names = append(names, pod.Name)
		}
	}
	if len(names) == 0 {
		return false, nil
	}
	// Appended, not sorted in: every target stays in the TargetSlice it
	// was written to.
	r.event(gwd, corev1.EventTypeNormal, "TargetsAdded", "not yet drained, so following the selector: draining %s too", someOf(len(names), ", ", func(i int) string { return names[i] }))
	return true, nil
}
