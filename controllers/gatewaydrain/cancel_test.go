//go:build !unit

package gatewaydrain_test

import (
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// A person cancels a gateway's drain as upstream's dashboard does, by
// deleting the marker: the operator never writes it back, the target says
// so, and the drain is not Drained while that gateway serves; it stalls,
// naming the pod, since only asking again moves it. Asking again (the
// annotation) writes the marker again (issue 24, item 3).
func TestAPersonsCancelIsRespected(t *testing.T) {
	ns := env.Namespace(t)
	g, other := newGateway(t, ns, "gw-0"), newGateway(t, ns, "gw-1")
	gwd := newGatewayDrain(t, ns, "d")
	g.waitHonoured(true)
	other.waitHonoured(true)
	g.setState(marker.StateDraining, 0)
	other.setState(marker.StateDraining, 0)
	waitFor(t, gwd, "Drained", condition(drainv1.ConditionDrained, metav1.ConditionTrue, drainv1.ReasonDrained))

	// The dashboard's cancel: the marker goes, the gateway serves again.
	if err := os.Remove(g.markerPath()); err != nil {
		t.Fatal(err)
	}
	g.setState(marker.StateRunning, 0)
	got := waitFor(t, gwd, "stalled on the removed marker", condition(drainv1.ConditionStalled, metav1.ConditionTrue, drainv1.ReasonMarkerRemoved))
	if tg := got.Target("gw-0"); tg.State != drainv1.TargetMarkerRemoved || tg.MarkerRemovedAt == nil {
		t.Errorf("gw-0: %s (%s), want MarkerRemoved", tg.State, tg.Message)
	}
	if c := metaCondition(got, drainv1.ConditionDrained); c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "gw-0 (MarkerRemoved") {
		t.Errorf("Drained %+v: want False, naming gw-0", c)
	}
	if got.Target("gw-1").State != drainv1.TargetDrained || other.marker() == nil {
		t.Errorf("gw-1: %s, marker %q: the other gateway stays drained", got.Target("gw-1").State, other.marker())
	}
	waitEvent(t, gwd, "MarkerRemoved")
	if g.marker() != nil {
		t.Fatalf("the removed marker was written back: %s", g.marker())
	}

	// Asked again: the marker is written again, and the drain completes.
	patchSpec(t, gwd, func(d *drainv1.GatewayDrain) {
		metav1.SetMetaDataAnnotation(&d.ObjectMeta, drainv1.AskAgainAnnotation, time.Now().Add(time.Second).UTC().Format(time.RFC3339))
	})
	g.waitHonoured(true)
	g.setState(marker.StateDraining, 0)
	waitFor(t, gwd, "Drained again", condition(drainv1.ConditionDrained, metav1.ConditionTrue, drainv1.ReasonDrained))
}
