//go:build !unit

package podreadiness_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	testclock "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/controllers/orphans"
	"github.com/hermes-agent/hermes-drain-operator/controllers/podreadiness"
	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod/gatewaypodtest"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
	"github.com/hermes-agent/hermes-drain-operator/internal/transport"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env)) }

// countingRunner runs the program locally and counts the calls.
type countingRunner struct{ calls atomic.Int32 }

func (c *countingRunner) Run(ctx context.Context, pod calls.Pod, argv []string, stdin []byte) ([]byte, error) {
	c.calls.Add(1)
	return transport.LocalRunner{}.Run(ctx, pod, argv, stdin)
}

func newReconciler() (*podreadiness.Reconciler, *countingRunner) {
	runner := &countingRunner{}
	return &podreadiness.Reconciler{
		Client:    env.Client, // direct, uncached: each Get sees the API server
		Transport: transport.NewProgram(runner, "/proc"),
		Options:   podreadiness.DefaultOptions(),
		Clock:     clock.RealClock{},
	}, runner
}

// gatedPod creates a running gateway pod whose home holds gateway_state.json.
func gatedPod(t *testing.T, ns, name string, gated bool) (*corev1.Pod, string) {
	t.Helper()
	home := t.TempDir()
	writeState(t, home, "running", 1)
	pod := gatewaypodtest.Pod(gatewaypodtest.Spec{Namespace: ns, Name: name, Home: home, Gated: gated})
	ctx := context.Background()
	if err := env.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	// A running reconciler may write its gate first: then on its write.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(pod), pod); err != nil {
			return err
		}
		pod.Status = corev1.PodStatus{
			Phase: corev1.PodRunning,
			Conditions: []corev1.PodCondition{
				{Type: "example.com/someone-else", Status: corev1.ConditionTrue, Reason: "Theirs", LastTransitionTime: metav1.NewTime(time.Now().Add(-time.Hour))},
			},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "gateway", Image: "hermes", ImageID: "hermes",
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}}},
		}
		return env.Client.Status().Update(ctx, pod)
	})
	if err != nil {
		t.Fatal(err)
	}
	return pod, home
}

func writeState(t *testing.T, home, state string, agents int) {
	t.Helper()
	writeStateAt(t, home, state, agents, time.Now())
}

func writeStateAt(t *testing.T, home, state string, agents int, updated time.Time) {
	t.Helper()
	data := fmt.Sprintf(`{"gateway_state":%q,"active_agents":%d,"updated_at":%q}`, state, agents, updated.UTC().Format(marker.TimeLayout))
	if err := os.WriteFile(filepath.Join(home, marker.StateFilename), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func reconcile(t *testing.T, r *podreadiness.Reconciler, pod *corev1.Pod) ctrl.Result {
	t.Helper()
	res, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(pod)})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func fetch(t *testing.T, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	got := &corev1.Pod{}
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(pod), got); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestWritesOnlyItsOwnConditionAndOnlyWhenItChanges(t *testing.T) {
	ns := env.Namespace(t)
	r, _ := newReconciler()
	pod, home := gatedPod(t, ns, "gw", true)

	reconcile(t, r, pod)
	got := fetch(t, pod)
	c := gatewaypod.GateCondition(got)
	if c == nil || c.Status != corev1.ConditionTrue || c.Reason != "Running" || c.Message != "Running: 1 active agents" {
		t.Fatalf("gate %+v", c)
	}
	theirs := 0
	for _, c := range got.Status.Conditions {
		if c.Type == "example.com/someone-else" && c.Reason == "Theirs" {
			theirs++
		}
	}
	if len(got.Status.Conditions) != 2 || theirs != 1 {
		t.Errorf("another writer's condition did not survive: %+v", got.Status.Conditions)
	}

	// Nothing changed: no write at all.
	rv := got.ResourceVersion
	reconcile(t, r, pod)
	if again := fetch(t, pod); again.ResourceVersion != rv {
		t.Errorf("unchanged gate was written again (rv %s -> %s)", rv, again.ResourceVersion)
	}

	// Same status, new message: lastTransitionTime stays.
	writeState(t, home, "running", 2)
	reconcile(t, r, pod)
	c2 := gatewaypod.GateCondition(fetch(t, pod))
	if c2.Message != "Running: 2 active agents" || !c2.LastTransitionTime.Equal(&c.LastTransitionTime) {
		t.Errorf("message update %+v should keep lastTransitionTime %v", c2, c.LastTransitionTime)
	}

	// A flip moves lastTransitionTime.
	r.Clock = testclock.NewFakePassiveClock(time.Now().Add(2 * time.Second)) // past lastTransitionTime's 1 s resolution
	writeState(t, home, "draining", 2)
	res := reconcile(t, r, pod)
	c3 := gatewaypod.GateCondition(fetch(t, pod))
	if c3.Status != corev1.ConditionFalse || c3.Reason != "Draining" || !c3.LastTransitionTime.After(c.LastTransitionTime.Time) {
		t.Errorf("flip %+v (was %v)", c3, c.LastTransitionTime)
	}
	if res.RequeueAfter != r.FastInterval {
		t.Errorf("a draining gateway is looked at again after %s, want %s", res.RequeueAfter, r.FastInterval)
	}
}

func TestUIDPreconditionRefusesARecreatedPod(t *testing.T) {
	ns := env.Namespace(t)
	r, _ := newReconciler()
	old, _ := gatedPod(t, ns, "gw", true)
	stale := fetch(t, old)
	if err := env.Client.Delete(context.Background(), old, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	fresh, _ := gatedPod(t, ns, "gw", true)

	// Patch the new pod as if it were the old one: the UID precondition refuses it.
	stale.Status.Conditions = append(stale.Status.Conditions, corev1.PodCondition{Type: drainv1.ReadinessGate, Status: corev1.ConditionTrue})
	patch := []byte(fmt.Sprintf(`{"metadata":{"uid":%q},"status":{"conditions":[{"type":%q,"status":"False","reason":"Draining"}]}}`, stale.UID, drainv1.ReadinessGate))
	err := env.Client.Status().Patch(context.Background(), fresh, client.RawPatch("application/strategic-merge-patch+json", patch))
	if err == nil {
		t.Fatal("a patch for the old pod's UID was applied to the recreated pod")
	}
	if gatewaypod.GateCondition(fetch(t, fresh)) != nil {
		t.Errorf("the recreated pod got a condition meant for the old one")
	}
	// The reconciler itself writes the new pod (with the new UID).
	reconcile(t, r, fresh)
	if c := gatewaypod.GateCondition(fetch(t, fresh)); c == nil || c.Status != corev1.ConditionTrue {
		t.Errorf("gate %+v", c)
	}
}

func TestUngatedPodsAreNeverRead(t *testing.T) {
	ns := env.Namespace(t)
	r, runner := newReconciler()
	pod, _ := gatedPod(t, ns, "plain", false)
	reconcile(t, r, pod)
	if n := runner.calls.Load(); n != 0 {
		t.Errorf("an ungated pod was read %d times", n)
	}
	if gatewaypod.GateCondition(fetch(t, pod)) != nil {
		t.Errorf("an ungated pod got the condition")
	}
	// A pod that is gone is ignored.
	if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Namespace: ns, Name: "gone"}}); err != nil {
		t.Errorf("gone pod: %v", err)
	}
}

