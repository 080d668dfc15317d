package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/hermes-agent/hermes-drain-operator/test/gatewaysim"
)

// StartWithGateways starts a cluster in a new temporary folder, with one
// gateway simulator serving every gateway pod's folder (turns take
// turnDuration; each gateway checks its marker every interval). stop ends
// the simulator and the cluster and removes the folder.
func StartWithGateways(ctx context.Context, opts Options, turnDuration, interval time.Duration) (c *Cluster, sim *gatewaysim.Sim, stop func(), err error) {
	dir, err := os.MkdirTemp("", "hermes-cluster-")
	if err != nil {
		return nil, nil, nil, err
	}
	if c, err = Start(ctx, dir, opts); err != nil {
		os.RemoveAll(dir)
		return nil, nil, nil, fmt.Errorf("local cluster: %w", err)
	}
	simCtx, cancel := context.WithCancel(ctx)
	sim = gatewaysim.New(gatewaysim.Options{Homes: gatewaysim.Glob(filepath.Join(dir, "homes", "*", "*")), TurnDuration: turnDuration})
	done := make(chan struct{})
	go func() { sim.Run(simCtx, interval, nil); close(done) }()
	return c, sim, func() {
		cancel()
		<-done
		c.Stop()
		os.RemoveAll(dir)
	}, nil
}

// CreateGateways creates n running gateway pods gw-0 … gw-(n-1) in namespace.
func (c *Cluster) CreateGateways(ctx context.Context, namespace string, n int, labels map[string]string, mutate ...func(*corev1.Pod)) ([]*Gateway, error) {
	var gws []*Gateway
	for i := range n {
		g := c.Gateway(namespace, fmt.Sprintf("gw-%d", i), labels)
		if err := g.Create(ctx, mutate...); err != nil {
			return nil, err
		}
		gws = append(gws, g)
	}
	return gws, nil
}
