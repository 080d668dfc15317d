//go:build !unit

package gatewaydrain_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/controllers/gatewaydrain"
	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod/gatewaypodtest"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
	"github.com/hermes-agent/hermes-drain-operator/internal/transport"
)

var (
	env *testenv.Env
	k8s client.Client
	// offset moves the reconciler's clock forward (deadline tests).
	offset atomic.Int64
	// runner runs the in-container program on this host, and injects
	// faults into the calls to the namespaces a test asks it to.
	runner = &faultyRunner{byNamespace: map[string]faults{}, calls: map[string]int{}}
	// nativeEpoch is this host's epoch: the local transport runs the
	// in-container program on this host, so it is every test gateway's epoch.
	nativeEpoch string
)

const wait = 20 * time.Second

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	k8s = env.Client
	nativeEpoch = marker.ProcEpoch("/proc")

	ctrl.SetLogger(logr.Discard())
	// EndpointSlices are cached trimmed, as the operator caches them.
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{&discoveryv1.EndpointSlice{}: {Transform: gatewaypod.TrimEndpointSlice}}}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	r := &gatewaydrain.Reconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Transport: transport.NewProgram(runner, "/proc"),
		Recorder:  mgr.GetEventRecorder("gatewaydrain"),
		Options: gatewaydrain.Options{
			CallsInFlight:    8,
			BatchTime:        200 * time.Millisecond,
			CallGrace:        3 * time.Second,
			PollInterval:     200 * time.Millisecond,
			IdlePollInterval: time.Second,
			ConfirmAfter:     300 * time.Millisecond,
			RefreshInterval:  20 * time.Minute,
			RetryBase:        100 * time.Millisecond,
			RetryMax:         time.Second,
			ReleaseTimeout:   3 * time.Second,

			EndpointsSettleTimeout: time.Minute,
			DataPlaneDelay:         300 * time.Millisecond,
		},
		Clock: offsetClock{},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := drain.SetupIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := r.SetupWithManager(mgr, 4); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
			os.Exit(1)
		}
	}()
	return m.Run()
}

// offsetClock is the real clock moved forward by offset.
type offsetClock struct{}

func (offsetClock) Now() time.Time                    { return time.Now().Add(time.Duration(offset.Load())) }
func (c offsetClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// faults are the shares of calls that fail, time out, or return a report
// cut in half (after the program ran: the marker was written, the
// read-back is lost).
// hang makes every call wait until it is abandoned, as a target that never
// answers does.
type faults struct {
	fail, timeout, truncate float64
	hang                    bool
}

// The fault of a call is a function of the pod and how many calls it had,
// so every run sees the same faults whatever the interleaving.
type faultyRunner struct {
	mu          sync.Mutex
	byNamespace map[string]faults
	calls       map[string]int // by namespace/pod
}

func (f *faultyRunner) inject(ns string, fl faults) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.byNamespace[ns] = fl
}

func (f *faultyRunner) callsTo(pod string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[pod]
}

func (f *faultyRunner) Run(ctx context.Context, pod calls.Pod, argv []string, stdin []byte) ([]byte, error) {
	key := pod.Namespace + "/" + pod.Name
	f.mu.Lock()
	f.calls[key]++
	fl, n := f.byNamespace[pod.Namespace], f.calls[key]
	f.mu.Unlock()
	sum := sha256.Sum256(fmt.Appendf(nil, "%s#%d", pod.Name, n))
	x := float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53)
	switch {
	case fl.hang:
		<-ctx.Done()
		return nil, ctx.Err()
	case x < fl.fail:
		return nil, errors.New("injected: connection reset by peer")
	case x < fl.fail+fl.timeout:
		return nil, fmt.Errorf("injected: %w", context.DeadlineExceeded)
	}
	out, err := transport.LocalRunner{}.Run(ctx, pod, argv, stdin)
	if x < fl.fail+fl.timeout+fl.truncate {
		return out[:len(out)/2], err
	}
	return out, err
}

// gateway is a test gateway pod: a pod object that "runs" (its status is
// written by the test, as envtest has no kubelet) and a directory on this
// host as its HERMES_HOME, where the test plays the gateway.
type gateway struct {
	t    *testing.T
	ns   string
	name string
	home string
	pod  *corev1.Pod
	// mutate changes the pod before it is created.
	mutate func(*corev1.Pod)
}