func TestUnreadableStateIsUnknownWithBackoff(t *testing.T) {
	ns := env.Namespace(t)
	r, _ := newReconciler()
	pod, home := gatedPod(t, ns, "gw", true)
	if err := os.Remove(filepath.Join(home, marker.StateFilename)); err != nil {
		t.Fatal(err)
	}
	first := reconcile(t, r, pod)
	second := reconcile(t, r, pod)
	if c := gatewaypod.GateCondition(fetch(t, pod)); c == nil || c.Status != corev1.ConditionUnknown || c.Reason != calls.ReasonNoState {
		t.Errorf("gate %+v", c)
	}
	if second.RequeueAfter <= first.RequeueAfter {
		t.Errorf("no backoff: %s then %s", first.RequeueAfter, second.RequeueAfter)
	}
}

type failingRunner struct{}

func (failingRunner) Run(context.Context, calls.Pod, []string, []byte) ([]byte, error) {
	return nil, errors.New("injected: the API server is restarting")
}

// The operator's own trouble does not take gateways out of their Services:
// a gate keeps its last definite status through failed reads for
// KeepLastFor, then says Unknown; a read that says the gateway stopped
// serving turns it False at once (item C12).
func TestFailedReadsKeepTheLastDefiniteStatusForAWhile(t *testing.T) {
	ns := env.Namespace(t)
	r, _ := newReconciler()
	clk := testclock.NewFakePassiveClock(time.Now())
	r.Clock = clk
	start := clk.Now()
	pod, home := gatedPod(t, ns, "gw", true)
	reconcile(t, r, pod)
	serving := fetch(t, pod)
	if c := gatewaypod.GateCondition(serving); c == nil || c.Status != corev1.ConditionTrue {
		t.Fatalf("gate %+v", c)
	}

	reads := r.Transport
	r.Transport = transport.NewProgram(failingRunner{}, "/proc")
	for _, after := range []time.Duration{0, time.Minute, r.KeepLastFor - time.Second} {
		clk.SetTime(start.Add(after))
		res := reconcile(t, r, serving)
		if got := fetch(t, pod); got.ResourceVersion != serving.ResourceVersion {
			t.Fatalf("%s into failed reads the gate was written: %+v", after, gatewaypod.GateCondition(got))
		}
		if res.RequeueAfter <= 0 || res.RequeueAfter > r.KeepLastFor {
			t.Errorf("%s into failed reads: next read after %s", after, res.RequeueAfter)
		}
	}
	clk.SetTime(start.Add(r.KeepLastFor + time.Second))
	reconcile(t, r, serving)
	if c := gatewaypod.GateCondition(fetch(t, pod)); c == nil || c.Status != corev1.ConditionUnknown || c.Reason != podreadiness.ReasonReadFailed {
		t.Errorf("after %s of failed reads: gate %+v, want Unknown", r.KeepLastFor, c)
	}

	// Reads work again and say the gateway drains: False at once.
	r.Transport = reads
	writeState(t, home, "running", 0)
	reconcile(t, r, fetch(t, pod))
	writeState(t, home, "draining", 0)
	r.Transport = transport.NewProgram(failingRunner{}, "/proc")
	reconcile(t, r, fetch(t, pod)) // a failure between two reads starts a new streak
	r.Transport = reads
	reconcile(t, r, fetch(t, pod))
	if c := gatewaypod.GateCondition(fetch(t, pod)); c == nil || c.Status != corev1.ConditionFalse || c.Reason != "Draining" {
		t.Errorf("gate %+v, want False/Draining", c)
	}
}

