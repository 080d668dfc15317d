package gatewaydrain_test

import (
	"os"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
)

func metaCondition(g *observed, typ string) metav1.Condition {
	if c := meta.FindStatusCondition(g.Status.Conditions, typ); c != nil {
		return *c
	}
	return metav1.Condition{}
}

func waitForFile(t *testing.T, path string) {
	t.Helper()
	testenv.Eventually(t, wait, func() (bool, string) {
		_, err := os.Stat(path)
		return err == nil, path + " not written"
	})
}

// metric returns the value of the series of name whose labels include
// labels, from controller-runtime's registry; ok is false when there is none.
func metric(t *testing.T, name string, labels map[string]string) (value float64, ok bool) {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			switch {
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}
