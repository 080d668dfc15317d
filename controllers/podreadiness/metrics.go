package podreadiness

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	gateFlipSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "hermes_drain_readiness_gate_flip_seconds",
		Help:    "From the gateway writing a new state (its updated_at) to the readiness gate condition written with the flip.",
		Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60},
	})
	gateReads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hermes_drain_readiness_reads_total",
		Help: "Reads of gated gateways' state, by the gate reason they produced.",
	}, []string{"reason"})
)

func init() {
	metrics.Registry.MustRegister(gateFlipSeconds, gateReads)
}
