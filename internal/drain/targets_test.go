package drain

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
)

// A target whose marker a person removed no longer holds its pod: the
// readiness gate follows the gateway again, and a new drain may take it.
func TestAPersonsCancelLetsThePodGo(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "gw-0", UID: "uid-0"}}
	for state, holds := range map[drainv1.TargetState]bool{
		drainv1.TargetDraining: true, drainv1.TargetDrained: true, drainv1.TargetConflict: true,
		drainv1.TargetMarkerRemoved: false, drainv1.TargetReleased: false, drainv1.TargetRestarted: false,
	} {
		if got := Holds(drainv1.Target{PodName: "gw-0", PodUID: "uid-0", State: state}, pod); got != holds {
			t.Errorf("a %s target holds its pod: %v, want %v", state, got, holds)
		}
	}
}
