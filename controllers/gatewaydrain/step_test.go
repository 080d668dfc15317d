package gatewaydrain

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	testclock "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// When each target may be talked to again: the poll schedule while the
// drain stands, at once when it is withdrawn (a cancel must not wait out a
// drained target's idle poll), and the backoff after failures either way.
func TestNextAttempt(t *testing.T) {
	r := &Reconciler{Options: DefaultOptions()}
	last := metav1.NewTime(time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC))
	standing, withdrawn := &view{}, &view{withdrawn: "cancelled", release: "cancelled"}
	halted := &view{replaces: true, release: "halted"}
	for _, tc := range []struct {
		name  string
		d     *view
		t     drainv1.Target
		after time.Duration // from last; -1: at once
	}{
		{"never tried", standing, drainv1.Target{State: drainv1.TargetPending}, -1},
		{"draining", standing, drainv1.Target{State: drainv1.TargetDraining, LastAttemptTime: &last}, r.PollInterval},
		{"conflict", standing, drainv1.Target{State: drainv1.TargetConflict, Failures: 1, LastAttemptTime: &last}, r.PollInterval},
		{"third look at a conflict", standing, drainv1.Target{State: drainv1.TargetConflict, Failures: 3, LastAttemptTime: &last}, 4 * r.PollInterval},
		{"a long conflict", standing, drainv1.Target{State: drainv1.TargetConflict, Failures: 40, LastAttemptTime: &last}, conflictPollMax},
		{"conflict, then cancelled", withdrawn, drainv1.Target{State: drainv1.TargetConflict, Failures: 40, LastAttemptTime: &last}, -1},
		{"drained", standing, drainv1.Target{State: drainv1.TargetDrained, LastAttemptTime: &last}, r.IdlePollInterval},
		{"third failure", standing, drainv1.Target{State: drainv1.TargetFailed, Failures: 3, LastAttemptTime: &last}, 4 * r.RetryBase},
		{"many failures", standing, drainv1.Target{State: drainv1.TargetFailed, Failures: 40, LastAttemptTime: &last}, r.RetryMax},
		{"drained, then cancelled", withdrawn, drainv1.Target{State: drainv1.TargetDrained, LastAttemptTime: &last}, -1},
		{"draining, then cancelled", withdrawn, drainv1.Target{State: drainv1.TargetDraining, LastAttemptTime: &last}, -1},
		{"waiting its turn", standing, drainv1.Target{State: drainv1.TargetWaiting, LastAttemptTime: &last}, r.IdlePollInterval},
		{"evicted, its replacement awaited", standing, drainv1.Target{State: drainv1.TargetReplacing, LastAttemptTime: &last}, r.PollInterval},
		{"drained, then the wave halted", halted, drainv1.Target{State: drainv1.TargetDrained, LastAttemptTime: &last}, -1},
		{"conflict, then the wave halted", halted, drainv1.Target{State: drainv1.TargetConflict, Failures: 4, LastAttemptTime: &last}, -1},
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
	d := newView(gwd, nil, now, time.Minute)
	rendered, err := marker.Render(d.request(target, nil).Marker)
	if err != nil {
		t.Fatal(err)
	}
	ours := calls.File{State: calls.FilePresent, Data: []byte(rendered.Text(now, "boot:1"))}
	theirs := calls.File{State: calls.FilePresent, Data: []byte(`{"action":"drain","principal":"dashboard","epoch":"boot:1"}`)}
	for _, tc := range []struct {
		name string
		obs  calls.Observation
		want drainv1.TargetState
	}{
		// Drained on a second read (TestDrainedTakesTwoReadsOfTheSameProcess).
		{"written, ours read back", calls.Observation{Epoch: "boot:1", GatewayHome: calls.GatewayHome{Outcome: calls.Written, Marker: ours, GatewayState: drained}}, drainv1.TargetDraining},
		{"written, theirs read back", calls.Observation{Epoch: "boot:1", GatewayHome: calls.GatewayHome{Outcome: calls.Written, Marker: theirs, GatewayState: drained}}, drainv1.TargetConflict},
		{"written, none read back", calls.Observation{Epoch: "boot:1", GatewayHome: calls.GatewayHome{Outcome: calls.Written, Marker: calls.File{State: calls.FileAbsent}, GatewayState: drained}}, drainv1.TargetConflict},
	} {
		r := &Reconciler{Client: fake.NewClientBuilder().Build(), Options: DefaultOptions(), Transport: reportingTransport{tc.obs}, Clock: testclock.NewFakePassiveClock(now)}
		got, _ := r.stepDrain(context.Background(), newView(gwd, nil, now, time.Minute), target, &corev1.Pod{}, now)
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
	if _, ok := r.due(newView(gwd, nil, now, time.Minute), target, now); !ok {
		t.Error("an open batch did not take a target never tried")
	}
	next, ok := r.due(newView(gwd, nil, now, -time.Second), target, now)
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
	return calls.Observation{GatewayHome: calls.GatewayHome{Outcome: calls.LeavingTraffic}}, nil
}

// A pod without the gate, behind a Service, is asked to leave traffic
// through its agent before its first marker: the target waits,
// LeavingTraffic, and asks again a poll interval later, not at every
// reconcile. A MarkerFirst drain does not ask, nor does a refresh of a
// marker in place, nor a drain of a pod that no EndpointSlice lists.
func TestAnUngatedTargetLeavesTrafficThroughItsAgent(t *testing.T) {
	now := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	gwd := &drainv1.GatewayDrain{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "d", UID: "uid-1"}}
	target := drainv1.Target{PodName: "gw-0", PodUID: "pod-uid", Container: "gateway", HermesHome: "/opt/data", State: drainv1.TargetPending}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "gw-0"}}
	listing := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "svc-abcde"}, AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}, TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "gw-0"}}}}
	clientWith := func(objs ...client.Object) client.Client {
		return fake.NewClientBuilder().WithObjects(objs...).WithIndex(&discoveryv1.EndpointSlice{}, drain.EndpointPodIndex, drain.EndpointPods).Build()
	}
	tr := &leavingTransport{}
	r := &Reconciler{Client: clientWith(listing), Options: DefaultOptions(), Transport: tr, Clock: testclock.NewFakePassiveClock(now)}
	d := newView(gwd, nil, now, time.Minute)
	got, next := r.stepDrain(context.Background(), d, target, pod, now)
	if !tr.asked || got.State != drainv1.TargetLeavingTraffic || !next.Equal(now.Add(r.PollInterval)) || !r.nextAttempt(d, got).Equal(now.Add(r.PollInterval)) {
		t.Errorf("asked %v: %s (%s), next %s, next attempt %s; want LeavingTraffic, asked again after %s", tr.asked, got.State, got.Message, next, r.nextAttempt(d, got), r.PollInterval)
	}

	markerFirst := gwd.DeepCopy()
	markerFirst.Spec.TrafficOrder = drainv1.TrafficMarkerFirst
	r.stepDrain(context.Background(), newView(markerFirst, nil, now, time.Minute), target, pod, now)
	if tr.asked {
		t.Error("a MarkerFirst drain asked to leave traffic first")
	}
	written := metav1.NewTime(now.Add(-time.Hour))
	inPlace := target
	inPlace.State, inPlace.MarkerWrittenAt = drainv1.TargetDraining, &written
	r.stepDrain(context.Background(), d, inPlace, pod, now)
	if tr.asked {
		t.Error("the refresh of a marker in place asked to leave traffic first")
	}
	r.Client = clientWith() // behind no Service (issue 24, item 9)
	r.stepDrain(context.Background(), d, target, pod, now)
	if tr.asked {
		t.Error("a pod that no EndpointSlice lists asked to leave traffic first")
	}
}

