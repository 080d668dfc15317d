//go:build !unit

package podreadiness_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/hermes-agent/hermes-drain-operator/controllers/podreadiness"
	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
	"github.com/hermes-agent/hermes-drain-operator/internal/transport"
)

// hangingReads reads the gateways of one namespace as a pod that never
// answers would: until the read's context ends.
type hangingReads struct {
	transport.Transport
	namespace string
	hung      atomic.Int32
}

func (h *hangingReads) Read(ctx context.Context, pod calls.Pod, home string) (calls.Observation, error) {
	if pod.Namespace != h.namespace {
		return h.Transport.Read(ctx, pod, home)
	}
	h.hung.Add(1)
	<-ctx.Done()
	return calls.Observation{}, ctx.Err()
}

// Fifty gated pods in one namespace that never answer a read do not keep
// another namespace's new gateway from its gate: that namespace's reads
// hold half the readers at most.
func TestPodsThatNeverAnswerStarveNoOtherNamespace(t *testing.T) {
	hostile, team := env.Namespace(t), env.Namespace(t)
	for i := range 50 {
		gatedPod(t, hostile, fmt.Sprintf("hung-%d", i), true)
	}
	mgr, start := newManager(t)
	reads := &hangingReads{Transport: transport.NewProgram(transport.LocalRunner{}, "/proc"), namespace: hostile}
	opts := podreadiness.DefaultOptions()
	opts.ReadTimeout = time.Hour // the namespace's share alone must leave readers to the others
	r := &podreadiness.Reconciler{Client: mgr.GetClient(), Transport: reads, Options: opts, Clock: clock.RealClock{}}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	start()
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return reads.hung.Load() >= 8, fmt.Sprintf("%d hung reads", reads.hung.Load())
	})

	pod, _ := gatedPod(t, team, "gw", true)
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		c := gatewaypod.GateCondition(fetch(t, pod))
		return c != nil && c.Status == corev1.ConditionTrue, fmt.Sprintf("the other namespace's gate: %+v", c)
	})
}

// A read that never answers holds its reader for the read's bound, and the
// gate keeps its last status meanwhile.
func TestAReadThatNeverAnswersEndsAtItsBound(t *testing.T) {
	ns := env.Namespace(t)
	r, _ := newReconciler()
	pod, _ := gatedPod(t, ns, "gw", true)
	reconcile(t, r, pod) // True: the gateway runs
	r.Transport = &hangingReads{Transport: r.Transport, namespace: ns}
	r.ReadTimeout = 200 * time.Millisecond
	done := make(chan error)
	go func() {
		_, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(pod)})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the read of a gateway that never answers was not abandoned")
	}
	if c := gatewaypod.GateCondition(fetch(t, pod)); c == nil || c.Status != corev1.ConditionTrue {
		t.Errorf("gate %+v: want its last status kept", c)
	}
}
