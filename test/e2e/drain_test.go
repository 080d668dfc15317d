package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
	"github.com/hermes-agent/hermes-drain-operator/test/gatewaysim"
)

func TestDrainFiveGatewaysWithTurnsInFlightThenCancel(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	gws := gateways(t, ns, 5, 2)
	for _, g := range gws {
		testenv.Eventually(t, wait, func() (bool, string) {
			st, err := gatewaysim.ReadState(g.Home)
			return err == nil && st.ActiveAgents == 2, "turns not in flight yet"
		})
	}
	apply(t, ns, "upgrade")

	for _, g := range gws {
		testenv.Eventually(t, wait, func() (bool, string) {
			m := g.Marker()
			return m != nil && marker.Parse(m).EpochValue() == sim.Epoch(), g.Name + ": no marker with the native epoch: " + string(m)
		})
		waitSim(t, g, marker.StateDraining)
	}
	// Before the turns finish, status shows them in flight.
	waitDrain(t, ns, "upgrade", "active agents visible", func(d *drain.Observed) bool {
		tg := d.Target("gw-0")
		return tg.GatewayState == marker.StateDraining && tg.ActiveAgents != nil && *tg.ActiveAgents > 0
	})

	start := time.Now()
	kubectlWait(t, ns, "upgrade", "Drained", "60s")
	t.Logf("kubectl wait returned after %s", time.Since(start).Round(time.Millisecond))
	for _, g := range gws {
		st, err := gatewaysim.ReadState(g.Home)
		if err != nil || !st.DrainComplete() {
			t.Errorf("%s: Drained while the gateway reports %+v (%v)", g.Name, st, err)
		}
	}
	got := getDrain(t, ns, "upgrade")
	for _, tg := range got.Targets {
		if tg.State != drainv1.TargetDrained || tg.GatewayState != marker.StateDraining || tg.ActiveAgents == nil || *tg.ActiveAgents != 0 {
			t.Errorf("target %+v", tg)
		}
	}
	if out := mustKubectl(t, "-n", ns, "get", "gwd", "upgrade"); !strings.Contains(out, "5/5") || !strings.Contains(out, "Drained") {
		t.Errorf("kubectl get shows:\n%s", out)
	}

	cancelDrain(t, ns, "upgrade")
	kubectlWait(t, ns, "upgrade", "Ready", "60s")
	waitReleased(t, gws, "cancel")
}

func TestDeleteWithFinalizerReleases(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	gws := gateways(t, ns, 2, 0)
	apply(t, ns, "d")
	kubectlWait(t, ns, "d", "Drained", "60s")
	mustKubectl(t, "-n", ns, "delete", "gwd", "d", "--timeout=60s")
	waitReleased(t, gws, "delete")
}

// The shortest timeout the API allows is a minute: this test takes that long.
func TestDeadlineReleases(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	gws := gateways(t, ns, 2, 0)
	apply(t, ns, "d", "timeout: 1m")
	kubectlWait(t, ns, "d", "Drained", "60s")
	kubectlWait(t, ns, "d", "Stalled", "120s")
	got := getDrain(t, ns, "d")
	if r := conditionReason(got.GatewayDrain, drainv1.ConditionDrained); r != "False/"+drainv1.ReasonDeadlineExceeded {
		t.Errorf("Drained is %s", r)
	}
	waitDrain(t, ns, "d", "released", func(d *drain.Observed) bool { return d.Status.Counts.Released == 2 })
	waitReleased(t, gws, "the deadline")
}