func newGateway(t *testing.T, ns, name string, mutate ...func(*corev1.Pod)) *gateway {
	t.Helper()
	return newGatewayAt(t, ns, name, filepath.Join(t.TempDir(), name), mutate...)
}

// newGatewayAt is newGateway with its HERMES_HOME at home.
func newGatewayAt(t *testing.T, ns, name, home string, mutate ...func(*corev1.Pod)) *gateway {
	t.Helper()
	g := &gateway{t: t, ns: ns, name: name, home: home, mutate: func(p *corev1.Pod) {
		for _, m := range mutate {
			m(p)
		}
	}}
	if err := os.MkdirAll(g.home, 0o755); err != nil {
		t.Fatal(err)
	}
	g.setState(marker.StateRunning, 0)
	g.create()
	return g
}

// create creates the pod (again, for a recreation: new UID, same home) and
// marks it running.
func (g *gateway) create() {
	g.t.Helper()
	g.pod = gatewaypodtest.Pod(gatewaypodtest.Spec{Namespace: g.ns, Name: g.name, Home: g.home, Labels: map[string]string{"app": "hermes-gateway"}, Declared: true})
	g.pod.Spec.Containers = append(g.pod.Spec.Containers, corev1.Container{Name: "sidecar", Image: "other"})
	g.mutate(g.pod)
	if err := k8s.Create(context.Background(), g.pod); err != nil {
		g.t.Fatal(err)
	}
	g.setContainer(0, time.Now().Add(-time.Hour))
}

// setContainer writes a running gateway container status: a new
// restartCount or start is a new instantiation.
func (g *gateway) setContainer(restarts int32, started time.Time) {
	g.t.Helper()
	g.pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
		Name: "gateway", Ready: true, RestartCount: restarts, Image: "hermes", ImageID: "hermes",
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(started)}},
	}}}
	if err := k8s.Status().Update(context.Background(), g.pod); err != nil {
		g.t.Fatal(err)
	}
}

// stopContainer writes a gateway container that stopped and waits to be
// restarted, in a pod that still runs (a crash loop).
func (g *gateway) stopContainer() {
	g.t.Helper()
	cs := g.pod.Status.ContainerStatuses[0]
	cs.RestartCount++
	cs.Ready, cs.State = false, corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}
	g.pod.Status.ContainerStatuses[0] = cs
	if err := k8s.Status().Update(context.Background(), g.pod); err != nil {
		g.t.Fatal(err)
	}
}

func (g *gateway) restartContainer() {
	g.t.Helper()
	cs := g.pod.Status.ContainerStatuses[0]
	g.setContainer(cs.RestartCount+1, cs.State.Running.StartedAt.Add(10*time.Second))
}

func (g *gateway) recreate() {
	g.t.Helper()
	if err := k8s.Delete(context.Background(), g.pod, client.GracePeriodSeconds(0)); err != nil {
		g.t.Fatal(err)
	}
	testenv.Eventually(g.t, wait, func() (bool, string) {
		err := k8s.Get(context.Background(), client.ObjectKeyFromObject(g.pod), &corev1.Pod{})
		return err != nil, "pod still there"
	})
	g.create()
}

// setState plays the gateway: it writes gateway_state.json as upstream does.
func (g *gateway) setState(state string, agents int) {
	g.t.Helper()
	g.setStateAt(state, agents, time.Now())
}

// setStateAt writes gateway_state.json as a gateway whose clock reads
// updated does.
func (g *gateway) setStateAt(state string, agents int, updated time.Time) {
	g.t.Helper()
	g.writeState(map[string]any{
		"gateway_state": state, "active_agents": agents, "kind": "hermes-gateway",
		"updated_at": updated.UTC().Format(marker.TimeLayout),
	})
}

// setStateBy writes gateway_state.json as the process pid (on this host)
// does: it names itself with its pid and start_time.
func (g *gateway) setStateBy(pid int, state string, agents int) {
	g.t.Helper()
	start := "1"
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		start, _ = marker.ProcStatStartTime(string(stat))
	}
	g.writeState(map[string]any{
		"gateway_state": state, "active_agents": agents, "kind": "hermes-gateway",
		"updated_at": time.Now().UTC().Format(marker.TimeLayout), "pid": pid, "start_time": start,
	})
}

func (g *gateway) writeState(fields map[string]any) {
	g.t.Helper()
	b, _ := json.Marshal(fields)
	if err := os.WriteFile(filepath.Join(g.home, marker.StateFilename), b, 0o644); err != nil {
		g.t.Fatal(err)
	}
}

