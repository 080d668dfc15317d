package gatewaydrain

import (
	"context"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod"
)

// chooseTargets takes the snapshot: the pods that match the selector and run
// now are the drain's targets, for good.
func (r *Reconciler) chooseTargets(ctx context.Context, d *view) (*drain.Stall, error) {
	gwd := d.gwd
	sel, err := metav1.LabelSelectorAsSelector(&gwd.Spec.Selector)
	if err != nil {
		return &drain.Stall{Reason: drainv1.ReasonInvalidSelector, Message: "invalid selector: " + err.Error()}, nil
	}
	gateways, notGateways, err := r.matching(ctx, gwd, sel)
	if err != nil {
		return nil, err
	}
	if d.replaces {
		if stall := cannotReplace(gateways); stall != nil {
			return stall, nil // nothing is taken: the selector must change
		}
	}
	var targets []drainv1.Target
	for _, pod := range gateways {
		targets = append(targets, drain.NewTarget(gwd, pod))
	}
	gwd.Status.NotGateways = int32(len(notGateways))
	if len(notGateways) > 0 {
		r.event(gwd, corev1.EventTypeWarning, "NotGateways", "skipped %d matching pods that do not declare themselves gateways (label %s=true or the readiness gate %s): %s",
			len(notGateways), drainv1.GatewayLabel, drainv1.ReadinessGate, drain.SomeOf(len(notGateways), ", ", func(i int) string { return notGateways[i] }))
	}
	slices.SortFunc(targets, func(a, b drainv1.Target) int { return strings.Compare(a.PodName, b.PodName) })
	started := metav1.NewTime(d.now)
	deadline := metav1.NewTime(d.now.Add(drain.Timeout(gwd)))
	gwd.Status.StartedAt, gwd.Status.Deadline, d.targets = &started, &deadline, targets
	if len(targets) > 0 { // an empty snapshot is reported as NoTargets by drain.ComputeStatus
		r.event(gwd, corev1.EventTypeNormal, "DrainStarted", "draining %d targets: %s", len(targets), drain.PodNames(targets))
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
		case drain.NotRunning(gwd, pod) != "":
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
func (r *Reconciler) followSelector(ctx context.Context, d *view) (bool, error) {
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
		if known && drain.InstantiationOver(&d.targets[i], pod) == "" {
			continue
		}
		t := drain.NewTarget(gwd, pod)
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
	r.event(gwd, corev1.EventTypeNormal, "TargetsAdded", "not yet drained, so following the selector: draining %s too", drain.SomeOf(len(names), ", ", func(i int) string { return names[i] }))
	return true, nil
}
