package gatewaypod

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
)

// Trim is a cache transform that keeps only what the reconcilers read of a
// pod: its identity, labels (selectors), its controller (what replaces it),
// the container annotation, its
// containers' names and HERMES_HOME, readiness gates, phase, our readiness
// gate's condition, whether it is Ready (a drain waits for a gated pod to
// leave traffic), container states (and the last exit's code and reason:
// why a replacement does not serve), and where its agent listens (the
// agent's port and the pod's IP). Everything else (volumes, images,
// resources, most annotations, the other conditions, managed fields...) is
// dropped before it reaches the cache, so the operator's memory grows with
// the number of pods, not their size.
func Trim(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	trimmed := &corev1.Pod{
		TypeMeta: pod.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID,
			ResourceVersion: pod.ResourceVersion, Generation: pod.Generation,
			CreationTimestamp: pod.CreationTimestamp, DeletionTimestamp: pod.DeletionTimestamp,
			Labels: pod.Labels,
		},
		Spec:   corev1.PodSpec{NodeName: pod.Spec.NodeName, ReadinessGates: pod.Spec.ReadinessGates},
		Status: corev1.PodStatus{Phase: pod.Status.Phase, PodIP: pod.Status.PodIP},
	}
	if ref := metav1.GetControllerOfNoCopy(pod); ref != nil {
		trimmed.OwnerReferences = []metav1.OwnerReference{*ref}
	}
	if port := AgentPort(pod); port != 0 {
		trimmed.Spec.InitContainers = []corev1.Container{{Name: "hermes-drain-agent", Ports: []corev1.ContainerPort{{Name: drainv1.AgentPortName, ContainerPort: port}}}}
	}
	if c, ok := pod.Annotations[drainv1.ContainerAnnotation]; ok {
		trimmed.Annotations = map[string]string{drainv1.ContainerAnnotation: c}
	}
	for _, c := range pod.Spec.Containers {
		kept := corev1.Container{Name: c.Name}
		for _, e := range c.Env {
			if e.Name == "HERMES_HOME" {
				kept.Env = append(kept.Env, e)
			}
		}
		trimmed.Spec.Containers = append(trimmed.Spec.Containers, kept)
	}
	if c := GateCondition(pod); c != nil {
		trimmed.Status.Conditions = append(trimmed.Status.Conditions, *c)
	}
	if c := Condition(pod, corev1.PodReady); c != nil {
		trimmed.Status.Conditions = append(trimmed.Status.Conditions, corev1.PodCondition{Type: c.Type, Status: c.Status})
	}
	for _, cs := range pod.Status.ContainerStatuses {
		kept := corev1.ContainerStatus{Name: cs.Name, State: cs.State, RestartCount: cs.RestartCount, ContainerID: cs.ContainerID, Ready: cs.Ready}
		if last := cs.LastTerminationState.Terminated; last != nil {
			kept.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: last.ExitCode, Reason: last.Reason}
		}
		trimmed.Status.ContainerStatuses = append(trimmed.Status.ContainerStatuses, kept)
	}
	return trimmed, nil
}

// TrimEndpointSlice is a cache transform that keeps only what the drain
// reconciler reads of an EndpointSlice: its Service, and which pods it lists and
// whether each is ready. Every Service's slices are cached, not only the
// gateways', so the rest (addresses, ports, zones, hints) is dropped.
func TrimEndpointSlice(obj any) (any, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return obj, nil
	}
	trimmed := &discoveryv1.EndpointSlice{
		TypeMeta: s.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: s.Name, Namespace: s.Namespace, UID: s.UID, ResourceVersion: s.ResourceVersion,
			Labels: map[string]string{discoveryv1.LabelServiceName: s.Labels[discoveryv1.LabelServiceName]},
		},
		AddressType: s.AddressType,
	}
	for _, e := range s.Endpoints {
		if e.TargetRef != nil && e.TargetRef.Kind == "Pod" {
			trimmed.Endpoints = append(trimmed.Endpoints, discoveryv1.Endpoint{
				Conditions: discoveryv1.EndpointConditions{Ready: e.Conditions.Ready},
				TargetRef:  &corev1.ObjectReference{Kind: "Pod", Name: e.TargetRef.Name},
			})
		}
	}
	return trimmed, nil
}
