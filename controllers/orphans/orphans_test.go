//go:build !unit

package orphans_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/controllers/orphans"
	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod/gatewaypodtest"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
	"github.com/hermes-agent/hermes-drain-operator/internal/transport"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env)) }

var program = transport.NewProgram(transport.LocalRunner{}, "/proc")

// runningPod creates a running pod whose HERMES_HOME is a new folder.
func runningPod(t *testing.T, ns, name string, gateway, gated bool) (calls.Pod, string) {
	t.Helper()
	home := t.TempDir()
	pod := gatewaypodtest.Pod(gatewaypodtest.Spec{Namespace: ns, Name: name, Home: home, Declared: gateway, Gated: gated})
	ctx := context.Background()
	if err := env.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	// The sweep reads every namespace: gone with its folder, the pod must go too.
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), pod, client.GracePeriodSeconds(0)) })
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
		Name: "gateway", Image: "hermes", ImageID: "hermes",
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}},
	}}}
	if err := env.Client.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	return calls.Pod{Namespace: ns, Name: name, Container: "gateway"}, home
}

// markOf writes the marker GatewayDrain ns/drain with this UID would write.
func markOf(t *testing.T, pod calls.Pod, home, drain, uid string) {
	t.Helper()
	req := calls.ProjectRequest{Marker: marker.Request{
		Principal: "gatewaydrain/" + pod.Namespace + "/" + drain,
		Origin:    marker.Origin{GatewayDrainUID: uid, GatewayDrain: pod.Namespace + "/" + drain, Pod: pod.Namespace + "/" + pod.Name, Container: pod.Container},
	}}
	if obs, err := program.Project(context.Background(), pod, home, req); err != nil || obs.Outcome != calls.Written {
		t.Fatalf("writing a marker: %v %v", obs.Outcome, err)
	}
}

func hasMarker(home string) bool {
	_, err := os.Lstat(filepath.Join(home, marker.Filename))
	return err == nil
}

// A marker whose GatewayDrain no longer exists (deleted, or deleted and
// created again under the same name) is removed from the gateways nothing
// else reads; every other marker, and every other pod, is left alone
// (item B10).
func TestTheSweepRemovesOnlyOrphanedMarkers(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)
	live := &drainv1.GatewayDrain{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "live"},
		Spec:       drainv1.GatewayDrainSpec{Selector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "none"}}},
	}
	if err := env.Client.Create(ctx, live); err != nil {
		t.Fatal(err)
	}

	orphan, orphanHome := runningPod(t, ns, "orphan", true, false)
	markOf(t, orphan, orphanHome, "gone", "uid-of-a-deleted-drain")
	recreated, recreatedHome := runningPod(t, ns, "recreated", true, false)
	markOf(t, recreated, recreatedHome, "live", "uid-of-an-earlier-live")
	held, heldHome := runningPod(t, ns, "held", true, false)
	markOf(t, held, heldHome, "live", string(live.UID))
	_, dashboardHome := runningPod(t, ns, "dashboard", true, false)
	if err := os.WriteFile(filepath.Join(dashboardHome, marker.Filename), []byte(`{"action":"drain","principal":"ops"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	gated, gatedHome := runningPod(t, ns, "gated", true, true) // the readiness reconciler reads it
	markOf(t, gated, gatedHome, "gone", "uid-of-a-deleted-drain")
	plain, plainHome := runningPod(t, ns, "not-a-gateway", false, false)
	markOf(t, plain, plainHome, "gone", "uid-of-a-deleted-drain")

	recorder := events.NewFakeRecorder(10)
	// A cache that has not seen any GatewayDrain yet: only the API server's
	// "not found" may remove a marker.
	r := &orphans.Remover{Cache: staleCache{env.Client}, API: env.Client, Transport: program, Recorder: recorder, Options: orphans.DefaultOptions()}
	if err := r.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		home string
		want bool
		why  string
	}{
		{orphanHome, false, "its drain was deleted"},
		{recreatedHome, false, "its drain was deleted and created again"},
		{heldHome, true, "its drain exists (the cache said not found, the API server did not)"},
		{dashboardHome, true, "not an operator's"},
		{gatedHome, true, "gated pods are read by the readiness reconciler, not swept"},
		{plainHome, true, "not a gateway"},
	} {
		if got := hasMarker(tc.home); got != tc.want {
			t.Errorf("%s: marker present %v, want %v (%s)", tc.home, got, tc.want, tc.why)
		}
	}
	if len(recorder.Events) != 2 {
		t.Errorf("%d events, want one per removed marker", len(recorder.Events))
	}

	// The read of a gated pod removes its orphan the same way.
	obs, err := program.Read(ctx, gated, gatedHome)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Check(ctx, live, gated, gatedHome, obs); err != nil || hasMarker(gatedHome) {
		t.Errorf("check on a read: %v, marker left %v", err, hasMarker(gatedHome))
	}
}

// staleCache is a cache that has not seen any GatewayDrain yet.
type staleCache struct{ client.Reader }

func (c staleCache) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*drainv1.GatewayDrain); ok {
		return apierrors.NewNotFound(drainv1.GroupVersion.WithResource("gatewaydrains").GroupResource(), key.Name)
	}
	return c.Reader.Get(ctx, key, obj, opts...)
}

// hangingReads reads the pods named hung-* as pods that never answer would:
// until the read's context ends.
type hangingReads struct{ transport.Transport }

func (h hangingReads) Read(ctx context.Context, pod calls.Pod, home string) (calls.Observation, error) {
	if strings.HasPrefix(pod.Name, "hung-") {
		<-ctx.Done()
		return calls.Observation{}, ctx.Err()
	}
	return h.Transport.Read(ctx, pod, home)
}

// Twenty gateways that never answer hold the sweep a read's bound each, a
// few at a time: it still reaches the orphaned marker behind them, well
// within its interval, and reports them in a bounded error.
func TestPodsThatNeverAnswerDoNotHoldTheSweep(t *testing.T) {
	ns := env.Namespace(t)
	for i := range 20 {
		runningPod(t, ns, fmt.Sprintf("hung-%02d", i), true, false)
	}
	orphan, orphanHome := runningPod(t, ns, "zz-orphan", true, false)
	markOf(t, orphan, orphanHome, "gone", "uid-of-a-deleted-drain")
	opts := orphans.DefaultOptions()
	opts.ReadTimeout = 200 * time.Millisecond
	r := &orphans.Remover{Cache: env.Client, API: env.Client, Transport: hangingReads{program}, Recorder: events.NewFakeRecorder(10), Options: opts}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	err := r.Sweep(ctx)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the sweep took %s", took)
	}
	if hasMarker(orphanHome) {
		t.Error("the orphaned marker behind the hung pods is still there")
	}
	if err == nil || !strings.Contains(err.Error(), "and 10 more pods") {
		t.Errorf("the sweep's error: %v, want ten pods named and the rest counted", err)
	}
}
