package gatewaydrain

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
)

// A drain's targets live in its TargetSlices, not in its status: a status
// listing 10,000 targets would pass the size etcd takes in one object. The
// reconciler reads them all into a drain's targets, in the order they
// joined, and writes back only the slices whose part changed.

// slicePodIndex indexes TargetSlices by the names of their target pods, so
// a pod event or a gate read finds the drains that target it.
const slicePodIndex = "targets.podName"

// loadedSlices are a drain's TargetSlices as read, by index.
type loadedSlices map[int32]*drainv1.TargetSlice

// targets concatenates the slices' targets in index order.
func (l loadedSlices) targets() []drainv1.Target {
	var targets []drainv1.Target
	for _, i := range slices.Sorted(maps.Keys(l)) {
		targets = append(targets, l[i].Targets...)
	}
	return targets
}

// ownedSlices lists the TargetSlices of gwd (labelled with its name and
// owned by its UID: a drain deleted and created again under the same name
// does not inherit the slices the first one left to the garbage collector).
//
// From the cache, the slices share their contents with the cache's own
// objects, not copied (10,000 targets would be copied on every reconcile):
// they are read only, and saveTargets writes new objects.
func ownedSlices(ctx context.Context, c client.Reader, gwd *drainv1.GatewayDrain) (loadedSlices, error) {
	var list drainv1.TargetSliceList
	if err := c.List(ctx, &list, client.InNamespace(gwd.Namespace), client.MatchingLabels{drainv1.GatewayDrainLabel: gwd.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	owned := loadedSlices{}
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
	owned, err := ownedSlices(ctx, c, gwd)
	return owned.targets(), err
}

// loadTargets reads the drain's slices from the cache. It reports not ready
// while the cache has not seen this reconciler's last writes to them (the
// drain's status write, which wakes the next reconcile, comes through
// another informer): acting on a stale slice would redo its targets' calls
// and lose its write to a conflict, and reading every slice from the API
// server instead (at 10,000 targets, 13 MB to decode on every reconcile)
// is what the manager spent most of its memory on. The slices' own events
// wake the drain once the cache has them. The API server is read when the
// cache holds fewer slices than the status counts, or stays behind for
// longer than cacheLagLimit (someone else wrote a slice since, or a watch
// is slow).
func (r *Reconciler) loadTargets(ctx context.Context, gwd *drainv1.GatewayDrain) (_ loadedSlices, ready bool, _ error) {
	owned, err := ownedSlices(ctx, r.Client, gwd)
	if err != nil {
		return nil, false, err
	}
	switch r.written.check(gwd.UID, owned, time.Now()) {
	case cacheCatchingUp:
		return nil, false, nil
	case cacheFresh:
		if len(owned) >= int(gwd.Status.TargetSlices) {
			return owned, true, nil
		}
	}
	owned, err = ownedSlices(ctx, r.APIReader, gwd)
	if err != nil {
		return nil, false, err
	}
	if len(owned) < int(gwd.Status.TargetSlices) && gwd.DeletionTimestamp.IsZero() {
		r.event(gwd, corev1.EventTypeWarning, "TargetSlicesMissing", "%d of the drain's %d TargetSlices were deleted by someone else: the targets they held are no longer followed",
			int(gwd.Status.TargetSlices)-len(owned), gwd.Status.TargetSlices)
	}
	r.written.expect(gwd.UID, owned, time.Now()) // the cache is to catch up with these
	return owned, true, nil
}

// saveTargets writes the drain's targets into its slices, slice i holding
// targets [i*MaxTargetsPerSlice, (i+1)*MaxTargetsPerSlice): a slice whose
// part did not change is not written. Each write is locked by the
// resourceVersion read, so a reconcile on a stale cache fails with a
// conflict instead of writing over newer targets. It records the number of
// slices in the status, which the caller writes next.
func (r *Reconciler) saveTargets(ctx context.Context, gwd *drainv1.GatewayDrain, loaded loadedSlices, targets []drainv1.Target) error {
	n := (len(targets) + drainv1.MaxTargetsPerSlice - 1) / drainv1.MaxTargetsPerSlice
	var errs []error
	for i := range int32(n) {
		part := targets[int(i)*drainv1.MaxTargetsPerSlice : min(int(i+1)*drainv1.MaxTargetsPerSlice, len(targets))]
		read, found := loaded[i]
		// Targets left alone still share their times with the slice read,
		// so reflect's comparison, which stops at equal pointers, is quick.
		if found && reflect.DeepEqual(read.Targets, part) {
			continue
		}
		s := &drainv1.TargetSlice{ObjectMeta: metav1.ObjectMeta{
			Namespace: gwd.Namespace,
			Name:      sliceName(gwd, i),
			Labels:    map[string]string{drainv1.GatewayDrainLabel: gwd.Name},
		}, Index: i}
		if found {
			// A new object: the one read may be the cache's own.
			s.ObjectMeta = *read.ObjectMeta.DeepCopy()
		} else if err := controllerutil.SetControllerReference(gwd, s, r.Scheme()); err != nil {
			return err
		}
		s.Targets, s.Count = part, int32(len(part))
		var err error
		if found {
			err = r.Update(ctx, s)
		} else {
			err = r.Create(ctx, s)
		}
		if err == nil {
			r.written.record(gwd.UID, i, s.ResourceVersion, time.Now())
		}
		errs = append(errs, err)
	}
	for i, s := range loaded {
		if int(i) >= n {
			errs = append(errs, client.IgnoreNotFound(r.Delete(ctx, s, client.Preconditions{UID: &s.UID})))
		}
	}
	gwd.Status.TargetSlices = int32(n)
	return errors.Join(errs...)
}

// sliceName is the drain's name (at most 63 characters, admission checks),
// the start of its UID (a drain created again under the same name must not
// meet the last one's slices that the garbage collector has not removed
// yet) and the index.
func sliceName(gwd *drainv1.GatewayDrain, i int32) string {
	return fmt.Sprintf("%s-%.8s-%d", gwd.Name, gwd.UID, i)
}

// sliceVersions remembers the resourceVersion of each TargetSlice this
// reconciler last wrote or read from the API server, by drain and index:
// the expectations that tell a cache that has not caught up with them. A
// new leader starts with none, and reads what the cache holds.
type sliceVersions struct {
	mu      sync.Mutex
	byDrain map[types.UID]*expected
}

type expected struct {
	versions map[int32]string
	since    time.Time // when the oldest version not seen yet was expected
}

// cacheLagLimit is how long a reconcile waits for the cache to catch up
// with the slices expected before it reads them from the API server.
const cacheLagLimit = 5 * time.Second

type cacheState int

const (
	cacheFresh cacheState = iota
	cacheCatchingUp
	cacheBehind
)

func (v *sliceVersions) record(drain types.UID, index int32, version string, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.byDrain == nil {
		v.byDrain = map[types.UID]*expected{}
	}
	e := v.byDrain[drain]
	if e == nil {
		e = &expected{versions: map[int32]string{}}
		v.byDrain[drain] = e
	}
	if e.since.IsZero() { // nothing was waited for: the clock starts now
		e.since = now
	}
	e.versions[index] = version
}

// expect replaces what is expected of the drain's slices with read.
func (v *sliceVersions) expect(drain types.UID, read loadedSlices, now time.Time) {
	v.forget(drain)
	for i, s := range read {
		v.record(drain, i, s.ResourceVersion, now)
	}
}

func (v *sliceVersions) forget(drain types.UID) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.byDrain, drain)
}

