//go:build !unit

package gatewaydrain_test

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
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
)

func dashboardMarker(epoch string) string {
	return dashboardMarkerAt(epoch, time.Now())
}

func dashboardMarkerAt(epoch string, requested time.Time) string {
	return fmt.Sprintf(`{"action": "drain", "requested_at": "%s", "principal": "ops@dashboard", "epoch": "%s"}`,
		requested.UTC().Format(marker.TimeLayout), epoch)
}

// Age alone never makes someone else's marker ours to replace: an older
// gateway honours a marker of any age. What the gateway reports in the same
// read decides (item B7).
func TestAnOldMarkerIsReplacedOnlyIfTheGatewayIgnoresIt(t *testing.T) {
	ns := env.Namespace(t)
	honoured, ignored, unnoticed := newGateway(t, ns, "gw-0"), newGateway(t, ns, "gw-1"), newGateway(t, ns, "gw-2")
	old := dashboardMarkerAt(nativeEpoch, time.Now().Add(-3*time.Hour))
	honoured.writeMarker(old)
	honoured.setState(marker.StateDraining, 0) // an older gateway, without the 1-hour expiry
	ignored.writeMarker(old)                   // a newer one: expired, so it runs
	// A marker the dashboard wrote a moment after the gateway last wrote
	// its state: still "running", because the gateway has not looked yet.
	unnoticed.setStateAt(marker.StateRunning, 0, time.Now().Add(-time.Second))
	fresh := dashboardMarkerAt(nativeEpoch, time.Now())
	unnoticed.writeMarker(fresh)
	gwd := newGatewayDrain(t, ns, "d")
	waitFor(t, gwd, "old marker held, ignored one replaced, fresh one held", func(d *observed) bool {
		return d.Target("gw-0").State == drainv1.TargetConflict && d.Target("gw-1").MarkerWrittenAt != nil &&
			d.Target("gw-2").State == drainv1.TargetConflict
	})
	if string(honoured.marker()) != old {
		t.Errorf("a marker the gateway honours was replaced by %s", honoured.marker())
	}
	if string(unnoticed.marker()) != fresh {
		t.Errorf("a marker the gateway has not looked at yet was replaced by %s", unnoticed.marker())
	}
	if o, ok := marker.Parse(ignored.marker()).Origin(); !ok || o.GatewayDrain != ns+"/d" {
		t.Errorf("the marker the gateway ignores was not replaced: %s", ignored.marker())
	}
}

func TestForeignLiveMarkerIsLeftAlone(t *testing.T) {
	ns := env.Namespace(t)
	g, other := newGateway(t, ns, "gw-0"), newGateway(t, ns, "gw-1")
	theirs := dashboardMarker(nativeEpoch)
	g.writeMarker(theirs)
	g.setState(marker.StateDraining, 1) // it honours the marker
	gwd := newGatewayDrain(t, ns, "d")

	got := waitFor(t, gwd, "conflict", targetState("gw-0", drainv1.TargetConflict))
	if msg := got.Target("gw-0").Message; !strings.Contains(msg, "ops@dashboard") {
		t.Errorf("conflict message %q should name the holder", msg)
	}
	other.waitHonoured(true)
	other.setState(marker.StateDraining, 0)
	got = waitFor(t, gwd, "gw-1 drained", targetState("gw-1", drainv1.TargetDrained))
	if c := metaCondition(got, drainv1.ConditionDrained); c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "gw-0 (Conflict") {
		t.Errorf("Drained %+v should be held by the conflict on gw-0", c)
	}
	waitEvent(t, gwd, "TargetConflict")

	patchSpec(t, gwd, func(d *drainv1.GatewayDrain) { d.Spec.Action = drainv1.ActionCancel })
	waitFor(t, gwd, "released", condition(drainv1.ConditionReady, metav1.ConditionTrue, drainv1.ReasonReleased))
	if string(g.marker()) != theirs {
		t.Errorf("the dashboard's marker was touched: %q", g.marker())
	}
	if other.marker() != nil {
		t.Errorf("our marker survived the cancel: %s", other.marker())
	}
}

func TestStaleForeignMarkerIsReplaced(t *testing.T) {
	ns := env.Namespace(t)
	g := newGateway(t, ns, "gw-0")
	g.writeMarker(dashboardMarker("another-boot:1")) // an earlier instantiation's: the gateway ignores it
	gwd := newGatewayDrain(t, ns, "d")
	g.waitHonoured(true)
	if o, ok := marker.Parse(g.marker()).Origin(); !ok || o.GatewayDrain != ns+"/d" {
		t.Errorf("marker %s is not ours", g.marker())
	}
	waitEvent(t, gwd, "StaleMarkerReplaced")
}