// Until the drain is first Drained, a pod recreated under a target's name
// (a new instantiation that would serve turns) is drained too.
func TestRecreatedPodMidDrainIsDrainedToo(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	gws := gateways(t, ns, 2, 0)
	if err := gatewaysim.AddTurns(gws[1].Home, 3); err != nil { // keeps the drain going
		t.Fatal(err)
	}
	apply(t, ns, "d")
	waitSim(t, gws[0], marker.StateDraining)
	oldUID := waitDrain(t, ns, "d", "gw-0 drained", func(d *drain.Observed) bool {
		return d.Target("gw-0").State == drainv1.TargetDrained
	}).Target("gw-0").PodUID

	if err := gws[0].Recreate(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := waitDrain(t, ns, "d", "gw-0's new instantiation drained", func(d *drain.Observed) bool {
		tg := d.Target("gw-0")
		return tg.PodUID != oldUID && tg.AddedAt != nil && tg.State == drainv1.TargetDrained
	})
	if o, ok := marker.Parse(gws[0].Marker()).Origin(); !ok || o.PodUID != string(got.Target("gw-0").PodUID) {
		t.Errorf("the marker is not the new instantiation's: %s", gws[0].Marker())
	}
	kubectlWait(t, ns, "d", "Drained", "60s")
}

func TestContainerRestartEndsItsDrain(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	gws := gateways(t, ns, 1, 0)
	apply(t, ns, "d")
	kubectlWait(t, ns, "d", "Drained", "60s")
	if err := gws[0].RestartContainer(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitDrain(t, ns, "d", "restarted", func(d *drain.Observed) bool {
		tg := d.Target("gw-0")
		return tg.State == drainv1.TargetRestarted && tg.MarkerRemovedAt != nil
	})
	if m := gws[0].Marker(); m != nil {
		t.Errorf("marker left on the restarted container: %s", m)
	}
	waitSim(t, gws[0], marker.StateRunning)
}

func TestForeignMarkerIsNeverRemoved(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	gws := gateways(t, ns, 2, 0)
	dashboard := `{"action": "drain", "requested_at": "` + time.Now().UTC().Format(marker.TimeLayout) + `", "principal": "ops@dashboard", "epoch": "` + sim.Epoch() + `"}`
	if err := os.WriteFile(filepath.Join(gws[0].Home, marker.Filename), []byte(dashboard), 0o644); err != nil {
		t.Fatal(err)
	}
	apply(t, ns, "d")
	got := waitDrain(t, ns, "d", "conflict", func(d *drain.Observed) bool { return d.Target("gw-0").State == drainv1.TargetConflict })
	if msg := got.Target("gw-0").Message; !strings.Contains(msg, "ops@dashboard") {
		t.Errorf("conflict message %q", msg)
	}
	cancelDrain(t, ns, "d")
	kubectlWait(t, ns, "d", "Ready", "60s")
	if m := gws[0].Marker(); string(m) != dashboard {
		t.Errorf("the dashboard's marker changed: %q", m)
	}
	if m := gws[1].Marker(); m != nil {
		t.Errorf("our marker survived: %s", m)
	}
}

func TestBrokenExecFailsThatTargetOnlyAndRecovers(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	gws := gateways(t, ns, 3, 0)
	ctx := context.Background()
	// gw-0: no kwok Exec rule (exec is refused); gw-1: its folder is gone.
	rule := &unstructured.Unstructured{}
	rule.SetAPIVersion("kwok.x-k8s.io/v1alpha1")
	rule.SetKind("Exec")
	rule.SetNamespace(ns)
	rule.SetName("gw-0")
	if err := k8s.Delete(ctx, rule); err != nil {
		t.Fatal(err)
	}
	// The simulator may be writing its state file into it meanwhile.
	testenv.Eventually(t, wait, func() (bool, string) {
		err := os.RemoveAll(gws[1].Home)
		return err == nil, fmt.Sprintf("removing gw-1's folder: %v", err)
	})
	apply(t, ns, "d")
	got := waitDrain(t, ns, "d", "two failed, one drained", func(d *drain.Observed) bool {
		return d.Target("gw-0").State == drainv1.TargetFailed && d.Target("gw-1").State == drainv1.TargetFailed &&
			d.Target("gw-2").State == drainv1.TargetDrained
	})
	for _, pod := range []string{"gw-0", "gw-1"} {
		if msg := got.Target(pod).Message; msg == "" {
			t.Errorf("%s failed without a message", pod)
		} else {
			t.Logf("%s: %s", pod, msg)
		}
	}
	if !strings.Contains(conditionReason(got.GatewayDrain, drainv1.ConditionDrained), "False") {
		t.Errorf("Drained with failed targets")
	}

	// Fix both pods: the drain recovers.
	if err := gws[0].Create(ctx); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("recreating the Exec rule through Create: %v", err)
	}
	if err := os.MkdirAll(gws[1].Home, 0o755); err != nil {
		t.Fatal(err)
	}
	kubectlWait(t, ns, "d", "Drained", "60s")
}

func TestHostileValuesLandByteExactAndNeverExecute(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	// A pod that does not declare its HERMES_HOME: spec.hermesHome names it.
	if _, err := lc.CreateGateways(context.Background(), ns, 1, gatewayLabels, func(p *corev1.Pod) { p.Spec.Containers[0].Env = nil }); err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	canary := filepath.Join(base, "executed")
	home := filepath.Join(base, `home with spaces 'single' "double" $HOME $(touch `+canary+`) `+"`touch "+canary+"`")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	principal := `release "bot" 'x' $(touch ` + canary + `) ` + "`touch " + canary + "`" + ` ; # \ %s`
	gwd := &drainv1.GatewayDrain{}
	gwd.Namespace, gwd.Name = ns, "hostile"
	gwd.Spec.Selector.MatchLabels = gatewayLabels
	gwd.Spec.HermesHome, gwd.Spec.Principal = home, principal
	if err := k8s.Create(context.Background(), gwd); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, func() (bool, string) {
		_, err := os.Stat(filepath.Join(home, marker.Filename))
		return err == nil, "no marker in the hostile home"
	})
	raw, _ := os.ReadFile(filepath.Join(home, marker.Filename))
	if got := marker.Parse(raw).Principal(); got != principal {
		t.Errorf("principal %q, want %q", got, principal)
	}
	if _, err := os.Stat(canary); err == nil {
		t.Fatal("a hostile value was executed")
	}
}
