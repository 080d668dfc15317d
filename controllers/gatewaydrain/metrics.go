package gatewaydrain

import (
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
)

var (
	drainCondition = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "hermes_drain_gatewaydrain_condition",
		Help: "1 when the GatewayDrain's condition of this type has this status.",
	}, []string{"namespace", "name", "type", "status"})
	drainTargets = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "hermes_drain_gatewaydrain_targets",
		Help: "The GatewayDrain's targets by state.",
	}, []string{"namespace", "name", "state"})
	// The drain's age and whether it stands are what an alert on a drain
	// that is late needs: a drain's conditions alone cannot tell one still
	// draining from one being released after a cancel, and an age taken
	// from an alert's `for` would start again with every restart of the
	// operator.
	drainCreated = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "hermes_drain_gatewaydrain_created_timestamp_seconds",
		Help: "When the GatewayDrain was created, in seconds since the epoch.",
	}, []string{"namespace", "name"})
	drainStanding = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "hermes_drain_gatewaydrain_standing",
		Help: "1 while the GatewayDrain stands; 0 once it is cancelled, deleted or past its deadline.",
	}, []string{"namespace", "name"})
	drainSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "hermes_drain_gatewaydrain_drained_seconds",
		Help:    "From a GatewayDrain's creation to its Drained condition first turning True.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 14), // 1 s to about 2.3 h
	})
	// What users of a drain-and-replace see is each gateway's own refusal
	// window, from leaving traffic (or its marker) to its replacement
	// serving.
	refusalWindow = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "hermes_drain_refusal_window_seconds",
		Help:    "For each target a drain-and-replace replaced: from its gateway leaving traffic (or, without the readiness gate, its marker being written) to its replacement serving.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 12), // 1 s to about 34 min
	})
	evictions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hermes_drain_evictions_total",
		Help: "Evictions of drained targets' pods by a drain-and-replace, by result: evicted, refused (a PodDisruptionBudget), failed.",
	}, []string{"result"})
	markersLeft = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hermes_drain_markers_left_total",
		Help: "Targets whose marker a deleted GatewayDrain let go of without seeing it removed (--release-timeout passed without progress), by namespace.",
	}, []string{"namespace"})
)

func init() {
	metrics.Registry.MustRegister(drainCondition, drainTargets, drainCreated, drainStanding, drainSeconds, refusalWindow, evictions, markersLeft)
}

// targetStates are the states of a target, as the API enumerates them.
var targetStates = []drainv1.TargetState{
	drainv1.TargetWaiting, drainv1.TargetPending, drainv1.TargetLeavingTraffic, drainv1.TargetDraining, drainv1.TargetDrained,
	drainv1.TargetReplacing, drainv1.TargetReplaced, drainv1.TargetReleased, drainv1.TargetRestarted, drainv1.TargetConflict, drainv1.TargetMarkerRemoved, drainv1.TargetFailed,
}

// recordMetrics sets the drain's per-object series from its status.
func recordMetrics(d *view) {
	gwd := d.gwd
	for _, c := range gwd.Status.Conditions {
		for _, s := range []metav1.ConditionStatus{metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionUnknown} {
			drainCondition.WithLabelValues(gwd.Namespace, gwd.Name, c.Type, string(s)).Set(oneIf(c.Status == s))
		}
	}
	counts := gwd.Status.Counts
	for _, state := range targetStates {
		drainTargets.WithLabelValues(gwd.Namespace, gwd.Name, string(state)).Set(float64(*drain.CountOf(&counts, state)))
	}
	drainCreated.WithLabelValues(gwd.Namespace, gwd.Name).Set(float64(gwd.CreationTimestamp.Unix()))
	drainStanding.WithLabelValues(gwd.Namespace, gwd.Name).Set(oneIf(d.withdrawn == ""))
	// The namespace's counter is exported at 0 from its first drain on, so
	// that the first markers left there are an increase an alert can see.
	markersLeft.WithLabelValues(gwd.Namespace).Add(0)
}

func oneIf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// forgetMetrics removes a drain's per-object series once it is gone.
func forgetMetrics(namespace, name string) {
	labels := prometheus.Labels{"namespace": namespace, "name": name}
	drainCondition.DeletePartialMatch(labels)
	drainTargets.DeletePartialMatch(labels)
	drainCreated.DeletePartialMatch(labels)
	drainStanding.DeletePartialMatch(labels)
}
