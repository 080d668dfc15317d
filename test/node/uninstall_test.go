package node

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/controllers/podreadiness"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
	"github.com/hermes-agent/hermes-drain-operator/test/cluster"
)

// Uninstalling the operator strands no gateway. `helm uninstall` runs the
// chart's pre-delete hook from the operator's image: it deletes every
// GatewayDrain (the operator, still running, removes its marker), stops the
// operator, and turns True the gate it left False on a gateway that drains
// for someone else. Then the operator is installed again for what follows.
func TestUninstallingStrandsNoGateway(t *testing.T) {
	ctx := context.Background()
	ns := testenv.CreateNamespace(t, lc.Client)
	drained := gatewayPod(t, ns, "gw-drained", gated)
	dashboard := gatewayPod(t, ns, "gw-dashboard", gated, func(p *corev1.Pod) { p.Labels["app"] = "other" })
	waitReady(t, drained, true)
	waitReady(t, dashboard, true)
	drainAll(t, ns) // app=hermes-gateway: gw-drained
	waitReady(t, drained, false)
	// The dashboard drains the other gateway with a marker of its own.
	inside(t, dashboard, `printf '{"action":"drain","requested_at":"%s","principal":"dashboard"}' "$(date -u +%Y-%m-%dT%H:%M:%S+00:00)" > /opt/data/.drain_request.json`)
	waitReady(t, dashboard, false)

	start := time.Now()
	if out, err := lc.Run("helm", "uninstall", cluster.OperatorRelease, "-n", cluster.OperatorNamespace, "--wait", "--timeout", "240s"); err != nil {
		hook, _ := lc.Run("kubectl", "-n", cluster.OperatorNamespace, "logs", "job/"+cluster.OperatorRelease+"-hermes-drain-operator-uninstall")
		state, _ := lc.Run("kubectl", "get", "pods,jobs,gatewaydrains", "-A")
		t.Fatalf("helm uninstall: %v: %s\nthe hook's log:\n%s\n%s", err, out, hook, state)
	}
	t.Logf("helm uninstall with its pre-delete hook took %s", time.Since(start).Round(100*time.Millisecond))
	defer func() {
		if err := lc.InstallOperator(operatorValues); err != nil {
			t.Fatal(err)
		}
	}()

	var drains drainv1.GatewayDrainList
	if err := lc.Client.List(ctx, &drains); err != nil || len(drains.Items) != 0 {
		t.Errorf("GatewayDrains left after uninstalling: %d (%v)", len(drains.Items), err)
	}
	waitRunsFree(t, drained)
	waitReady(t, drained, true)
	waitReady(t, dashboard, true)
	if c := gatewaypod.GateCondition(dashboard); c.Reason != podreadiness.ReasonOperatorUninstalled {
		t.Errorf("the dashboard-drained gateway's gate %+v: want it released by the uninstall", c)
	}
	if out := inside(t, dashboard, "cat /opt/data/.drain_request.json"); !strings.Contains(out, "dashboard") {
		t.Errorf("someone else's marker was touched: %q", out)
	}
}
