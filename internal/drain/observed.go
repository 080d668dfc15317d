package drain

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
)

// Observed is a GatewayDrain as a reader sees it: the object, then the
// moment after they change: a reader that wants both to agree waits for both.
type Observed struct {
	*drainv1.GatewayDrain
	Targets []drainv1.Target
}

// Observe reads a GatewayDrain and its targets.
func Observe(ctx context.Context, c client.Reader, key client.ObjectKey) (*Observed, error) {
	gwd := &drainv1.GatewayDrain{}
	if err := c.Get(ctx, key, gwd); err != nil {
		return nil, err
	}
	targets, err := ListTargets(ctx, c, gwd)
	return &Observed{gwd, targets}, err
}

// Target is the pod's entry among the targets, or an empty one.
func (o *Observed) Target(pod string) drainv1.Target {
	for _, t := range o.Targets {
		if t.PodName == pod {
			return t
		}
	}
	return drainv1.Target{}
}
