package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"

	"github.com/hermes-agent/hermes-drain-operator/test/gatewaysim"
)

// StartWithGateways starts a cluster in a new temporary folder, with one
// gateway simulator (options simOpts; Homes is filled in) serving every
// gateway pod's folder, each gateway checking its marker every interval.
// stop ends the simulator and the cluster and removes the folder.
func StartWithGateways(ctx context.Context, opts Options, simOpts gatewaysim.Options, interval time.Duration) (c *Cluster, sim *gatewaysim.Sim, stop func(), err error) {
	dir, err := os.MkdirTemp("", "hermes-cluster-")
	if err != nil {
		return nil, nil, nil, err
	}
	if c, err = Start(ctx, dir, opts); err != nil {
		os.RemoveAll(dir)
		return nil, nil, nil, fmt.Errorf("local cluster: %w", err)
	}
	simCtx, cancel := context.WithCancel(ctx)
	simOpts.Homes = gatewaysim.Glob(filepath.Join(dir, "homes", "*", "*"))
	sim = gatewaysim.New(simOpts)
	done := make(chan struct{})
	go func() { sim.Run(simCtx, interval, nil); close(done) }()
	return c, sim, func() {
		cancel()
		<-done
		c.Stop()
		os.RemoveAll(dir)
	}, nil
}

// CreateGateways creates n running gateway pods gw-0 … gw-(n-1) in
// namespace, 16 at a time.
func (c *Cluster) CreateGateways(ctx context.Context, namespace string, n int, labels map[string]string, mutate ...func(*corev1.Pod)) ([]*Gateway, error) {
	gws := make([]*Gateway, n)
	for i := range gws {
		gws[i] = c.Gateway(namespace, fmt.Sprintf("gw-%d", i), labels)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, gw := range gws {
		g.Go(func() error { return gw.Create(ctx, mutate...) })
	}
	return gws, g.Wait()
}