func TestSecondDrainOfTheSamePodIsAConflict(t *testing.T) {
	ns := env.Namespace(t)
	g := newGateway(t, ns, "gw-0")
	newGatewayDrain(t, ns, "first")
	g.waitHonoured(true)
	second := newGatewayDrain(t, ns, "second")
	got := waitFor(t, second, "conflict", targetState("gw-0", drainv1.TargetConflict))
	if msg := got.Target("gw-0").Message; !strings.Contains(msg, "GatewayDrain "+ns+"/first") {
		t.Errorf("message %q should name the GatewayDrain holding the pod", msg)
	}
	// Cancelling the second leaves the first's marker alone.
	patchSpec(t, second, func(d *drainv1.GatewayDrain) { d.Spec.Action = drainv1.ActionCancel })
	waitFor(t, second, "released", condition(drainv1.ConditionReady, metav1.ConditionTrue, drainv1.ReasonReleased))
	if o, _ := marker.Parse(g.marker()).Origin(); o.GatewayDrain != ns+"/first" {
		t.Errorf("first drain's marker lost: %s", g.marker())
	}
}

func TestTransportFailureIsPerTargetAndRecovers(t *testing.T) {
	ns := env.Namespace(t)
	broken, fine := newGateway(t, ns, "gw-broken"), newGateway(t, ns, "gw-fine")
	if err := os.RemoveAll(broken.home); err != nil { // its HERMES_HOME is missing
		t.Fatal(err)
	}
	gwd := newGatewayDrain(t, ns, "d")
	fine.waitHonoured(true)
	fine.setState(marker.StateDraining, 0)
	got := waitFor(t, gwd, "broken failed, fine drained", func(d *observed) bool {
		return d.Target("gw-broken").State == drainv1.TargetFailed && d.Target("gw-broken").Failures >= 2 &&
			d.Target("gw-fine").State == drainv1.TargetDrained
	})
	if msg := got.Target("gw-broken").Message; !strings.Contains(msg, "is not a directory") {
		t.Errorf("failure message %q should say why", msg)
	}
	waitEvent(t, gwd, "TargetFailed")

	if err := os.MkdirAll(broken.home, 0o755); err != nil {
		t.Fatal(err)
	}
	broken.setState(marker.StateDraining, 0)
	waitFor(t, gwd, "recovered", condition(drainv1.ConditionDrained, metav1.ConditionTrue, drainv1.ReasonDrained))
	broken.waitHonoured(true)
}

// A HERMES_HOME in the pod's env that is not a valid home is never sent to
// the pod: no call is made into it, its target fails saying why, and it
// blocks the drain until the pod goes (item B6).
func TestAnInvalidHomeInThePodIsNeverSent(t *testing.T) {
	ns := env.Namespace(t)
	g := newGateway(t, ns, "gw-0", func(p *corev1.Pod) { p.Spec.Containers[0].Env[0].Value = "/opt/../etc" })
	gwd := newGatewayDrain(t, ns, "d")
	got := waitFor(t, gwd, "failed, and counted", func(d *observed) bool {
		return d.Target("gw-0").State == drainv1.TargetFailed && d.Status.Counts.Failed == 1
	})
	tg := got.Target("gw-0")
	if tg.Unreachable == "" || tg.HermesHome != "" || !strings.Contains(tg.Message, "will not write") {
		t.Errorf("target %+v: want it unreachable, with no home recorded and a message saying so", tg)
	}
	if c := metaCondition(got, drainv1.ConditionDrained); c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "gw-0 (Failed") {
		t.Errorf("Drained %+v should be held by gw-0", c)
	}
	if n := runner.callsTo(ns + "/" + g.name); n != 0 {
		t.Errorf("%d calls into a pod whose home is invalid", n)
	}
}

