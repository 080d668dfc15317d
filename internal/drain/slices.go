package drain

import (
	"context"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
)

// SlicePodIndex indexes TargetSlices by the names of their target pods, so
// a pod event or a gate read finds the drains that target it.
const SlicePodIndex = "targets.podName"

// Slices are a drain's TargetSlices as read, by index.
type Slices map[int32]*drainv1.TargetSlice

// Targets concatenates the slices' targets in index order.
func (l Slices) Targets() []drainv1.Target {
	var targets []drainv1.Target
	for _, i := range slices.Sorted(maps.Keys(l)) {
		targets = append(targets, l[i].Targets...)
	}
	return targets
}

// OwnedSlices lists the TargetSlices of gwd (labelled with its name and
// owned by its UID: a drain deleted and created again under the same name
// does not inherit the slices the first one left to the garbage collector).
//
// From the cache, the slices share their contents with the cache's own
// objects, not copied (10,000 targets would be copied on every reconcile):
// they are read only, and the reconciler writes new objects.
func OwnedSlices(ctx context.Context, c client.Reader, gwd *drainv1.GatewayDrain) (Slices, error) {
	var list drainv1.TargetSliceList
	if err := c.List(ctx, &list, client.InNamespace(gwd.Namespace), client.MatchingLabels{drainv1.GatewayDrainLabel: gwd.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	owned := Slices{}
	for i := range list.Items {
		s := &list.Items[i]
		if metav1.IsControlledBy(s, gwd) {
			owned[s.Index] = s
		}
	}
	return owned, nil
}

// ListTargets returns a drain's targets, in the order they joined.
func ListTargets(ctx context.Context, c client.Reader, gwd *drainv1.GatewayDrain) ([]drainv1.Target, error) {
	owned, err := OwnedSlices(ctx, c, gwd)
	return owned.Targets(), err
}

// SlicesTargeting lists the TargetSlices that hold a pod of this name,
// through the index SetupIndexes registers. They are the cache's own
// objects, not copies: callers must not modify them.
func SlicesTargeting(ctx context.Context, c client.Reader, namespace, pod string) ([]drainv1.TargetSlice, error) {
	var list drainv1.TargetSliceList
	err := c.List(ctx, &list, client.InNamespace(namespace), client.MatchingFields{SlicePodIndex: pod}, client.UnsafeDisableDeepCopy)
	return list.Items, err
}

// DrainOf is the GatewayDrain a slice belongs to, from the cache, or nil
// when it is gone or is another drain of the same name.
func DrainOf(ctx context.Context, c client.Reader, s *drainv1.TargetSlice) (*drainv1.GatewayDrain, error) {
	owner := metav1.GetControllerOf(s)
	if owner == nil {
		return nil, nil
	}
	gwd := &drainv1.GatewayDrain{}
	err := c.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: owner.Name}, gwd, client.UnsafeDisableDeepCopy)
	if err != nil || gwd.UID != owner.UID {
		return nil, client.IgnoreNotFound(err)
	}
	return gwd, nil
}

// StandingTarget is the pod's entry in a GatewayDrain that still stands at
// now and still drains this instantiation of the pod, and that drain; nils
// when there is none.
func StandingTarget(ctx context.Context, c client.Reader, pod *corev1.Pod, now time.Time) (*drainv1.Target, *drainv1.GatewayDrain, error) {
	held, err := SlicesTargeting(ctx, c, pod.Namespace, pod.Name)
	if err != nil {
		return nil, nil, err
	}
	for i := range held {
		for _, t := range held[i].Targets {
			if !Holds(t, pod) {
				continue
			}
			gwd, err := DrainOf(ctx, c, &held[i])
			if err != nil {
				return nil, nil, err
			}
			if gwd != nil && Stands(gwd, now) {
				return &t, gwd, nil
			}
		}
	}
	return nil, nil, nil
}
