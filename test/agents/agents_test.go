// Package agents drives the operator, with no pods/exec at all, through
// gateways' agents on the local simulated cluster: kwok gives pods IPs
// inside 127.0.0.0/8, and one process serves every pod's agent on its own
// pod IP with the agent's own server code (test/cluster's agent farm),
// authenticated with tokens the API server issued.
package agents

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
	"github.com/hermes-agent/hermes-drain-operator/test/cluster"
	"github.com/hermes-agent/hermes-drain-operator/test/gatewaysim"
)

const operator = "hermes-drain-system/operator"

var (
	lc  *cluster.Cluster
	mgr *cluster.Manager
)

// fleetSize is AGENTS_N, 20 by default: how many gateways the test drains
// (the benchmark measures large fleets; this can check one by hand).
func fleetSize() int {
	if n, err := strconv.Atoi(os.Getenv("AGENTS_N")); err == nil && n > 0 {
		return n
	}
	return 20
}

func TestMain(m *testing.M) {
	cluster.ServeAgentFarmIfAsked() // a shard of the agent farm: serves, then exits
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx := context.Background()
	var stop func()
	var err error
	if lc, _, stop, err = cluster.StartWithGateways(ctx, cluster.Options{PodCIDR: "127.1.0.0/16"}, gatewaysim.Options{TurnDuration: time.Second}, 100*time.Millisecond); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stop()
	if err := lc.OperatorAccount(ctx, "hermes-drain-system", "operator"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	bin, err := cluster.Build(lc.Dir, "./cmd/manager")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// AGENTS_MANAGER_FLAGS adds flags, for a look inside by hand (say
	// --pprof-bind-address=127.0.0.1:6060).
	args := append([]string{"--exec=false", "--agent-account=hermes-drain-system/operator", "--poll-interval=200ms", "--idle-poll-interval=1s"},
		strings.Fields(os.Getenv("AGENTS_MANAGER_FLAGS"))...)
	// AGENTS_MANAGER_GOMEMLIMIT is the manager's GOMEMLIMIT (the chart
	// sets it to the container's memory limit); only the manager gets it.
	limit := os.Getenv("AGENTS_MANAGER_GOMEMLIMIT")
	if limit != "" {
		os.Setenv("GOMEMLIMIT", limit)
	}
	mgr, err = lc.StartManager(bin, "manager", lc.Kubeconfig, args...)
	if limit != "" {
		os.Unsetenv("GOMEMLIMIT") // the agent farm, started by the tests, must not inherit it
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return mgr.RunTests(m)
}

// An operator with no pods/exec drains gateways through their agents, each
// marker stamped with the gateway's epoch, and cancel clears them.
func TestDrainThroughAgentsWithoutExec(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := testenv.CreateNamespace(t, lc.Client)
	gws, err := lc.CreateGateways(ctx, ns, fleetSize(), map[string]string{"app": "hermes-gateway"}, cluster.WithAgent)
	if err != nil {
		t.Fatal(err)
	}
	stopAgents, err := lc.ServeAgents(ctx, operator, gws, cluster.FarmOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer stopAgents()
	gwd := &drainv1.GatewayDrain{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "d"}}
	gwd.Spec.Selector.MatchLabels = map[string]string{"app": "hermes-gateway"}
	start := time.Now()
	if err := lc.Client.Create(ctx, gwd); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Minute, func() (bool, string) {
		n := 0
		for _, g := range gws {
			if g.Marker() != nil {
				n++
			}
		}
		return n == len(gws), fmt.Sprintf("%d of %d markers", n, len(gws))
	})
	markers := time.Since(start)
	testenv.Eventually(t, 5*time.Minute, func() (bool, string) {
		_ = lc.Client.Get(ctx, client.ObjectKeyFromObject(gwd), gwd)
		c := meta.FindStatusCondition(gwd.Status.Conditions, drainv1.ConditionDrained)
		return c != nil && c.Status == metav1.ConditionTrue, fmt.Sprintf("not Drained: %+v", c)
	})
	mem, err := mgr.Memory()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d gateways through agents: every marker after %s, Drained after %s; manager peak RSS %d MiB",
		len(gws), markers.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), mem.Peak>>20)
	for _, g := range gws {
		if found := marker.Parse(g.Marker()); !found.Honoured(marker.ProcEpoch("/proc"), time.Now()) {
			t.Errorf("%s: marker %s not honoured by its gateway", g.Name, g.Marker())
		}
	}
	patch := client.MergeFrom(gwd.DeepCopy())
	gwd.Spec.Action = drainv1.ActionCancel
	if err := lc.Client.Patch(ctx, gwd, patch); err != nil {
		t.Fatal(err)
	}
	for _, g := range gws {
		testenv.Eventually(t, time.Minute, func() (bool, string) {
			st, err := gatewaysim.ReadState(g.Home)
			return g.Marker() == nil && err == nil && st.State == marker.StateRunning, fmt.Sprintf("%s still held: %s %+v", g.Name, g.Marker(), st)
		})
	}
}