// check says whether the slices read hold every version expected, and if
// not, whether the cache has had cacheLagLimit to catch up.
func (v *sliceVersions) check(drain types.UID, read loadedSlices, now time.Time) cacheState {
	v.mu.Lock()
	defer v.mu.Unlock()
	e := v.byDrain[drain]
	if e == nil {
		return cacheFresh
	}
	for i, version := range e.versions {
		if s, ok := read[i]; !ok || s.ResourceVersion != version {
			if now.Sub(e.since) < cacheLagLimit {
				return cacheCatchingUp
			}
			return cacheBehind
		}
	}
	e.since = time.Time{} // all seen: the next write starts the clock again
	return cacheFresh
}

// targetSlicesOf lists the TargetSlices that hold a pod of this name,
// through the index SetupIndexes registers. They are the cache's own
// objects, not copies: callers must not modify them.
func targetSlicesOf(ctx context.Context, c client.Reader, namespace, pod string) ([]drainv1.TargetSlice, error) {
	var list drainv1.TargetSliceList
	err := c.List(ctx, &list, client.InNamespace(namespace), client.MatchingFields{slicePodIndex: pod}, client.UnsafeDisableDeepCopy)
	return list.Items, err
}

// drainOf is the GatewayDrain a slice belongs to, from the cache, or nil
// when it is gone or is another drain of the same name.
func drainOf(ctx context.Context, c client.Reader, s *drainv1.TargetSlice) (*drainv1.GatewayDrain, error) {
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

// Holds reports whether a target still holds this instantiation of pod:
// it is the pod's, and neither released, nor over, nor let go by a person
// who removed its marker.
func Holds(t drainv1.Target, pod *corev1.Pod) bool {
	return t.PodName == pod.Name && t.PodUID == pod.UID &&
		t.State != drainv1.TargetRestarted && t.State != drainv1.TargetReleased && t.State != drainv1.TargetMarkerRemoved
}

// StandingTarget is the pod's entry in a GatewayDrain that still stands at
// now and still drains this instantiation of the pod, and that drain; nils
// when there is none.
func StandingTarget(ctx context.Context, c client.Reader, pod *corev1.Pod, now time.Time) (*drainv1.Target, *drainv1.GatewayDrain, error) {
	held, err := targetSlicesOf(ctx, c, pod.Namespace, pod.Name)
	if err != nil {
		return nil, nil, err
	}
	for i := range held {
		for _, t := range held[i].Targets {
			if !Holds(t, pod) {
				continue
			}
			gwd, err := drainOf(ctx, c, &held[i])
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
