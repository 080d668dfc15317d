// Package orphans removes drain markers whose GatewayDrain no longer
// exists. A deleted drain lets go of its markers after --release-timeout
// even if it could not remove them, older gateways never expire a marker,
// and under shareProcessNamespace a container restart keeps the epoch: such
// a marker would hold its gateway forever. Every read of a gateway checks
// the marker it found (Check), and a low-rate sweep reads the gateways that
// nothing else reads (Sweep).
package orphans

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/internal/options"
	"github.com/hermes-agent/hermes-drain-operator/internal/transport"
)

// Options say how often the sweep runs, and how long one pod may hold it.
type Options struct {
	// SweepInterval is how often every gateway pod nothing else reads is
	// read once.
	SweepInterval time.Duration
	// ReadTimeout bounds the sweep's read of one pod: pods that never
	// answer cannot push a sweep past its interval.
	ReadTimeout time.Duration
}

// DefaultOptions are the operator's defaults.
func DefaultOptions() Options {
	return Options{SweepInterval: 10 * time.Minute, ReadTimeout: 5 * time.Second}
}

// BindFlags binds the options to their command-line flags.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.DurationVar(&o.SweepInterval, "orphan-sweep-interval", o.SweepInterval, "how often gateway pods without the readiness gate are read once to remove markers whose GatewayDrain no longer exists")
	fs.DurationVar(&o.ReadTimeout, "orphan-sweep-read-timeout", o.ReadTimeout, "bound on the sweep's read of one gateway")
}

// Validate refuses options the sweep cannot work with, naming the flag.
func (o Options) Validate() error {
	return errors.Join(options.PositiveDuration("--orphan-sweep-interval", o.SweepInterval),
		options.PositiveDuration("--orphan-sweep-read-timeout", o.ReadTimeout))
}

// sweepConcurrency is how many pods the sweep reads at once: 10,000 pods
// through pods/exec (about 0.3 s each) fit in a few minutes.
const sweepConcurrency = 8

// maxSweepErrors bounds the errors a sweep reports (and logs).
const maxSweepErrors = 10

// Remover finds and removes orphaned markers.
type Remover struct {
	// Cache is the manager's cache; API reads the API server directly, to
	// confirm that a drain the cache does not hold is really gone.
	Cache, API client.Reader
	Transport  transport.Transport
	Recorder   events.EventRecorder
	Options
}

// +kubebuilder:rbac:groups=drain.hermes.dev,resources=gatewaydrains,verbs=get

// Check removes the marker obs found in the gateway at target if an operator
// wrote it for a GatewayDrain of the pod's namespace that no longer exists.
// regarding is what the event is about. Any other marker is left alone.
func (r *Remover) Check(ctx context.Context, regarding runtime.Object, target calls.Pod, home string, obs calls.Observation) error {
	if obs.Marker.State != calls.FilePresent {
		return nil
	}
	o, ours := marker.Parse(obs.Marker.Data).Origin()
	if !ours {
		return nil
	}
	ns, name, _ := strings.Cut(o.GatewayDrain, "/")
	if ns != target.Namespace || name == "" {
		return nil // not a drain of this namespace: not ours to judge
	}
	if exists, err := r.drainExists(ctx, client.ObjectKey{Namespace: ns, Name: name}, o.GatewayDrainUID); err != nil || exists {
		return err
	}
	cleared, err := r.Transport.Clear(ctx, target, home, o.GatewayDrainUID)
	if err != nil {
		return fmt.Errorf("removing the orphaned marker of GatewayDrain %s: %w", o.GatewayDrain, err)
	}
	if cleared.Outcome == calls.Cleared {
		orphansRemoved.Inc()
		r.Recorder.Eventf(regarding, nil, corev1.EventTypeNormal, "OrphanedMarkerRemoved", "RemoveMarker",
			"%s: removed the marker of GatewayDrain %s (uid %s), which no longer exists", target, o.GatewayDrain, o.GatewayDrainUID)
	}
	return nil
}

// drainExists reports whether the GatewayDrain at key with this UID exists.
// The cache answers yes; a no is confirmed with the API server, since the
// cache may not have seen a drain created a moment ago.
func (r *Remover) drainExists(ctx context.Context, key client.ObjectKey, uid string) (bool, error) {
	for _, c := range []client.Reader{r.Cache, r.API} {
		gwd := &drainv1.GatewayDrain{}
		err := c.Get(ctx, key, gwd)
		if err == nil && string(gwd.UID) == uid {
			return true, nil
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return false, err
		}
	}
	return false, nil
}

// Start sweeps every SweepInterval until ctx ends (a manager Runnable: it
// runs on the leader only).
func (r *Remover) Start(ctx context.Context) error {
	tick := time.NewTicker(r.SweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if err := r.Sweep(ctx); err != nil {
				log.FromContext(ctx).Error(err, "sweeping orphaned markers")
			}
		}
	}
}

// Sweep reads every running gateway pod that declares no readiness gate
// (the readiness reconciler reads those), a few at a time and each within
// ReadTimeout, and removes an orphaned marker it finds.
func (r *Remover) Sweep(ctx context.Context) error {
	var pods corev1.PodList
	if err := r.Cache.List(ctx, &pods, client.UnsafeDisableDeepCopy); err != nil {
		return err
	}
	var mu sync.Mutex
	var errs []error
	failed := 0
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(sweepConcurrency)
	for i := range pods.Items {
		pod := &pods.Items[i]
		target, home, err := gatewaypod.Locate(pod, "", "")
		if !gatewaypod.IsGateway(pod) || gatewaypod.Gated(pod) || !gatewaypod.Running(pod, target.Container) {
			continue
		}
		if err != nil {
			continue // never sent to the pod
		}
		g.Go(func() error {
			readCtx, cancel := context.WithTimeout(gctx, r.ReadTimeout)
			obs, err := r.Transport.Read(readCtx, target, home)
			cancel()
			if err == nil {
				err = r.Check(gctx, pod, target, home, obs)
			}
			if err != nil {
				mu.Lock()
				if failed++; len(errs) < maxSweepErrors {
					errs = append(errs, fmt.Errorf("%s: %w", target, err))
				}
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	if failed > len(errs) {
		errs = append(errs, fmt.Errorf("and %d more pods", failed-len(errs)))
	}
	return errors.Join(errs...)
}
