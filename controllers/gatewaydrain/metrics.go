package gatewaydrain

import (
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
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
	drainSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "hermes_drain_gatewaydrain_drained_seconds",
		Help:    "From a GatewayDrain's creation to its Drained condition first turning True.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 14), // 1 s to about 2.3 h
	})
)

func init() {
	metrics.Registry.MustRegister(drainCondition, drainTargets, drainSeconds)
}

// recordMetrics sets the drain's per-object series from its status.
func recordMetrics(gwd *drainv1.GatewayDrain) {
	for _, c := range gwd.Status.Conditions {
		for _, s := range []metav1.ConditionStatus{metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionUnknown} {
			v := 0.0
			if c.Status == s {
				v = 1
			}
			drainCondition.WithLabelValues(gwd.Namespace, gwd.Name, c.Type, string(s)).Set(v)
		}
	}
	counts := gwd.Status.Counts
	for state, n := range map[drainv1.TargetState]int32{
		drainv1.TargetPending: counts.Pending, drainv1.TargetDraining: counts.Draining, drainv1.TargetDrained: counts.Drained,
		drainv1.TargetReleased: counts.Released, drainv1.TargetRestarted: counts.Restarted,
		drainv1.TargetConflict: counts.Conflict, drainv1.TargetFailed: counts.Failed,
	} {
		drainTargets.WithLabelValues(gwd.Namespace, gwd.Name, string(state)).Set(float64(n))
	}
}

// forgetMetrics removes a drain's per-object series once it is gone.
func forgetMetrics(namespace, name string) {
	labels := prometheus.Labels{"namespace": namespace, "name": name}
	drainCondition.DeletePartialMatch(labels)
	drainTargets.DeletePartialMatch(labels)
}
