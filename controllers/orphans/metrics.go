package orphans

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

var orphansRemoved = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "hermes_drain_orphaned_markers_removed_total",
	Help: "Markers removed because the GatewayDrain that wrote them no longer exists.",
})

func init() { ctrlmetrics.Registry.MustRegister(orphansRemoved) }
