// Package gatewaypodtest builds the gateway pod every test suite starts
// from (envtest, kwok, the real node, the benchmarks), so that what a
// gateway pod looks like is written once.
package gatewaypodtest

import (
	"maps"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
)

// Container is the gateway container's name.
const Container = "gateway"

// Spec says how a gateway pod differs from the plainest one.
type Spec struct {
	Namespace, Name string
	// Image is the gateway container's image ("hermes" when empty).
	Image string
	// Home is its HERMES_HOME environment value; none when empty.
	Home string
	// Labels are the pod's labels; Declared adds drain.hermes.dev/gateway
	// and Gated the readiness gate.
	Labels          map[string]string
	Declared, Gated bool
	// NodeName pins the pod to a node.
	NodeName string
}

// Pod is the gateway pod s describes.
func Pod(s Spec) *corev1.Pod {
	labels := maps.Clone(s.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	if s.Declared {
		labels[drainv1.GatewayLabel] = "true"
	}
	c := corev1.Container{Name: Container, Image: s.Image}
	if c.Image == "" {
		c.Image = "hermes"
	}
	if s.Home != "" {
		c.Env = []corev1.EnvVar{{Name: "HERMES_HOME", Value: s.Home}}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.Namespace, Name: s.Name, Labels: labels},
		Spec:       corev1.PodSpec{NodeName: s.NodeName, Containers: []corev1.Container{c}},
	}
	if s.Gated {
		pod.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: drainv1.ReadinessGate}}
	}
	return pod
}
