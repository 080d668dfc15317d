package gatewaydrain

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	testclock "k8s.io/utils/clock/testing"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// When each target may be talked to again: the poll schedule while the
// drain stands, at once when it is withdrawn (a cancel must not wait out a
// drained target's idle poll), and the backoff after failures either way.
func TestNextAttempt(t *testing.T) {
	r := &Reconciler{Options: DefaultOptions()}
	last := metav1.NewTime(time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC))
	standing, withdrawn := &drain{}, &drain{withdrawn: "cancelled"}
	for _, tc := range []struct {
		name  string
		d     *drain
		t     drainv1.Target
		after time.Duration // from last; -1: at once
	}{
		{"never tried", standing, drainv1.Target{State: drainv1.TargetPending}, -1},
		{"draining", standing, drainv1.Target{State: drainv1.TargetDraining, LastAttemptTime: &last}, r.PollInterval},
		{"conflict", standing, drainv1.Target{State: drainv1.TargetConflict, LastAttemptTime: &last}, r.PollInterval},
		{"drained", standing, drainv1.Target{State: drainv1.TargetDrained, LastAttemptTime: &last}, r.IdlePollInterval},
		{"third failure", standing, drainv1.Target{State: drainv1.TargetFailed, Failures: 3, LastAttemptTime: &last}, 4 * r.RetryBase},
		{"many failures", standing, drainv1.Target{State: drainv1.TargetFailed, Failures: 40, LastAttemptTime: &last}, r.RetryMax},
		{"drained, then cancelled", withdrawn, drainv1.Target{State: drainv1.TargetDrained, LastAttemptTime: &last}, -1},
		{"draining, then cancelled", withdrawn, drainv1.Target{State: drainv1.TargetDraining, LastAttemptTime: &last}, -1},
		{"failing, then cancelled", withdrawn, drainv1.Target{State: drainv1.TargetFailed, Failures: 2, LastAttemptTime: &last}, 2 * r.RetryBase},
	} {
		want := time.Time{}
		if tc.after >= 0 {
			want = last.Add(tc.after)
		}
		if got := r.nextAttempt(tc.d, tc.t); !got.Equal(want) {
			t.Errorf("%s: next attempt %v, want %v", tc.name, got, want)
		}
	}
}

// reportingTransport answers every call with the same observation.
type reportingTransport struct{ obs calls.Observation }

func (f reportingTransport) Project(context.Context, calls.Pod, string, calls.ProjectRequest) (calls.Observation, error) {
	return f.obs, nil
}
func (f reportingTransport) Clear(context.Context, calls.Pod, string, string) (calls.Observation, error) {
	return f.obs, nil
}
func (f reportingTransport) Read(context.Context, calls.Pod, string) (calls.Observation, error) {
	return f.obs, nil
}

// A target counts as Draining or Drained only when the marker read back in
// the same call is this drain's own: a write that "succeeded" but left
// another writer's marker in place (it wrote between the program's read and
// its write) is a Conflict (item A3).
func TestOnlyOurMarkerReadBackCounts(t *testing.T) {
	now := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	gwd := &drainv1.GatewayDrain{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "d", UID: "uid-1"}}
	target := drainv1.Target{PodName: "gw-0", PodUID: "pod-uid", Container: "gateway", HermesHome: "/opt/data", State: drainv1.TargetPending}
	drained := calls.File{State: calls.FilePresent, Data: []byte(`{"gateway_state":"draining","active_agents":0}`)}
	d := newDrain(gwd, nil, now, time.Minute)
	prefix, suffix, err := marker.Render(d.request(target, now, nil).Marker)
	if err != nil {
		t.Fatal(err)
	}
	ours := calls.File{State: calls.FilePresent, Data: []byte(prefix + "boot:1" + suffix)}
	theirs := calls.File{State: calls.FilePresent, Data: []byte(`{"action":"drain","principal":"dashboard","epoch":"boot:1"}`)}
	for _, tc := range []struct {
		name string
		obs  calls.Observation
		want drainv1.TargetState
	}{
		{"written, ours read back", calls.Observation{Outcome: calls.Written, Epoch: "boot:1", Marker: ours, GatewayState: drained}, drainv1.TargetDrained},
		{"written, theirs read back", calls.Observation{Outcome: calls.Written, Epoch: "boot:1", Marker: theirs, GatewayState: drained}, drainv1.TargetConflict},
		{"written, none read back", calls.Observation{Outcome: calls.Written, Epoch: "boot:1", Marker: calls.File{State: calls.FileAbsent}, GatewayState: drained}, drainv1.TargetConflict},
	} {
		r := &Reconciler{Options: DefaultOptions(), Transport: reportingTransport{tc.obs}, Clock: testclock.NewFakePassiveClock(now)}
		got, _ := r.stepDrain(context.Background(), newDrain(gwd, nil, now, time.Minute), target, &corev1.Pod{}, now)
		if got.State != tc.want {
			t.Errorf("%s: %s (%s), want %s", tc.name, got.State, got.Message, tc.want)
		}
	}
}

