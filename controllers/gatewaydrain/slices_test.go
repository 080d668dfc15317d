package gatewaydrain

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// bigTarget is a target with every field as large as it gets in practice:
// 63-character pod names, every time set, a message at its bound.
func bigTarget(i int) drainv1.Target {
	now := metav1.NewTime(time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC))
	agents := int32(3)
	return drainv1.Target{
		PodName:             fmt.Sprintf("%s-%05d", strings.Repeat("g", 57), i),
		PodUID:              types.UID(fmt.Sprintf("0c0e2a6e-3b1c-4b8e-9e6e-%012d", i)),
		Container:           "gateway",
		ContainerID:         "containerd://" + strings.Repeat("f", 64),
		StartedAt:           &now,
		RestartCount:        2,
		HermesHome:          "/opt/data/" + strings.Repeat("h", 40),
		Epoch:               "6f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b:1234567890",
		State:               drainv1.TargetDraining,
		GatewayState:        "draining",
		ActiveAgents:        &agents,
		AddedAt:             &now,
		StateUpdatedAt:      "2026-11-24T08:00:00.123456+00:00",
		DrainSeenAt:         &now,
		DrainSeenBy:         "4194304/18446744073709551615",
		Gateways:            33,
		BlockingGateway:     strings.Repeat("b", 64),
		MarkedProfiles:      strings.Repeat("p", 448),
		LeavingTrafficSince: &now,
		OutOfTrafficAt:      &now,
		MarkerWrittenAt:     &now,
		MarkerRemovedAt:     &now,
		LastAttemptTime:     &now,
		Failures:            1,
		Message:             marker.Elide(strings.Repeat("m", 2*drainv1.MaxTargetMessage), drainv1.MaxTargetMessage),
	}
}

// bigReplacedTarget is the largest target a drain-and-replace holds once
// it evicted the pod: what only a drain reads is dropped at the eviction.
func bigReplacedTarget(i int) drainv1.Target {
	t := bigTarget(i)
	now := *t.StartedAt
	t.State, t.EvictedAt, t.ServeBy, t.ReplacedAt = drainv1.TargetReplaced, &now, &now, &now
	t.Owner, t.Replacement = "StatefulSet/"+strings.Repeat("g", 57), fmt.Sprintf("%s-%05d", strings.Repeat("r", 57), i)
	t.MarkedProfiles, t.BlockingGateway, t.DrainSeenAt, t.DrainSeenBy = "", "", nil, ""
	return t
}

func sliceTestReconciler(t *testing.T) (*Reconciler, client.Client) {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := drainv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).Build()
	return &Reconciler{Client: c, APIReader: c}, c
}

func sizeOf(t *testing.T, o any) int {
	t.Helper()
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

// The status of a drain of 10,000 targets stays small, and each of its
// TargetSlices far below the 1.5 MiB etcd takes in one object; the targets
// read back are the ones written.
func TestTenThousandTargetsFitInBoundedObjects(t *testing.T) {
	for name, big := range map[string]func(int) drainv1.Target{"draining": bigTarget, "replaced": bigReplacedTarget} {
		t.Run(name, func(t *testing.T) { tenThousandFit(t, big) })
	}
}

func tenThousandFit(t *testing.T, big func(int) drainv1.Target) {
	ctx := context.Background()
	r, c := sliceTestReconciler(t)
	gwd := &drainv1.GatewayDrain{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: strings.Repeat("d", 63), UID: "4b0c1d2e-3f40-4152-8364-758697a8b9ca", Generation: 1}}
	started := metav1.NewTime(time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC))
	gwd.Status.StartedAt = &started
	var targets []drainv1.Target
	for i := range 10000 {
		targets = append(targets, big(i))
	}
	if err := r.saveTargets(ctx, gwd, nil, targets); err != nil {
		t.Fatal(err)
	}
	drain.ComputeStatus(gwd, targets, "", started.Time, nil)

	var list drainv1.TargetSliceList
	if err := c.List(ctx, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 20 || gwd.Status.TargetSlices != 20 {
		t.Fatalf("%d slices, status says %d: want 20 of 500", len(list.Items), gwd.Status.TargetSlices)
	}
	largest := 0
	for i := range list.Items {
		largest = max(largest, sizeOf(t, &list.Items[i]))
	}
	status := sizeOf(t, gwd)
	t.Logf("10,000 targets: the GatewayDrain is %d bytes, its largest TargetSlice %d bytes (of 20)", status, largest)
	if status > 16<<10 || largest > 1<<20 {
		t.Errorf("GatewayDrain %d bytes (want <= 16 KiB), largest slice %d bytes (want <= 1 MiB)", status, largest)
	}

	loaded, _, err := r.loadTargets(ctx, gwd)
	if err != nil {
		t.Fatal(err)
	}
	if got := loaded.Targets(); !apiequality.Semantic.DeepEqual(got, targets) {
		t.Fatalf("read back %d targets, not the %d written in their order", len(got), len(targets))
	}
}

