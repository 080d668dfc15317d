package podreadiness

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
)

// The gated pods are counted by namespace and gate status, from the cache
// they are pointed at, and only once this replica leads: pods without the
// gate, and terminating pods, are not counted.
func TestGatedPodsAreCountedByGateStatusOnceElected(t *testing.T) {
	const ns = "gates-test"
	pod := func(name string, gated bool, gate corev1.ConditionStatus) client.Object {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		if gated {
			p.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: drainv1.ReadinessGate}}
		}
		if gate != "" {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: gate}, {Type: drainv1.ReadinessGate, Status: gate}}
		}
		return p
	}
	terminating := pod("gw-leaving", true, corev1.ConditionUnknown)
	now := metav1.Now()
	terminating.SetDeletionTimestamp(&now)
	terminating.SetFinalizers([]string{"example.com/hold"})
	cache := fake.NewClientBuilder().WithObjects(
		pod("gw-0", true, corev1.ConditionTrue), pod("gw-1", true, corev1.ConditionTrue), pod("gw-2", true, corev1.ConditionFalse),
		pod("gw-3", true, corev1.ConditionUnknown), pod("gw-new", true, ""), pod("web", false, corev1.ConditionTrue), terminating,
	).Build()
	elected := make(chan struct{})
	gates.countFrom(cache, elected)
	t.Cleanup(func() { gates.source.Store(nil) })
	count := func(status string) (float64, bool) {
		return testenv.Metric(t, "hermes_drain_readiness_gates", map[string]string{"namespace": ns, "status": status})
	}

	if n, ok := count("True"); ok {
		t.Errorf("counted %v gates before this replica was elected", n)
	}
	close(elected)
	var got []string
	for _, status := range []string{"True", "False", "Unknown", "NotSet"} {
		n, _ := count(status)
		got = append(got, fmt.Sprintf("%s=%v", status, n))
	}
	if fmt.Sprint(got) != "[True=2 False=1 Unknown=1 NotSet=1]" {
		t.Errorf("gates %v, want True=2 False=1 Unknown=1 NotSet=1", got)
	}
}
