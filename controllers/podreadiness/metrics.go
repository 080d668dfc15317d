package podreadiness

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod"
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

// gates is registered with the others, and counts once SetupWithManager
// has pointed it at the manager's cache.
var gates = &gateCounter{}

func init() {
	metrics.Registry.MustRegister(gateFlipSeconds, gateReads, gates)
}

var gatesDesc = prometheus.NewDesc("hermes_drain_readiness_gates",
	"Pods that declare the readiness gate drain.hermes.dev/serving and are not terminating, by namespace and the gate condition's status (NotSet: not written yet).",
	[]string{"namespace", "status"}, nil)

// gateCounter counts the gated pods of the manager's cache by namespace and
// gate status on each scrape: no series per pod, and nothing to keep in
// step between scrapes. A scrape lists the cache, which copies each Pod
// struct (not what it points to): cheap enough at 10,000 gated pods
// (docs/benchmarks.md, "Numbers behind the design").
type gateCounter struct{ source atomic.Pointer[gateSource] }

type gateSource struct {
	pods    client.Reader
	elected <-chan struct{}
}

// countFrom makes the counter count the pods of cache once elected is closed.
func (g *gateCounter) countFrom(cache client.Reader, elected <-chan struct{}) {
	g.source.Store(&gateSource{pods: cache, elected: elected})
}

func (g *gateCounter) Describe(ch chan<- *prometheus.Desc) { ch <- gatesDesc }

func (g *gateCounter) Collect(ch chan<- prometheus.Metric) {
	src := g.source.Load()
	if src == nil {
		return
	}
	select {
	case <-src.elected:
	default:
		return // a replica that does not lead caches no pods, and a scrape must not make it start
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var pods corev1.PodList
	if err := src.pods.List(ctx, &pods, client.UnsafeDisableDeepCopy); err != nil {
		// Nothing rather than an error: an error would fail the whole scrape.
		log.FromContext(ctx).WithName("metrics").Error(err, "counting readiness gates")
		return
	}
	for k, n := range countGates(pods.Items) {
		ch <- prometheus.MustNewConstMetric(gatesDesc, prometheus.GaugeValue, float64(n), k.namespace, k.status)
	}
}

type gateKey struct{ namespace, status string }

// countGates counts the gated pods that are not terminating (their gates
// are no longer kept) by namespace and gate status.
func countGates(pods []corev1.Pod) map[gateKey]int {
	counts := map[gateKey]int{}
	for i := range pods {
		pod := &pods[i]
		if !gatewaypod.Gated(pod) || pod.DeletionTimestamp != nil {
			continue
		}
		status := "NotSet"
		if c := gatewaypod.GateCondition(pod); c != nil {
			status = string(c.Status)
		}
		counts[gateKey{pod.Namespace, status}]++
	}
	return counts
}
