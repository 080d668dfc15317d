package transport

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
)

// Every call into a container, by transport (exec: program.sh through a
// runner; agent: the pod's hermes-drain-agent), operation (project, clear,
// read) and result: the outcome (written, refreshed, replaced, cleared,
// absent, foreign, read) or the kind of failure (transport: the runner or
// the agent's connection failed, or the agent refused us; output: the
// report was unreadable; container: the program or the agent reported an
// error; unauthenticated: the reply was not from the agent of that pod).
// Marker writes and clears are the project and clear outcomes.
var (
	callsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hermes_drain_transport_calls_total",
		Help: "Calls into gateway containers, by transport, operation and result (outcome or failure kind).",
	}, []string{"transport", "op", "result"})
	callSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "hermes_drain_transport_call_seconds",
		Help:    "Latency of calls into gateway containers, by transport and operation.",
		Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
	}, []string{"transport", "op"})
)

func init() {
	metrics.Registry.MustRegister(callsTotal, callSeconds)
}

// countCall records a call through transport that started at start, with
// its outcome, or its failure's kind. Deferred at the call's start, it
// reads what the call returns.
func countCall(transport string, op calls.Op, start time.Time, obs *calls.Observation, err *error) {
	result := string(obs.Outcome)
	if *err != nil {
		result = string(calls.KindOf(*err))
	}
	callSeconds.WithLabelValues(transport, string(op)).Observe(time.Since(start).Seconds())
	callsTotal.WithLabelValues(transport, string(op), result).Inc()
}
