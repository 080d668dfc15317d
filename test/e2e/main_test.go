// Package e2e drives the real operator binary against the local simulated
// cluster (real API server, kwok pods, real pods/exec into per-pod folders),
// with gateway simulators serving every pod's HERMES_HOME, only through the
// Kubernetes API and kubectl, as a user would.
package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
	"github.com/hermes-agent/hermes-drain-operator/test/cluster"
	"github.com/hermes-agent/hermes-drain-operator/test/gatewaysim"
)

var (
	lc  *cluster.Cluster
	k8s client.Client
	sim *gatewaysim.Sim
	// pluginBin is the kubectl plugin, built as `make plugin` does.
	pluginBin string
)

// turnDuration is how long a simulated in-flight turn takes.
const turnDuration = 3 * time.Second

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	var stop func()
	var err error
	if lc, sim, stop, err = cluster.StartWithGateways(context.Background(), cluster.Options{PodCIDR: cluster.TurnsPodCIDR}, gatewaysim.Options{TurnDuration: turnDuration}, 100*time.Millisecond); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stop()
	k8s = lc.Client

	bin, err := cluster.Build(lc.Dir, "./cmd/manager")
	if err == nil {
		pluginBin, err = cluster.Build(lc.Dir, "./cmd/kubectl-hermes_drain")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mgr, err := lc.StartManager(bin, "manager", lc.Kubeconfig,
		"--poll-interval=200ms", "--idle-poll-interval=1s", "--release-timeout=5s")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return mgr.RunTests(m)
}

// kubectl runs the pinned kubectl against the cluster.
func kubectl(args ...string) (string, error) { return lc.Run("kubectl", args...) }

func namespace(t *testing.T) string {
	t.Helper()
	return testenv.CreateNamespace(t, k8s)
}
