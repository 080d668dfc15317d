//go:build !unit

package podreadiness_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/controllers/podreadiness"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
)

// A gated pod that a standing drain targets is taken out of traffic before
// anything is written to it: its gate turns False (DrainRequested) without
// a call into the container, however the gateway is doing, and stays False
// while the drain stands. Once the drain is cancelled, the gate follows the
// gateway again. A MarkerFirst drain leaves the gate to the gateway's state.
func TestAStandingDrainTakesItsGatedTargetsOutOfTraffic(t *testing.T) {
	ns := env.Namespace(t)
	ctx := context.Background()
	pod, _ := gatedPod(t, ns, "gw", true)
	r, runner := cachedReconciler(t)

	gwd := standingDrain(t, pod, drainv1.TrafficLeaveFirst)
	waitCached(t, r, func(c client.Reader) bool {
		tg, _, err := drain.StandingTarget(ctx, c, pod, time.Now())
		return err == nil && tg != nil
	})
	reconcile(t, r, pod)
	if c := gatewaypod.GateCondition(fetch(t, pod)); c == nil || c.Status != corev1.ConditionFalse || c.Reason != podreadiness.ReasonDrainRequested {
		t.Fatalf("gate %+v, want False/%s", c, podreadiness.ReasonDrainRequested)
	}
	if n := runner.calls.Load(); n != 0 {
		t.Errorf("%d calls into the container: taking a target out of traffic needs none", n)
	}

	cancelled := gwd.DeepCopy()
	cancelled.Spec.Action = drainv1.ActionCancel
	if err := env.Client.Update(ctx, cancelled); err != nil {
		t.Fatal(err)
	}
	waitCached(t, r, func(c client.Reader) bool {
		tg, _, err := drain.StandingTarget(ctx, c, pod, time.Now())
		return err == nil && tg == nil
	})
	reconcile(t, r, fetch(t, pod))
	if c := gatewaypod.GateCondition(fetch(t, pod)); c == nil || c.Status != corev1.ConditionTrue {
		t.Errorf("gate %+v after the drain was cancelled, want True (the gateway runs)", c)
	}

	other, _ := gatedPod(t, ns, "gw-marker-first", true)
	standingDrain(t, other, drainv1.TrafficMarkerFirst)
	waitCached(t, r, func(c client.Reader) bool {
		tg, _, err := drain.StandingTarget(ctx, c, other, time.Now())
		return err == nil && tg != nil
	})
	reconcile(t, r, other)
	if c := gatewaypod.GateCondition(fetch(t, other)); c == nil || c.Status != corev1.ConditionTrue {
		t.Errorf("gate %+v under a MarkerFirst drain, want True: it follows the gateway, which runs", c)
	}
}

// cachedReconciler is a readiness reconciler reading through a started
// manager's cache, with the shared index, as in the operator.
func cachedReconciler(t *testing.T) (*podreadiness.Reconciler, *countingRunner) {
	t.Helper()
	mgr, start := newManager(t)
	start()
	r, runner := newReconciler()
	r.Client = mgr.GetClient()
	return r, runner
}

// newManager is a manager with the operator's shared index, and what
// starts it and waits until its cache has synced; it stops with the test.
func newManager(t *testing.T) (ctrl.Manager, func()) {
	t.Helper()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := drain.SetupIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		t.Fatal(err)
	}
	return mgr, func() {
		t.Helper()
		go func() { _ = mgr.Start(ctx) }()
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			t.Fatal("cache never synced")
		}
	}
}

func waitCached(t *testing.T, r *podreadiness.Reconciler, cond func(client.Reader) bool) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, func() (bool, string) { return cond(r.Client), "the cache has not caught up" })
}

// standingDrain creates a GatewayDrain and the TargetSlice that makes pod
// its target, as the drain reconciler would, without one running.
func standingDrain(t *testing.T, pod *corev1.Pod, order drainv1.TrafficOrder) *drainv1.GatewayDrain {
	t.Helper()
	ctx := context.Background()
	gwd := &drainv1.GatewayDrain{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: "d-" + pod.Name},
		Spec: drainv1.GatewayDrainSpec{
			Selector:     metav1.LabelSelector{MatchLabels: map[string]string{"app": pod.Name}},
			TrafficOrder: order,
		},
	}
	if err := env.Client.Create(ctx, gwd); err != nil {
		t.Fatal(err)
	}
	slice := &drainv1.TargetSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: gwd.Name + "-0", Labels: map[string]string{drainv1.GatewayDrainLabel: gwd.Name},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(gwd, drainv1.GroupVersion.WithKind("GatewayDrain"))}},
		Count:   1,
		Targets: []drainv1.Target{{PodName: pod.Name, PodUID: pod.UID, Container: "gateway", State: drainv1.TargetPending}},
	}
	if err := env.Client.Create(ctx, slice); err != nil {
		t.Fatal(err)
	}
	return gwd
}

// Uninstalling turns True every gate that is not True, so that no pod is
// left out of its Services; other pods and gates already True are left alone.
func TestReleaseGatesLeavesNoPodOutOfTraffic(t *testing.T) {
	ns := env.Namespace(t)
	ctx := context.Background()
	r, _ := newReconciler()
	out, home := gatedPod(t, ns, "gw-out", true)
	writeState(t, home, "draining", 0)
	reconcile(t, r, out)
	if c := gatewaypod.GateCondition(fetch(t, out)); c == nil || c.Status != corev1.ConditionFalse {
		t.Fatalf("gate %+v of a draining gateway, want False", c)
	}
	never, _ := gatedPod(t, ns, "gw-never-read", true)
	serving, _ := gatedPod(t, ns, "gw-serving", true)
	reconcile(t, r, serving)
	plain, _ := gatedPod(t, ns, "web", false)

	released, err := podreadiness.ReleaseGates(ctx, env.Client, []string{ns}, time.Now())
	if err != nil || released != 2 {
		t.Fatalf("released %d gates (%v), want 2", released, err)
	}
	for _, p := range []*corev1.Pod{out, never} {
		if c := gatewaypod.GateCondition(fetch(t, p)); c == nil || c.Status != corev1.ConditionTrue || c.Reason != podreadiness.ReasonOperatorUninstalled {
			t.Errorf("%s: gate %+v, want True/%s", p.Name, c, podreadiness.ReasonOperatorUninstalled)
		}
	}
	if c := gatewaypod.GateCondition(fetch(t, serving)); c == nil || c.Reason == podreadiness.ReasonOperatorUninstalled {
		t.Errorf("a gate already True was rewritten: %+v", c)
	}
	if c := gatewaypod.GateCondition(fetch(t, plain)); c != nil {
		t.Errorf("a pod without the gate got it: %+v", c)
	}
}
