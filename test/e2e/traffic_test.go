package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
	"github.com/hermes-agent/hermes-drain-operator/test/traffic"
)

// turnPort is where the simulated gateways serve turns (upstream's API port).
const turnPort = 8642

// Under steady traffic through a Service, followed with a lag as
// kube-proxy follows EndpointSlices, draining half of 100 gated gateways
// refuses no turn: they leave traffic before their markers are written.
// Draining the other half marker first, the old order, refuses turns (the
// measurement can see refusals).
//
// It runs alone, before the parallel tests: a hundred gateways under a
// hundred turns a second load this machine's two CPUs, and the others'
// load would blur what it measures.
func TestADrainUnderTrafficRefusesNoTurn(t *testing.T) {
	ns := namespace(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const n = 100
	// Gone before the parallel tests start: a hundred gated pods read every
	// 30 s load kwok's exec for them.
	t.Cleanup(func() {
		if err := k8s.DeleteAllOf(context.Background(), &corev1.Pod{}, client.InNamespace(ns), client.GracePeriodSeconds(0)); err != nil {
			t.Error(err)
		}
		testenv.Eventually(t, wait, func() (bool, string) {
			var pods corev1.PodList
			err := k8s.List(context.Background(), &pods, client.InNamespace(ns))
			return err == nil && len(pods.Items) == 0, fmt.Sprintf("%d pods left (%v)", len(pods.Items), err)
		})
	})
	gen, err := lc.TrafficFleet(ctx, sim, ns, n, turnPort, 100, gatewayLabels)
	if err != nil {
		t.Fatal(err)
	}
	waitEndpoints(t, ns, n, 0)

	drain := func(name, half string, order drainv1.TrafficOrder) traffic.Window {
		t.Helper()
		w, err := gen.Drain(ctx, k8s, &drainv1.GatewayDrain{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: drainv1.GatewayDrainSpec{Selector: metav1.LabelSelector{MatchLabels: map[string]string{"half": half}}, TrafficOrder: order}}, 2*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	leaveFirst, markerFirst := drain("leave-first", "a", drainv1.TrafficLeaveFirst), drain("marker-first", "b", drainv1.TrafficMarkerFirst)
	all := gen.Stop()
	leaveTurns, markerTurns := gen.Between(leaveFirst.From, leaveFirst.To), gen.Between(markerFirst.From, markerFirst.To)
	t.Logf("all turns: %s", all)
	t.Logf("LeaveTrafficFirst: %d gateways drained in %s; turns meanwhile: %s", n/2, leaveFirst.Took().Round(100*time.Millisecond), leaveTurns)
	t.Logf("MarkerFirst: %d gateways drained in %s; turns meanwhile: %s", n/2, markerFirst.Took().Round(100*time.Millisecond), markerTurns)
	if leaveTurns.Refused != 0 || leaveTurns.Failed != 0 || leaveTurns.Unroutable != 0 || leaveTurns.Completed == 0 {
		t.Errorf("leaving traffic first: %s; want every turn completed", leaveTurns)
	}
	if markerTurns.Refused == 0 {
		t.Errorf("marker first: %s; the old order refuses turns: the measurement should see them", markerTurns)
	}
	if all.Failed != 0 {
		t.Errorf("%d turns got no answer: %s", all.Failed, all)
	}
}