// A gateway is a pod that may be hostile: every byte it reports is. What it
// reports is stored only in bounded, known forms (issue 23, item 8): two
// such targets must not push a TargetSlice past the 1.5 MiB etcd takes, or
// the drain could no longer record progress. Its messages carry no control
// characters (they are printed on terminals and in events).
func TestHostileGatewayStringsAreStoredBounded(t *testing.T) {
	now := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	const mib = 1 << 20
	escapes := strings.Repeat("\x1b]52;c;aGk=\x07\x1b[2J\u202e", mib/16)
	epoch := strings.Repeat("\x1b[2J", mib/4) + ":1"
	stateFile := func(fields map[string]any) calls.File {
		data, err := json.Marshal(fields)
		if err != nil {
			t.Fatal(err)
		}
		return calls.File{State: calls.FilePresent, Data: data}
	}
	gwd := &drainv1.GatewayDrain{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "d", UID: "uid-1"}}
	target := drainv1.Target{PodName: "gw-0", PodUID: "pod-uid", Container: "gateway", HermesHome: "/opt/data", State: drainv1.TargetPending}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "gw-0", UID: "pod-uid"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
			{Name: "gateway", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
		}},
	}
	rendered, err := marker.Render(newView(gwd, nil, now, time.Minute).request(target, nil).Marker)
	if err != nil {
		t.Fatal(err)
	}
	quoted, err := json.Marshal(epoch) // the marker is ours, with the epoch the gateway reports
	if err != nil {
		t.Fatal(err)
	}
	ours := calls.File{State: calls.FilePresent, Data: []byte(rendered.Text(now, string(quoted[1:len(quoted)-1])))}
	for _, tc := range []struct {
		name string
		obs  calls.Observation
	}{
		{"an unknown state, a long time and epoch", calls.Observation{Epoch: epoch, GatewayHome: calls.GatewayHome{Outcome: calls.Written, Marker: ours, GatewayState: stateFile(map[string]any{
			"gateway_state": escapes, "active_agents": 1, "updated_at": "2026-11-23T08:00:00." + strings.Repeat("1", mib) + "+00:00",
		})}}},
		{"a time that is not one", calls.Observation{Epoch: epoch, GatewayHome: calls.GatewayHome{Outcome: calls.Written, Marker: ours, GatewayState: stateFile(map[string]any{
			"gateway_state": "draining", "active_agents": 1, "updated_at": escapes,
		})}}},
		{"a dead writer's state and start time", calls.Observation{Epoch: epoch, GatewayHome: calls.GatewayHome{Outcome: calls.Written, Marker: ours, GatewayState: stateFile(map[string]any{"gateway_state": escapes, "pid": 7, "start_time": escapes}), GatewayProcess: calls.Process{PID: 7, Stat: "7 (gateway) S" + strings.Repeat(" 1", 19) + " \x1b]52;c;aGk=\x07" + escapes}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scheme := runtime.NewScheme()
			if err := corev1.AddToScheme(scheme); err != nil {
				t.Fatal(err)
			}
			r := &Reconciler{Client: fake.NewClientBuilder().WithScheme(scheme).WithObjects(pod).Build(), Options: DefaultOptions(),
				Transport: reportingTransport{tc.obs}, Clock: testclock.NewFakePassiveClock(now)}
			d := newView(gwd, []drainv1.Target{target}, now, time.Minute)
			if _, err := r.stepTargets(context.Background(), d); err != nil {
				t.Fatal(err)
			}
			got := d.targets[0]
			if got.Epoch != "" {
				t.Errorf("epoch stored as %d bytes %q, want none: it does not look like one", len(got.Epoch), marker.Shorten(got.Epoch, 40))
			}
			if len(got.GatewayState) > 32 || len(got.StateUpdatedAt) > 64 {
				t.Errorf("gateway state %d bytes, updated_at %d bytes: want them bounded", len(got.GatewayState), len(got.StateUpdatedAt))
			}
			if len(got.Message) > drainv1.MaxTargetMessage+8 || !utf8.ValidString(got.Message) || strings.ContainsFunc(got.Message, unsafeRune) {
				t.Errorf("message of %d bytes with control characters: %q", len(got.Message), marker.Shorten(got.Message, 200))
			}
			if size, most := sizeOf(t, got), sizeOf(t, bigTarget(0)); size > most {
				t.Errorf("the target takes %d bytes, more than the %d of the largest a well-behaved gateway gives", size, most)
			}
		})
	}
}