func (g *gateway) markerPath() string { return filepath.Join(g.home, marker.Filename) }

// marker returns the marker file's content, or nil when there is none.
func (g *gateway) marker() []byte {
	b, err := os.ReadFile(g.markerPath())
	if err != nil {
		return nil
	}
	return b
}

func (g *gateway) writeMarker(content string) {
	g.t.Helper()
	if err := os.WriteFile(g.markerPath(), []byte(content), 0o644); err != nil {
		g.t.Fatal(err)
	}
}

// waitMarker waits until the gateway would honour (or not) a marker.
func (g *gateway) waitHonoured(want bool) {
	g.t.Helper()
	testenv.Eventually(g.t, wait, func() (bool, string) {
		b := g.marker()
		got := b != nil && marker.Parse(b).Honoured(nativeEpoch, time.Now())
		return got == want, fmt.Sprintf("%s: marker honoured=%v, want %v (%s)", g.name, got, want, b)
	})
}

func newGatewayDrain(t *testing.T, ns, name string, mutate ...func(*drainv1.GatewayDrain)) *drainv1.GatewayDrain {
	t.Helper()
	gwd := &drainv1.GatewayDrain{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: drainv1.GatewayDrainSpec{
			Selector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "hermes-gateway"}},
		},
	}
	for _, m := range mutate {
		m(gwd)
	}
	if err := k8s.Create(context.Background(), gwd); err != nil {
		t.Fatal(err)
	}
	return gwd
}

func get(t *testing.T, gwd *drainv1.GatewayDrain) *drainv1.GatewayDrain {
	t.Helper()
	got := &drainv1.GatewayDrain{}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(gwd), got); err != nil {
		t.Fatal(err)
	}
	return got
}

// observed is a drain as the tests look at it: the object and its targets.
type observed = drain.Observed

func observe(t *testing.T, gwd *drainv1.GatewayDrain) *observed {
	t.Helper()
	got, err := drain.Observe(context.Background(), k8s, client.ObjectKeyFromObject(gwd))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// waitFor waits until the drain's status and targets satisfy cond.
func waitFor(t *testing.T, gwd *drainv1.GatewayDrain, what string, cond func(*observed) bool) *observed {
	t.Helper()
	var got *observed
	testenv.Eventually(t, wait, func() (bool, string) {
		got = observe(t, gwd)
		b, _ := json.MarshalIndent(got.Status, "", "  ")
		tj, _ := json.MarshalIndent(got.Targets, "", "  ")
		return cond(got), what + "; status: " + string(b) + "; targets: " + string(tj)
	})
	return got
}

// condition reports whether a condition has this status and reason, for
// the current generation (what `kubectl wait --for=condition=...` checks).
func condition(typ string, status metav1.ConditionStatus, reason string) func(*observed) bool {
	return func(g *observed) bool {
		c := meta.FindStatusCondition(g.Status.Conditions, typ)
		return c != nil && c.Status == status && c.Reason == reason && c.ObservedGeneration == g.Generation &&
			g.Status.ObservedGeneration == g.Generation
	}
}

func targetState(pod string, state drainv1.TargetState) func(*observed) bool {
	return func(g *observed) bool { return g.Target(pod).State == state }
}

func patchSpec(t *testing.T, gwd *drainv1.GatewayDrain, mutate func(*drainv1.GatewayDrain)) {
	t.Helper()
	cur := get(t, gwd)
	patch := client.MergeFrom(cur.DeepCopy())
	mutate(cur)
	if err := k8s.Patch(context.Background(), cur, patch); err != nil {
		t.Fatal(err)
	}
}

// eventReasons lists the reasons of the events recorded about an object.
func eventReasons(t *testing.T, ns string, uid types.UID) []string {
	t.Helper()
	var list eventsv1.EventList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, e := range list.Items {
		if e.Regarding.UID == uid {
			reasons = append(reasons, e.Reason)
		}
	}
	return reasons
}

func waitEvent(t *testing.T, gwd *drainv1.GatewayDrain, reason string) {
	t.Helper()
	testenv.Eventually(t, wait, func() (bool, string) {
		got := eventReasons(t, gwd.Namespace, gwd.UID)
		return strings.Contains(strings.Join(got, ","), reason), fmt.Sprintf("no %s event among %v", reason, got)
	})
}
