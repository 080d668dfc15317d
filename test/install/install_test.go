// Package install installs the Helm chart onto the local simulated cluster
// and runs the operator binary with exactly the chart's RBAC (impersonating
// the chart's ServiceAccount): a drain completes with those permissions, a
// missing permission shows as a clear per-target error, and with two
// replicas a killed leader is replaced mid-drain without losing a target.
package install

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
	"github.com/hermes-agent/hermes-drain-operator/test/cluster"
	"github.com/hermes-agent/hermes-drain-operator/test/gatewaysim"
)

const (
	release   = "hdo"
	systemNS  = "hermes-drain-system"
	chartSA   = "hdo-hermes-drain-operator"
	wait      = 90 * time.Second
	leaseName = "hermes-drain-operator.drain.hermes.dev"
)

var (
	lc      *cluster.Cluster
	k8s     client.Client
	manager string // the built operator binary
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	var stop func()
	var err error
	if lc, _, stop, err = cluster.StartWithGateways(context.Background(), cluster.Options{WithoutOperatorCRDs: true}, gatewaysim.Options{TurnDuration: 3 * time.Second}, 100*time.Millisecond); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stop()
	k8s = lc.Client
	if manager, err = cluster.Build(lc.Dir, "./cmd/manager"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func cli(t *testing.T, tool string, args ...string) string {
	t.Helper()
	out, err := lc.Run(tool, args...)
	if err != nil {
		// What the cluster says about it, for the reader of a failure.
		state, _ := lc.Run("kubectl", "get", "events,pods", "-A")
		t.Fatalf("%v\n%s\n%s", err, out, state)
	}
	return out
}

var chart = filepath.Join(cluster.RepoRoot(), "charts", "hermes-drain-operator")

// The tests share one installation and run in order.
func TestInstallDrainWithChartRBACAndFailover(t *testing.T) {
	t.Run("helm install --wait", func(t *testing.T) {
		cli(t, "helm", "install", release, chart, "-n", systemNS, "--create-namespace", "--wait", "--timeout", "120s")
		testenv.Eventually(t, wait, func() (bool, string) {
			var list drainv1.GatewayDrainList
			err := k8s.List(context.Background(), &list)
			return err == nil, fmt.Sprintf("the CRD is not served: %v", err)
		})
	})
	t.Run("helm upgrade --wait", func(t *testing.T) {
		cli(t, "helm", "upgrade", release, chart, "-n", systemNS, "--wait", "--timeout", "120s", "--set", "logging.level=debug", "--set", "replicaCount=2")
		out := cli(t, "kubectl", "-n", systemNS, "get", "deployment", "hdo-hermes-drain-operator", "-o", "jsonpath={.status.readyReplicas} {.spec.template.spec.containers[0].args}")
		if !strings.HasPrefix(out, "2 ") || !strings.Contains(out, "--zap-log-level=debug") {
			t.Fatalf("after the upgrade: %s", out)
		}
		cli(t, "kubectl", "-n", systemNS, "get", "pdb", "hdo-hermes-drain-operator")
	})
	t.Run("missing pods/exec is a clear per-target error", testMissingExecPermission)
	t.Run("the chart's RBAC drains, and a killed leader is replaced", testFailoverWithChartRBAC)
}

func gateways(t *testing.T, ns string, n, turns int) []*cluster.Gateway {
	t.Helper()
	if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	gs, err := lc.CreateGateways(context.Background(), ns, n, map[string]string{"app": "hermes-gateway"})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gs {
		if err := gatewaysim.AddTurns(g.Home, turns); err != nil {
			t.Fatal(err)
		}
	}
	return gs
}

func startDrain(t *testing.T, ns string) *drainv1.GatewayDrain {
	t.Helper()
	gwd := &drainv1.GatewayDrain{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "d"}}
	gwd.Spec.Selector.MatchLabels = map[string]string{"app": "hermes-gateway"}
	if err := k8s.Create(context.Background(), gwd); err != nil {
		t.Fatal(err)
	}
	return gwd
}

func waitDrain(t *testing.T, gwd *drainv1.GatewayDrain, what string, cond func(*drain.Observed) bool) *drain.Observed {
	t.Helper()
	var got *drain.Observed
	testenv.Eventually(t, wait, func() (bool, string) {
		var err error
		if got, err = drain.Observe(context.Background(), k8s, client.ObjectKeyFromObject(gwd)); err != nil {
			return false, err.Error()
		}
		return cond(got), fmt.Sprintf("%s; status %+v", what, got.Status)
	})
	return got
}

// testMissingExecPermission runs the manager as a ServiceAccount with the
// chart's rules minus pods/exec, in one namespace.
func testMissingExecPermission(t *testing.T) {
	ctx := context.Background()
	ns := "locked"
	gateways(t, ns, 1, 0)
	var role rbacv1.ClusterRole
	if err := k8s.Get(ctx, client.ObjectKey{Name: "hdo-hermes-drain-operator"}, &role); err != nil {
		t.Fatal(err)
	}
	noExec := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "no-exec"}}
	for _, r := range role.Rules {
		r.Resources = removeString(r.Resources, "pods/exec")
		if len(r.Resources) > 0 {
			noExec.Rules = append(noExec.Rules, r)
		}
	}
	for _, o := range []client.Object{
		noExec,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "no-exec"}},
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "no-exec"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "no-exec"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "no-exec", Namespace: ns}},
		},
	} {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	kubeconfig, err := lc.ImpersonatingKubeconfig(ns, "no-exec")
	if err != nil {
		t.Fatal(err)
	}
	m, err := lc.StartManager(manager, "manager-no-exec", kubeconfig, "--watch-namespaces="+ns, "--poll-interval=200ms")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	got := waitDrain(t, startDrain(t, ns), "Failed: forbidden", func(d *drain.Observed) bool {
		return len(d.Targets) == 1 && d.Targets[0].State == drainv1.TargetFailed
	})
	if msg := got.Targets[0].Message; !strings.Contains(msg, "forbidden") || !strings.Contains(msg, "pods/exec") {
		t.Errorf("the failure should name the missing permission: %q", msg)
	}
}

