package gatewaypod

import (
	"fmt"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
)

func pod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "gw-0", Namespace: "ns", UID: "u", Labels: map[string]string{"app": "hermes-gateway"},
			Annotations:   map[string]string{"drain.hermes.dev/container": "hermes", "big": "x"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet"}},
			OwnerReferences: []metav1.OwnerReference{
				{APIVersion: "v1", Kind: "ConfigMap", Name: "not-a-controller", UID: "c"},
				{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "gw", UID: "s", Controller: ptr.To(true)},
			},
		},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{
				{Name: "sidecar", Image: "s"},
				{Name: "hermes", Image: "h", Env: []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "HERMES_HOME", Value: "/data/home"}},
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}}},
			},
			Volumes:        []corev1.Volume{{Name: "v"}},
			ReadinessGates: []corev1.PodReadinessGate{{ConditionType: drainv1.ReadinessGate}},
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning,
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
				{Type: drainv1.ReadinessGate, Status: corev1.ConditionTrue, Reason: "Serving"},
				{Type: corev1.PodReady, Status: corev1.ConditionTrue, Reason: "ContainersReady", LastTransitionTime: metav1.Now()},
			},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "hermes", RestartCount: 2, ContainerID: "c://1", Image: "h",
				State:                corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 3, Reason: "Error", Message: "long"}}}},
		},
	}
}

func TestResolution(t *testing.T) {
	p := pod()
	if c := Container(p, ""); c != "hermes" {
		t.Errorf("container %q: the annotation names it", c)
	}
	if c := Container(p, "sidecar"); c != "sidecar" {
		t.Errorf("an override wins: %q", c)
	}
	delete(p.Annotations, "drain.hermes.dev/container")
	if c := Container(p, ""); c != "sidecar" {
		t.Errorf("default is the first container, got %q", c)
	}
	fromConfigMap := pod()
	fromConfigMap.Spec.Containers[1].Env[1] = corev1.EnvVar{Name: "HERMES_HOME", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{Key: "home"}}}
	invalid := pod()
	invalid.Spec.Containers[1].Env[1].Value = "relative/home"
	for _, tc := range []struct {
		name                string
		pod                 *corev1.Pod
		container, override string
		want, err           string
	}{
		{"a literal env value", pod(), "hermes", "", "/data/home", ""},
		{"an override equal to the env value", pod(), "hermes", "/data/home", "/data/home", ""},
		{"an override that points elsewhere", pod(), "hermes", "/x/y", "", `the container declares HERMES_HOME "/data/home": spec.hermesHome "/x/y" cannot point elsewhere`},
		{"nothing declared: the container's own environment", pod(), "sidecar", "", "", ""},
		{"nothing declared, an override", pod(), "sidecar", "/x/y", "/x/y", ""},
		{"from a reference: the container's own environment", fromConfigMap, "hermes", "", "", ""},
		{"from a reference, an override", fromConfigMap, "hermes", "/x/y", "", `the container sets HERMES_HOME from a reference: spec.hermesHome "/x/y" cannot point elsewhere`},
		{"an invalid env value", invalid, "hermes", "", "", `the container's HERMES_HOME "relative/home" must be an absolute path`},
	} {
		got, err := Home(tc.pod, tc.container, tc.override)
		if got != tc.want || fmt.Sprint(err) != map[bool]string{true: "<nil>", false: tc.err}[tc.err == ""] {
			t.Errorf("%s: Home = %q, %v; want %q, %q", tc.name, got, err, tc.want, tc.err)
		}
	}
}

// What the reconcilers read of a pod is the same before and after Trim.
func TestTrimKeepsWhatTheReconcilersRead(t *testing.T) {
	full := pod()
	full.Status.PodIP = "127.0.0.5"
	full.Spec.InitContainers = []corev1.Container{
		{Name: "setup", Image: "busybox"},
		{Name: "agent", Image: "hermes-drain-agent", Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 8080}, {Name: drainv1.AgentPortName, ContainerPort: 9443}}},
	}
	out, _ := Trim(full)
	trimmed := out.(*corev1.Pod)
	for name, read := range map[string]func(*corev1.Pod) any{
		"container": func(p *corev1.Pod) any { return Container(p, "") },
		"home":      func(p *corev1.Pod) any { h, err := Home(p, Container(p, ""), ""); return [2]any{h, err} },
		"status":    func(p *corev1.Pod) any { return *ContainerStatus(p, "hermes") },
		"running":   func(p *corev1.Pod) any { return Running(p, "hermes") },
		"identity":  func(p *corev1.Pod) any { return [3]any{p.UID, p.Labels, p.DeletionTimestamp} },
		"readiness": func(p *corev1.Pod) any {
			return [3]any{p.Spec.ReadinessGates, GateCondition(p), ConditionStatus(p, corev1.PodReady)}
		},
		"phase":      func(p *corev1.Pod) any { return p.Status.Phase },
		"containers": func(p *corev1.Pod) any { return len(p.Spec.Containers) },
		"agent":      func(p *corev1.Pod) any { return [2]any{AgentPort(p), p.Status.PodIP} },
		"controller": func(p *corev1.Pod) any { return *metav1.GetControllerOf(p) },
		"last exit":  func(p *corev1.Pod) any { return *ContainerStatus(p, "hermes").LastTerminationState.Terminated },
	} {
		got, want := read(trimmed), read(full)
		if name == "status" {
			g, w := got.(corev1.ContainerStatus), want.(corev1.ContainerStatus)
			got, want = [4]any{g.State, g.RestartCount, g.ContainerID, g.Name}, [4]any{w.State, w.RestartCount, w.ContainerID, w.Name}
		}
		if name == "last exit" {
			w := want.(corev1.ContainerStateTerminated)
			want = corev1.ContainerStateTerminated{ExitCode: w.ExitCode, Reason: w.Reason}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: trimmed %v, full %v", name, got, want)
		}
	}
	if trimmed.Spec.Volumes != nil || len(trimmed.OwnerReferences) != 1 || trimmed.ManagedFields != nil || trimmed.Annotations["big"] != "" || trimmed.Spec.Containers[1].Image != "" ||
		len(trimmed.Status.Conditions) != 2 || trimmed.Status.Conditions[1] != (corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue}) || len(trimmed.Spec.InitContainers) != 1 || len(trimmed.Spec.InitContainers[0].Ports) != 1 {
		t.Errorf("Trim kept what nothing reads: %+v", trimmed)
	}
}