// A change rewrites only the slice that holds it; fewer targets delete the
// slices left empty; a drain created again under the same name does not
// see the slices of the last one; a slice the cache has not seen yet is
// read from the API server.
func TestSlicesAreWrittenWhereTheyChanged(t *testing.T) {
	ctx := context.Background()
	r, c := sliceTestReconciler(t)
	gwd := &drainv1.GatewayDrain{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "d", UID: "uid-1"}}
	var targets []drainv1.Target
	for i := range 1200 {
		targets = append(targets, bigTarget(i))
	}
	if err := r.saveTargets(ctx, gwd, nil, targets); err != nil {
		t.Fatal(err)
	}
	versions := func() map[int32]string {
		var list drainv1.TargetSliceList
		if err := c.List(ctx, &list); err != nil {
			t.Fatal(err)
		}
		v := map[int32]string{}
		for _, s := range list.Items {
			v[s.Index] = s.ResourceVersion
		}
		return v
	}
	before := versions()
	var old drainv1.TargetSliceList
	if err := c.List(ctx, &old); err != nil {
		t.Fatal(err)
	}

	loaded, _, err := r.loadTargets(ctx, gwd)
	if err != nil {
		t.Fatal(err)
	}
	changed := loaded.Targets()
	changed[700].State = drainv1.TargetDrained // slice 1 holds 500..999
	if err := r.saveTargets(ctx, gwd, loaded, changed); err != nil {
		t.Fatal(err)
	}
	after := versions()
	if after[0] != before[0] || after[2] != before[2] || after[1] == before[1] {
		t.Errorf("resourceVersions %v -> %v: only slice 1 should be written", before, after)
	}

	// A cache that still holds the slices as they were before that write:
	// the reconciler remembers what it wrote and waits for the cache; once
	// the cache has had cacheLagLimit to catch up, it reads the API server.
	var objs []client.Object
	for i := range old.Items {
		objs = append(objs, &old.Items[i])
	}
	stale := fake.NewClientBuilder().WithScheme(c.Scheme()).WithObjects(objs...).Build()
	behind := &Reconciler{Client: stale, APIReader: c}
	behind.written.record(gwd.UID, 1, after[1], time.Now())
	if _, ready, err := behind.loadTargets(ctx, gwd); err != nil || ready {
		t.Errorf("a cache behind the reconciler's own write a moment ago was believed (ready %v, %v)", ready, err)
	}
	behind.written.forget(gwd.UID)
	behind.written.record(gwd.UID, 1, after[1], time.Now().Add(-cacheLagLimit))
	if loaded, ready, err := behind.loadTargets(ctx, gwd); err != nil || !ready || loaded.Targets()[700].State != drainv1.TargetDrained {
		t.Errorf("a cache behind for %s: the API server was not read (ready %v, %v)", cacheLagLimit, ready, err)
	}

	loaded, _, _ = r.loadTargets(ctx, gwd)
	if err := r.saveTargets(ctx, gwd, loaded, changed[:600]); err != nil {
		t.Fatal(err)
	}
	if v := versions(); len(v) != 2 || gwd.Status.TargetSlices != 2 {
		t.Errorf("600 targets in slices %v (status %d), want 2", v, gwd.Status.TargetSlices)
	}

	again := gwd.DeepCopy()
	again.UID = "uid-2"
	if got, err := drain.ListTargets(ctx, c, again); err != nil || len(got) != 0 {
		t.Errorf("a new drain of the same name sees %d targets of the old one (%v)", len(got), err)
	}

	empty := fake.NewClientBuilder().WithScheme(c.Scheme()).Build()
	lagging := &Reconciler{Client: empty, APIReader: c}
	if loaded, _, err := lagging.loadTargets(ctx, gwd); err != nil || len(loaded.Targets()) != 600 {
		t.Errorf("a cache without the slices the status counts: %d targets read (%v), want 600 from the API server", len(loaded.Targets()), err)
	}
}
