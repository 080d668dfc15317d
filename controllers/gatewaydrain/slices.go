package gatewaydrain

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
)

// A drain's targets live in its TargetSlices, not in its status: a status
// listing 10,000 targets would pass the size etcd takes in one object. The
// reconciler reads them all into a drain's targets, in the order they
// joined, and writes back only the slices whose part changed.

// loadTargets reads the drain's slices from the cache. It reports not ready
// while the cache has not seen this reconciler's last writes to them (the
// drain's status write, which wakes the next reconcile, comes through
// another informer): acting on a stale slice would redo its targets' calls
// and lose its write to a conflict, and reading every slice from the API
// server instead would decode every target on every reconcile, the
// manager's largest cost at scale (docs/benchmarks.md, "Numbers behind the
// design"). The slices' own events
// wake the drain once the cache has them. The API server is read when the
// cache holds fewer slices than the status counts, or stays behind for
// longer than cacheLagLimit (someone else wrote a slice since, or a watch
// is slow).
func (r *Reconciler) loadTargets(ctx context.Context, gwd *drainv1.GatewayDrain) (_ drain.Slices, ready bool, _ error) {
	owned, err := drain.OwnedSlices(ctx, r.Client, gwd)
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
	owned, err = drain.OwnedSlices(ctx, r.APIReader, gwd)
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
func (r *Reconciler) saveTargets(ctx context.Context, gwd *drainv1.GatewayDrain, loaded drain.Slices, targets []drainv1.Target) error {
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

func (v *sliceVersions) record(uid types.UID, index int32, version string, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.byDrain == nil {
		v.byDrain = map[types.UID]*expected{}
	}
	e := v.byDrain[uid]
	if e == nil {
		e = &expected{versions: map[int32]string{}}
		v.byDrain[uid] = e
	}
	if e.since.IsZero() { // nothing was waited for: the clock starts now
		e.since = now
	}
	e.versions[index] = version
}

// expect replaces what is expected of the drain's slices with read.
func (v *sliceVersions) expect(uid types.UID, read drain.Slices, now time.Time) {
	v.forget(uid)
	for i, s := range read {
		v.record(uid, i, s.ResourceVersion, now)
	}
}

func (v *sliceVersions) forget(uid types.UID) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.byDrain, uid)
}

// check says whether the slices read hold every version expected, and if
// not, whether the cache has had cacheLagLimit to catch up.
func (v *sliceVersions) check(uid types.UID, read drain.Slices, now time.Time) cacheState {
	v.mu.Lock()
	defer v.mu.Unlock()
	e := v.byDrain[uid]
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
