package gatewaydrain

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
)

// Every target state the API allows has its series, with its own count;
// the drain's creation and whether it stands are exported, and all of it
// goes with the drain. The namespace's markers-left counter is there, at 0,
// from its first drain on.
func TestRecordMetricsExportsEveryTargetState(t *testing.T) {
	const ns = "metrics-test"
	own := map[string]string{"namespace": ns, "name": "d"}
	with := func(k, v string) map[string]string { return map[string]string{"namespace": ns, "name": "d", k: v} }
	states := apiTargetStates(t)
	created := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	gwd := &drainv1.GatewayDrain{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "d", CreationTimestamp: metav1.NewTime(created)}}
	for i, s := range states {
		*drain.CountOf(&gwd.Status.Counts, drainv1.TargetState(s)) = int32(i + 1)
	}
	recordMetrics(&view{gwd: gwd})
	for i, s := range states {
		if got, ok := testenv.Metric(t, "hermes_drain_gatewaydrain_targets", with("state", s)); got != float64(i+1) {
			t.Errorf("targets{state=%q} = %v (exported: %v), want %d", s, got, ok, i+1)
		}
	}
	if got, _ := testenv.Metric(t, "hermes_drain_gatewaydrain_created_timestamp_seconds", own); got != float64(created.Unix()) {
		t.Errorf("created %v, want %d", got, created.Unix())
	}
	if got, _ := testenv.Metric(t, "hermes_drain_gatewaydrain_standing", own); got != 1 {
		t.Errorf("standing %v for a drain that stands", got)
	}
	if got, ok := testenv.Metric(t, "hermes_drain_markers_left_total", map[string]string{"namespace": ns}); !ok || got != 0 {
		t.Errorf("markers left %v (exported: %v), want 0", got, ok)
	}
	recordMetrics(&view{gwd: gwd, withdrawn: drain.WithdrawnCancelled})
	if got, _ := testenv.Metric(t, "hermes_drain_gatewaydrain_standing", own); got != 0 {
		t.Errorf("standing %v for a cancelled drain", got)
	}

	forgetMetrics(ns, "d")
	for _, name := range []string{"hermes_drain_gatewaydrain_targets", "hermes_drain_gatewaydrain_created_timestamp_seconds", "hermes_drain_gatewaydrain_standing"} {
		if _, ok := testenv.Metric(t, name, own); ok {
			t.Errorf("%s still exported after the drain is gone", name)
		}
	}
}

// apiTargetStates are the target states the TargetSlice CRD allows.
func apiTargetStates(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", "drain.hermes.dev_targetslices.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema struct {
						Properties struct {
							Targets struct {
								Items struct {
									Properties struct {
										State struct {
											Enum []string `json:"enum"`
										} `json:"state"`
									} `json:"properties"`
								} `json:"items"`
							} `json:"targets"`
						} `json:"properties"`
					} `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &crd); err != nil || len(crd.Spec.Versions) != 1 {
		t.Fatalf("the TargetSlice CRD: %v, %d versions", err, len(crd.Spec.Versions))
	}
	states := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties.Targets.Items.Properties.State.Enum
	if len(states) < 8 {
		t.Fatalf("target states %v: the CRD's enum was not found", states)
	}
	return states
}
