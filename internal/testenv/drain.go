package testenv

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/controllers/gatewaydrain"
)

// Drain is a GatewayDrain as the tests observe it: the object, then the
// targets its TargetSlices hold. The status counts what the slices hold a
// moment after they change: a test that wants both to agree waits for both.
type Drain struct {
	*drainv1.GatewayDrain
	Targets []drainv1.Target
}

// GetDrain reads a GatewayDrain and its targets.
func GetDrain(ctx context.Context, c client.Reader, key client.ObjectKey) (*Drain, error) {
	gwd := &drainv1.GatewayDrain{}
	if err := c.Get(ctx, key, gwd); err != nil {
		return nil, err
	}
	targets, err := gatewaydrain.ListTargets(ctx, c, gwd)
	return &Drain{gwd, targets}, err
}

// Target is the pod's entry among the targets, or an empty one.
func (d *Drain) Target(pod string) drainv1.Target {
	for _, t := range d.Targets {
		if t.PodName == pod {
			return t
		}
	}
	return drainv1.Target{}
}