// A pod that declares its HERMES_HOME cannot be pointed elsewhere by a
// GatewayDrain, and a home that is not valid is never sent to the pod: the
// target fails, says why, and blocks the drain (items B6, B11).
func TestAHomeThePodDoesNotDeclareIsNeverWritten(t *testing.T) {
	ns := env.Namespace(t)
	g := newGateway(t, ns, "gw-0")
	elsewhere := t.TempDir()
	gwd := newGatewayDrain(t, ns, "d", func(d *drainv1.GatewayDrain) { d.Spec.HermesHome = elsewhere })
	got := waitFor(t, gwd, "failed, and counted", func(d *observed) bool {
		return d.Target("gw-0").State == drainv1.TargetFailed && d.Status.Counts.Failed == 1
	})
	if msg := got.Target("gw-0").Message; !strings.Contains(msg, "cannot point elsewhere") {
		t.Errorf("message %q", msg)
	}
	if c := meta.FindStatusCondition(got.Status.Conditions, drainv1.ConditionDrained); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("Drained %v with an undrained target", c)
	}
	if err := k8s.Delete(context.Background(), gwd); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, func() (bool, string) {
		err := k8s.Get(context.Background(), client.ObjectKeyFromObject(gwd), &drainv1.GatewayDrain{})
		return apierrors.IsNotFound(err), "deletion still blocked"
	})
	for _, dir := range []string{elsewhere, g.home} {
		if _, err := os.Lstat(filepath.Join(dir, marker.Filename)); !os.IsNotExist(err) {
			t.Errorf("a marker was written into %s: %v", dir, err)
		}
	}
}

func TestMissingContainerFailsWithAMessage(t *testing.T) {
	ns := env.Namespace(t)
	newGateway(t, ns, "gw-0")
	gwd := newGatewayDrain(t, ns, "d", func(d *drainv1.GatewayDrain) { d.Spec.Container = "hermes" })
	got := waitFor(t, gwd, "failed, and counted", func(d *observed) bool {
		return d.Target("gw-0").State == drainv1.TargetFailed && d.Status.Counts.Failed == 1
	})
	if msg := got.Target("gw-0").Message; !strings.Contains(msg, `no container "hermes"`) {
		t.Errorf("message %q", msg)
	}
}

func TestHostileValuesLandByteExact(t *testing.T) {
	ns := env.Namespace(t)
	home := t.TempDir() + "/home with spaces/'q\" $HOME `id` $(id)"
	newGatewayAt(t, ns, "gw-0", home)
	principal := `ops "quoted" 'single' $(touch /tmp/pwned) ` + "`id` ; rm -rf / #\\"
	newGatewayDrain(t, ns, "d", func(d *drainv1.GatewayDrain) {
		d.Spec.HermesHome, d.Spec.Principal = home, principal
	})
	waitForFile(t, home+"/"+marker.Filename)
	b, _ := os.ReadFile(home + "/" + marker.Filename)
	if got := marker.Parse(b).Principal(); got != principal {
		t.Errorf("principal %q, want %q", got, principal)
	}
}

// Only a pod that declares itself a gateway is a target: a GatewayDrain's
// selector cannot make the operator write into any pod of the namespace
// (item B11).
func TestOnlyPodsThatDeclareThemselvesGatewaysAreTargets(t *testing.T) {
	ns := env.Namespace(t)
	g, plain := newGateway(t, ns, "gw-0"), newGateway(t, ns, "web-0")
	delete(plain.pod.Labels, drainv1.GatewayLabel)
	if err := k8s.Update(context.Background(), plain.pod); err != nil {
		t.Fatal(err)
	}
	gated := newGateway(t, ns, "gw-gated", func(p *corev1.Pod) { // declared by its readiness gate alone
		delete(p.Labels, drainv1.GatewayLabel)
		p.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: drainv1.ReadinessGate}}
	})
	gwd := newGatewayDrain(t, ns, "d")
	got := waitFor(t, gwd, "started", func(d *observed) bool { return d.Status.StartedAt != nil })
	if len(got.Targets) != 2 || got.Targets[0].PodName != "gw-0" || got.Targets[1].PodName != "gw-gated" || got.Status.NotGateways != 1 {
		t.Errorf("targets %+v, notGateways %d: want gw-0 and gw-gated, and one skipped", got.Targets, got.Status.NotGateways)
	}
	waitEvent(t, gwd, "NotGateways")
	g.waitHonoured(true)
	gated.waitHonoured(true)
	if plain.marker() != nil {
		t.Errorf("a pod that is not a gateway got a marker: %s", plain.marker())
	}

	// Only pods that are not gateways: nothing to drain, and it says why.
	ns2 := env.Namespace(t)
	other := newGateway(t, ns2, "web-0")
	delete(other.pod.Labels, drainv1.GatewayLabel)
	if err := k8s.Update(context.Background(), other.pod); err != nil {
		t.Fatal(err)
	}
	none := newGatewayDrain(t, ns2, "d")
	got = waitFor(t, none, "stalled", condition(drainv1.ConditionStalled, metav1.ConditionTrue, drainv1.ReasonNoTargets))
	if c := metaCondition(got, drainv1.ConditionStalled); !strings.Contains(c.Message, "1 matching pods do not declare themselves gateways") {
		t.Errorf("NoTargets message %q does not say why", c.Message)
	}
}
