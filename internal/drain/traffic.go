package drain

import (
	"context"

	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
)

// EndpointPodIndex finds the EndpointSlices that list a pod (by name).
const EndpointPodIndex = "endpointPod"

// LeavesTrafficFirst reports whether the drain takes a gated target out of
// its Services before writing its marker (spec.trafficOrder).
func LeavesTrafficFirst(gwd *drainv1.GatewayDrain) bool {
	return gwd.Spec.TrafficOrder != drainv1.TrafficMarkerFirst
}

// EndpointPods names the pods an EndpointSlice lists, for EndpointPodIndex.
func EndpointPods(o client.Object) []string {
	var names []string
	for _, e := range o.(*discoveryv1.EndpointSlice).Endpoints {
		if e.TargetRef != nil && e.TargetRef.Kind == "Pod" {
			names = append(names, e.TargetRef.Name)
		}
	}
	return names
}

// SetupIndexes registers the cache index both reconcilers find a pod's
// TargetSlices by. It is called once, before either is set up: without it
// every lookup fails, and the readiness reconciler would poll every gated
// pod every second instead of waiting for its drain.
// The drain reconciler also finds a pod's EndpointSlices by it.
func SetupIndexes(ctx context.Context, indexer client.FieldIndexer) error {
	err := indexer.IndexField(ctx, &drainv1.TargetSlice{}, SlicePodIndex, func(o client.Object) []string {
		var names []string
		for _, t := range o.(*drainv1.TargetSlice).Targets {
			names = append(names, t.PodName)
		}
		return names
	})
	if err != nil {
		return err
	}
	return indexer.IndexField(ctx, &discoveryv1.EndpointSlice{}, EndpointPodIndex, EndpointPods)
}