// The index the readiness reconciler finds a pod's drains by is registered
// by gatewaydrain.SetupIndexes alone, which main calls before either
// controller: with it, a running gateway no drain targets is read at the
// slow interval; without it every lookup fails and every gated pod would be
// read every second (item D16).
func TestTheSharedIndexIsAllTheReadinessReconcilerNeeds(t *testing.T) {
	ns := env.Namespace(t)
	pod, _ := gatedPod(t, ns, "gw", true)
	for _, withIndex := range []bool{true, false} {
		mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		if withIndex {
			if err := drain.SetupIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
				t.Fatal(err)
			}
		}
		go func() { _ = mgr.Start(ctx) }()
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			t.Fatal("cache never synced")
		}
		r, _ := newReconciler()
		r.Client = mgr.GetClient()
		testenv.Eventually(t, 20*time.Second, func() (bool, string) { // the cache sees the pod
			return mgr.GetClient().Get(ctx, client.ObjectKeyFromObject(pod), &corev1.Pod{}) == nil, "pod not cached"
		})
		want := r.SlowInterval
		if !withIndex {
			want = r.FastInterval
		}
		if got := reconcile(t, r, pod).RequeueAfter; got != want {
			t.Errorf("index registered %v: next read after %s, want %s", withIndex, got, want)
		}
		cancel()
	}
}

// An idle gateway's state file never changes (upstream writes it on events
// only): its gate stays True however long that lasts, and a clock hours off
// makes no difference (issue 24, item 1).
func TestAnIdleGatewayStaysReady(t *testing.T) {
	ns := env.Namespace(t)
	r, _ := newReconciler()
	clk := testclock.NewFakePassiveClock(time.Now())
	r.Clock = clk
	pod, home := gatedPod(t, ns, "gw", true)
	writeStateAt(t, home, "running", 0, time.Now().Add(-5*time.Hour)) // its node's clock is hours off
	reconcile(t, r, pod)
	start := clk.Now()
	for _, after := range []time.Duration{3 * time.Minute, 10 * time.Minute, 6 * time.Hour} {
		clk.SetTime(start.Add(after))
		reconcile(t, r, fetch(t, pod))
		if c := gatewaypod.GateCondition(fetch(t, pod)); c == nil || c.Status != corev1.ConditionTrue {
			t.Errorf("gate %+v after %s of an unchanged record, want True", c, after)
		}
	}
}

// A gated pod's read removes a marker whose GatewayDrain no longer exists:
// the readiness reads are how orphaned markers on gated gateways go (item B10).
func TestAReadRemovesAnOrphanedMarker(t *testing.T) {
	ns := env.Namespace(t)
	r, _ := newReconciler()
	recorder := events.NewFakeRecorder(1)
	r.Orphans = &orphans.Remover{Cache: env.Client, API: env.Client, Transport: r.Transport, Recorder: recorder, Options: orphans.DefaultOptions()}
	pod, home := gatedPod(t, ns, "gw", true)
	target := calls.Pod{Namespace: ns, Name: pod.Name, Container: "gateway"}
	req := calls.ProjectRequest{Marker: marker.Request{
		Principal: "gatewaydrain/" + ns + "/gone",
		Origin:    marker.Origin{GatewayDrainUID: "uid-of-a-deleted-drain", GatewayDrain: ns + "/gone", Pod: ns + "/" + pod.Name, Container: "gateway"},
	}}
	if obs, err := r.Transport.Project(context.Background(), target, home, req); err != nil || obs.Outcome != calls.Written {
		t.Fatalf("writing a marker: %v %v", obs.Outcome, err)
	}
	reconcile(t, r, pod)
	if _, err := os.Lstat(filepath.Join(home, marker.Filename)); !os.IsNotExist(err) {
		t.Errorf("the orphaned marker is still there after a read (%v)", err)
	}
	if len(recorder.Events) != 1 {
		t.Errorf("%d events, want one saying the orphaned marker was removed", len(recorder.Events))
	}
}
