// Package gatewaypod finds a Hermes gateway in a pod: which container is the
// gateway and where its HERMES_HOME is. Both reconcilers resolve a pod the
// same way through it.
package gatewaypod

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// Locate says where a pod's gateway is called: its gateway container
// (container, else as Container picks it), as the calls address it, and
// its HERMES_HOME (home, else as Home finds it; "" when the first call
// reads it in the container). An error says why the operator must never
// call it (Home's).
func Locate(pod *corev1.Pod, container, home string) (calls.Pod, string, error) {
	name := Container(pod, container)
	h, err := Home(pod, name, home)
	return calls.Pod{Namespace: pod.Namespace, Name: pod.Name, Container: name}, h, err
}

// Container is override, else the pod's drain.hermes.dev/container
// annotation, else the pod's first container.
func Container(pod *corev1.Pod, override string) string {
	if override != "" {
		return override
	}
	if name := pod.Annotations[drainv1.ContainerAnnotation]; name != "" {
		return name
	}
	if len(pod.Spec.Containers) > 0 {
		return pod.Spec.Containers[0].Name
	}
	return ""
}

// Home is where the gateway's HERMES_HOME is, as the pod declares it: the
// container's literal HERMES_HOME env value (validated like
// spec.hermesHome, since no API server checked it), else override, else ""
// meaning the container's own HERMES_HOME environment (exec inherits the
// image's ENV and the pod's env), else the upstream default /opt/data, as
// the in-container program resolves it. A pod that declares its HERMES_HOME
// cannot be pointed elsewhere: an override that differs is an error, so a
// GatewayDrain cannot make the operator write into another directory.
func Home(pod *corev1.Pod, container, override string) (string, error) {
	for _, c := range pod.Spec.Containers {
		if c.Name != container {
			continue
		}
		for _, env := range c.Env {
			if env.Name != "HERMES_HOME" {
				continue
			}
			switch {
			case env.ValueFrom != nil && override != "":
				return "", fmt.Errorf("the container sets HERMES_HOME from a reference: spec.hermesHome %q cannot point elsewhere", override)
			case env.ValueFrom != nil || env.Value == "":
				return "", nil
			case marker.ValidateHome(env.Value) != nil:
				return "", fmt.Errorf("the container's HERMES_HOME %q %v", env.Value, marker.ValidateHome(env.Value))
			case override != "" && override != env.Value:
				return "", fmt.Errorf("the container declares HERMES_HOME %q: spec.hermesHome %q cannot point elsewhere", env.Value, override)
			}
			return env.Value, nil
		}
	}
	return override, nil
}

// IsGateway reports whether the pod declares itself a Hermes gateway: the
// label drain.hermes.dev/gateway=true, or the readiness gate. No other pod is
// ever written to, whatever a GatewayDrain's selector matches.
func IsGateway(pod *corev1.Pod) bool {
	return pod.Labels[drainv1.GatewayLabel] == "true" || Gated(pod)
}

// Gated reports whether the pod declares the readiness gate drain.hermes.dev/serving.
func Gated(pod *corev1.Pod) bool {
	for _, g := range pod.Spec.ReadinessGates {
		if g.ConditionType == drainv1.ReadinessGate {
			return true
		}
	}
	return false
}

// ContainerStatus is the named container's status, or nil.
func ContainerStatus(pod *corev1.Pod, name string) *corev1.ContainerStatus {
	for i := range pod.Status.ContainerStatuses {
		if pod.Status.ContainerStatuses[i].Name == name {
			return &pod.Status.ContainerStatuses[i]
		}
	}
	return nil
}

// Running reports whether pod runs its container c.
func Running(pod *corev1.Pod, c string) bool {
	if pod == nil || pod.DeletionTimestamp != nil {
		return false
	}
	cs := ContainerStatus(pod, c)
	return cs != nil && cs.State.Running != nil
}

// GateCondition is the pod's condition of our readiness gate, or nil.
func GateCondition(pod *corev1.Pod) *corev1.PodCondition {
	return Condition(pod, drainv1.ReadinessGate)
}

// Condition is the pod's condition of that type, or nil.
func Condition(pod *corev1.Pod, typ corev1.PodConditionType) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == typ {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

// ConditionStatus is the status of the pod's condition of that type, or ""
// when it has none.
func ConditionStatus(pod *corev1.Pod, typ corev1.PodConditionType) corev1.ConditionStatus {
	if c := Condition(pod, typ); c != nil {
		return c.Status
	}
	return ""
}

// AgentPort is the port of the pod's hermes-drain-agent (the container
// port named drainv1.AgentPortName, in a native sidecar or a container), 0
// when the pod declares none.
func AgentPort(pod *corev1.Pod) int32 {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			for _, port := range c.Ports {
				if port.Name == drainv1.AgentPortName && port.Protocol != corev1.ProtocolUDP {
					return port.ContainerPort
				}
			}
		}
	}
	return 0
}
