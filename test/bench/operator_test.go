package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/test/cluster"
)

var gatewayLabels = map[string]string{"app": "hermes-gateway"}

// operatorRun is one drain by the operator, from the GatewayDrain's
// creation.
type operatorRun struct {
	markers  time.Duration // until every marker is on disk
	drained  time.Duration // until Drained is True
	requests apiRequests   // API requests from creation to Drained
	cpu      cpuSample     // CPU used from creation to Drained
}

// operatorDrain creates a GatewayDrain over gws, measures it, then deletes
// it and waits until every marker is gone.
func operatorDrain(ctx context.Context, kube kubernetes.Interface, gws []*cluster.Gateway) (operatorRun, error) {
	ns := gws[0].Namespace
	var run operatorRun
	wc, err := client.NewWithWatch(lc.Config, client.Options{Scheme: lc.Client.Scheme()})
	if err != nil {
		return run, err
	}
	w, err := wc.Watch(ctx, &drainv1.GatewayDrainList{}, client.InNamespace(ns))
	if err != nil {
		return run, err
	}
	defer w.Stop()
	before, err := scrapeAPIRequests(ctx, kube)
	if err != nil {
		return run, err
	}
	cpuBefore := sampleCPU()

	gwd := &drainv1.GatewayDrain{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bench"}}
	gwd.Spec.Selector.MatchLabels = gatewayLabels
	start := time.Now()
	if err := lc.Client.Create(ctx, gwd); err != nil {
		return run, err
	}
	// The watch reports Drained (and the API's count at that moment) while
	// the files are polled for the markers.
	type drainedAt struct {
		after    time.Duration
		requests apiRequests
		cpu      cpuSample
		err      error
	}
	drained := make(chan drainedAt, 1)
	go func() {
		for ev := range w.ResultChan() {
			if got, ok := ev.Object.(*drainv1.GatewayDrain); ok && meta.IsStatusConditionTrue(got.Status.Conditions, drainv1.ConditionDrained) {
				after, cpu := time.Since(start), sampleCPU().since(cpuBefore)
				now, err := scrapeAPIRequests(ctx, kube)
				drained <- drainedAt{after, now.since(before), cpu, err}
				return
			}
		}
		drained <- drainedAt{err: fmt.Errorf("the watch ended before Drained")}
	}()
	bound := boundFor(len(gws))
	if run.markers, err = waitMarkers(ctx, gws, start); err != nil {
		return run, err
	}
	select {
	case d := <-drained:
		if d.err != nil {
			return run, d.err
		}
		run.drained, run.requests, run.cpu = d.after, d.requests, d.cpu
	case <-time.After(bound):
		return run, fmt.Errorf("not Drained after %s", bound)
	}
	for _, g := range gws {
		if err := g.CheckMarkerOf(ctx, gwd.UID); err != nil {
			return run, err
		}
	}
	return run, deleteDrain(ctx, gwd, gws)
}

// deleteDrain deletes the GatewayDrain and waits until it is gone, which
// is after it has removed every marker.
func deleteDrain(ctx context.Context, gwd *drainv1.GatewayDrain, gws []*cluster.Gateway) error {
	if err := lc.Client.Delete(ctx, gwd); err != nil {
		return err
	}
	if err := poll(ctx, boundFor(len(gws)), "the GatewayDrain to be gone", func() bool {
		return apierrors.IsNotFound(lc.Client.Get(ctx, client.ObjectKeyFromObject(gwd), &drainv1.GatewayDrain{}))
	}); err != nil {
		return err
	}
	if n := markersPresent(gws); n > 0 {
		return fmt.Errorf("%d markers left after the drain was deleted", n)
	}
	return nil
}

// waitMarkers polls the pods' folders until every marker is there and
// returns the time since start. It looks again only where none was found:
// 10,000 folders read every 50 ms would cost the machine more than the
// drain it measures.
func waitMarkers(ctx context.Context, gws []*cluster.Gateway, start time.Time) (time.Duration, error) {
	pending := slices.Clone(gws)
	err := poll(ctx, boundFor(len(gws)), "every marker", func() bool {
		pending = slices.DeleteFunc(pending, func(g *cluster.Gateway) bool { return g.Marker() != nil })
		return len(pending) == 0
	})
	if err != nil {
		err = fmt.Errorf("%w (%d of %d written)", err, len(gws)-len(pending), len(gws))
	}
	return time.Since(start), err
}

// boundFor is how long a drain of n gateways may take at one step (every
// marker, Drained, gone) before the run fails: 10 minutes, or 200 ms a
// gateway (through exec at about 17 calls a second, 10,000 gateways need
// about 10 minutes for their markers alone).
func boundFor(n int) time.Duration {
	return max(10*time.Minute, time.Duration(n)*200*time.Millisecond)
}

func markersPresent(gws []*cluster.Gateway) int {
	n := 0
	for _, g := range gws {
		if _, err := os.Stat(filepath.Join(g.Home, marker.Filename)); err == nil {
			n++
		}
	}
	return n
}

// clearMarkers removes the baselines' markers, as their users would have to.
func clearMarkers(gws []*cluster.Gateway) error {
	for _, g := range gws {
		if err := os.Remove(filepath.Join(g.Home, marker.Filename)); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}

// poll checks done every 50 ms until it holds or timeout passes.
func poll(ctx context.Context, timeout time.Duration, what string, done func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for !done() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}