// A reconcile starts calls only while its batch is open; a target left out
// when it closes is due again at once, for the next reconcile, which comes
// after this one has written its progress.
func TestAClosedBatchLeavesTheRestToTheNextReconcile(t *testing.T) {
	now := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	r := &Reconciler{Options: DefaultOptions()}
	gwd := &drainv1.GatewayDrain{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "d", UID: "uid-1"}}
	target := drainv1.Target{PodName: "gw-0", State: drainv1.TargetPending}
	if _, ok := r.due(newDrain(gwd, nil, now, time.Minute), target, now); !ok {
		t.Error("an open batch did not take a target never tried")
	}
	next, ok := r.due(newDrain(gwd, nil, now, -time.Second), target, now)
	if ok || !next.Equal(now) {
		t.Errorf("a closed batch: due %v, next %v; want not due, next at once (%v)", ok, next, now)
	}
}

// A deleted drain waits for its markers --release-timeout from its deletion
// or from the last marker it removed: a release that makes progress is never
// cut short (10,000 markers through exec take ten minutes to remove), one
// that makes none gives up.
func TestAReleaseThatMakesProgressIsNotCutShort(t *testing.T) {
	deleted := metav1.NewTime(time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC))
	gwd := &drainv1.GatewayDrain{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &deleted}}
	removed := metav1.NewTime(deleted.Add(7 * time.Minute))
	for _, tc := range []struct {
		name    string
		targets []drainv1.Target
		want    time.Time
	}{
		{"nothing removed", []drainv1.Target{{}, {}}, deleted.Add(5 * time.Minute)},
		{"a marker removed 7 minutes after the deletion", []drainv1.Target{{MarkerRemovedAt: &removed}, {}}, removed.Add(5 * time.Minute)},
	} {
		if got := releaseDeadline(gwd, tc.targets, 5*time.Minute); !got.Equal(tc.want) {
			t.Errorf("%s: gives up at %s, want %s", tc.name, got, tc.want)
		}
	}
}

// leavingTransport records whether a projection asked to leave traffic
// first, and answers as an agent that does.
type leavingTransport struct {
	reportingTransport
	asked bool
}

func (l *leavingTransport) Project(_ context.Context, _ calls.Pod, _ string, req calls.ProjectRequest) (calls.Observation, error) {
	l.asked = req.LeaveTraffic
	return calls.Observation{Outcome: calls.LeavingTraffic}, nil
}

// A pod without the gate is asked to leave traffic through its agent before
// its first marker: the target waits, LeavingTraffic, and asks again a poll
// interval later, not at every reconcile. A MarkerFirst drain does not ask,
// nor does a refresh of a marker in place.
func TestAnUngatedTargetLeavesTrafficThroughItsAgent(t *testing.T) {
	now := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	gwd := &drainv1.GatewayDrain{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "d", UID: "uid-1"}}
	target := drainv1.Target{PodName: "gw-0", PodUID: "pod-uid", Container: "gateway", HermesHome: "/opt/data", State: drainv1.TargetPending}
	tr := &leavingTransport{}
	r := &Reconciler{Options: DefaultOptions(), Transport: tr, Clock: testclock.NewFakePassiveClock(now)}
	d := newDrain(gwd, nil, now, time.Minute)
	got, next := r.stepDrain(context.Background(), d, target, &corev1.Pod{}, now)
	if !tr.asked || got.State != drainv1.TargetLeavingTraffic || !next.Equal(now.Add(r.PollInterval)) || !r.nextAttempt(d, got).Equal(now.Add(r.PollInterval)) {
		t.Errorf("asked %v: %s (%s), next %s, next attempt %s; want LeavingTraffic, asked again after %s", tr.asked, got.State, got.Message, next, r.nextAttempt(d, got), r.PollInterval)
	}

	markerFirst := gwd.DeepCopy()
	markerFirst.Spec.TrafficOrder = drainv1.TrafficMarkerFirst
	r.stepDrain(context.Background(), newDrain(markerFirst, nil, now, time.Minute), target, &corev1.Pod{}, now)
	if tr.asked {
		t.Error("a MarkerFirst drain asked to leave traffic first")
	}
	written := metav1.NewTime(now.Add(-time.Hour))
	inPlace := target
	inPlace.State, inPlace.MarkerWrittenAt = drainv1.TargetDraining, &written
	r.stepDrain(context.Background(), d, inPlace, &corev1.Pod{}, now)
	if tr.asked {
		t.Error("the refresh of a marker in place asked to leave traffic first")
	}
}