// unsafeRune reports the characters a terminal may act on.
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)
}

// A marker that is not UTF-8 changes no gateway's state: where the gateway
// serves with it in place, ours may take its place; where it drains, the
// marker is left alone, as upstream leaves the state.
func TestAMarkerThatIsNotUTF8IsReplacedOnlyWhereTheGatewayServes(t *testing.T) {
	found := marker.Parse([]byte("\xff\xfe"))
	state := func(s string) calls.Observation {
		return calls.Observation{Epoch: "boot:1", GatewayHome: calls.GatewayHome{GatewayState: calls.File{State: calls.FilePresent,
			Data: []byte(`{"gateway_state":"` + s + `","active_agents":0}`)}}}
	}
	if !gatewayIgnores(found, state(marker.StateRunning)) {
		t.Error("a running gateway: the marker is not replaced")
	}
	if gatewayIgnores(found, state(marker.StateDraining)) {
		t.Error("a draining gateway: the marker is replaced")
	}
}

// A gateway is Drained on a second read, at least ConfirmAfter after the
// first, of a record by the same process; a new process starts the count
// again, and work started again takes Drained back (issue 24, item 8).
func TestDrainedTakesTwoReadsOfTheSameProcess(t *testing.T) {
	r := &Reconciler{Options: DefaultOptions()}
	t0 := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	gwd := &drainv1.GatewayDrain{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "d", UID: "uid-1"}}
	target := drainv1.Target{PodName: "gw-0", PodUID: "pod-uid", Container: "gateway", HermesHome: "/opt/data", State: drainv1.TargetDraining}
	d := newView(gwd, nil, t0, time.Minute)
	rendered, err := marker.Render(d.request(target, nil).Marker)
	if err != nil {
		t.Fatal(err)
	}
	ours := calls.File{State: calls.FilePresent, Data: []byte(rendered.Text(t0, "boot:1"))} // stamped by the gateway at t0
	read := func(pid, agents int, updated time.Time) calls.Observation {
		state := fmt.Sprintf(`{"gateway_state":"draining","active_agents":%d,"pid":%d,"start_time":"100","updated_at":%q}`, agents, pid, updated.Format(marker.TimeLayout))
		return calls.Observation{Epoch: "boot:1", GatewayHome: calls.GatewayHome{Marker: ours, GatewayState: calls.File{State: calls.FilePresent, Data: []byte(state)}}}
	}
	step := func(obs calls.Observation, at time.Duration, want drainv1.TargetState) {
		t.Helper()
		target, _ = r.awaitDrained(d, target, obs, t0.Add(at))
		if target.State != want {
			t.Fatalf("at %s: %s (%s), want %s", at, target.State, target.Message, want)
		}
	}
	step(read(7, 0, t0.Add(time.Second)), time.Second, drainv1.TargetDraining)     // the first read
	step(read(7, 0, t0.Add(time.Second)), 2*time.Second, drainv1.TargetDraining)   // too soon
	step(read(7, 0, t0.Add(time.Second)), 3*time.Second, drainv1.TargetDrained)    // confirmed
	step(read(7, 1, t0.Add(4*time.Second)), 4*time.Second, drainv1.TargetDraining) // work again
	step(read(7, 0, t0.Add(5*time.Second)), 5*time.Second, drainv1.TargetDraining) // counted anew
	step(read(8, 0, t0.Add(7*time.Second)), 7*time.Second, drainv1.TargetDraining) // another process
	step(read(8, 0, t0.Add(7*time.Second)), 9*time.Second, drainv1.TargetDrained)  // confirmed for it
}