func removeString(s []string, v string) []string {
	var out []string
	for _, x := range s {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}

// testFailoverWithChartRBAC runs two managers as the chart's ServiceAccount
// with leader election, kills the leader mid-drain and checks the drain
// completes with every target, each marker written for its own instantiation.
func testFailoverWithChartRBAC(t *testing.T) {
	ctx := context.Background()
	ns := "fleet"
	gws := gateways(t, ns, 6, 2)
	kubeconfig, err := lc.ImpersonatingKubeconfig(systemNS, chartSA)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--leader-elect", "--leader-election-namespace=" + systemNS, "--leader-elect-lease-duration=3s",
		"--leader-elect-renew-deadline=2s", "--leader-elect-retry-period=500ms", "--poll-interval=200ms"}
	first, err := lc.StartManager(manager, "manager-a", kubeconfig, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Stop()
	leader := func() string {
		var lease coordinationv1.Lease
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: leaseName}, &lease); err != nil || lease.Spec.HolderIdentity == nil {
			return ""
		}
		return *lease.Spec.HolderIdentity
	}
	testenv.Eventually(t, wait, func() (bool, string) { return leader() != "", "no leader" })
	firstLeader := leader()
	second, err := lc.StartManager(manager, "manager-b", kubeconfig, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Stop()

	gwd := startDrain(t, ns)
	waitDrain(t, gwd, "some markers written", func(d *drain.Observed) bool {
		return d.Status.Counts.Draining+d.Status.Counts.Drained > 0
	})
	first.Kill()
	killedAt := time.Now()
	testenv.Eventually(t, wait, func() (bool, string) {
		return leader() != "" && leader() != firstLeader, "no new leader after " + time.Since(killedAt).String()
	})
	t.Logf("new leader %s after %s", leader(), time.Since(killedAt).Round(time.Millisecond))

	got := waitDrain(t, gwd, "Drained", func(d *drain.Observed) bool {
		return meta.IsStatusConditionTrue(d.Status.Conditions, drainv1.ConditionDrained)
	})
	if len(got.Targets) != len(gws) || got.Status.Counts.Drained != int32(len(gws)) {
		t.Errorf("targets lost or not drained: %+v", got.Status.Counts)
	}
	for _, g := range gws {
		if err := g.CheckMarkerOf(ctx, got.UID); err != nil {
			t.Error(err)
		}
	}
}
