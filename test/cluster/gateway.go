package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod/gatewaypodtest"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// GatewayContainer is the gateway container's name in fixture pods.
const GatewayContainer = gatewaypodtest.Container

// Gateway is a gateway pod fixture: a pod on the kwok node, its kwok Exec
// rule, and its folder on this host, which is its HERMES_HOME. The folder
// outlives the pod, as a durable volume does.
type Gateway struct {
	Namespace, Name string
	// Home is the pod's HERMES_HOME: a folder on this host.
	Home   string
	Labels map[string]string
	c      *Cluster
}

// Gateway returns the fixture for a pod; Create makes it.
func (c *Cluster) Gateway(namespace, name string, labels map[string]string) *Gateway {
	return &Gateway{
		Namespace: namespace, Name: name, Labels: labels, c: c,
		Home: filepath.Join(c.Dir, "homes", namespace, name),
	}
}

// Prepare makes the folder and the kwok Exec rule, for a pod of this name
// that something else (a StatefulSet) creates.
func (g *Gateway) Prepare(ctx context.Context) error {
	if err := os.MkdirAll(g.Home, 0o755); err != nil {
		return err
	}
	if err := g.c.Client.Create(ctx, g.execRule()); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the Exec rule: %w", err)
	}
	return nil
}

// execRule is kwok's rule that runs the pod's execs in its folder, with
// the folder as the exec's HERMES_HOME environment: the container's own
// HERMES_HOME, for a pod that does not declare one.
func (g *Gateway) execRule() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1",
		"kind":       "Exec",
		"metadata":   map[string]any{"name": g.Name, "namespace": g.Namespace},
		"spec": map[string]any{"execs": []any{map[string]any{
			"local": map[string]any{"workDir": g.Home, "envs": []any{map[string]any{"name": "HERMES_HOME", "value": g.Home}}},
		}}},
	}}
}

// Create prepares the folder and Exec rule, creates the pod (declared a
// gateway: the drain.hermes.dev/gateway=true label) and waits until it
// runs. mutate may change the pod before it is created.
func (g *Gateway) Create(ctx context.Context, mutate ...func(*corev1.Pod)) error {
	if err := g.Prepare(ctx); err != nil {
		return err
	}
	pod := gatewaypodtest.Pod(gatewaypodtest.Spec{Namespace: g.Namespace, Name: g.Name, Image: "hermes-gateway:simulated", Home: g.Home,
		Labels: g.Labels, Declared: true, NodeName: NodeName})
	for _, m := range mutate {
		m(pod)
	}
	if err := g.c.Client.Create(ctx, pod); err != nil {
		return err
	}
	if err := g.waitPod(ctx, "running", func(p *corev1.Pod, err error) bool {
		return err == nil && p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) > 0
	}); err != nil {
		return err
	}
	return g.waitExec(ctx)
}

// waitExec waits until kwok runs execs in the pod. kwok learns of the Exec
// rule through a watch, and under load it has answered "no exec found" for
// over a minute after the rule was created: a test would then wait on the
// operator's backoff instead of on what it tests. A rule kwok still does not
// know after 10 s is created again, which its watch sees as a new rule.
func (g *Gateway) waitExec(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	recreate := time.Now().Add(10 * time.Second)
	for {
		_, err := g.c.exec.Run(ctx, calls.Pod{Namespace: g.Namespace, Name: g.Name, Container: GatewayContainer}, []string{"true"}, nil)
		if err == nil {
			return nil
		}
		if time.Now().After(recreate) {
			recreate = time.Now().Add(10 * time.Second)
			if err := g.c.Client.Delete(ctx, g.execRule()); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
			if err := g.c.Client.Create(ctx, g.execRule()); err != nil {
				return fmt.Errorf("creating the Exec rule again: %w", err)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kwok does not exec in %s/%s: %w", g.Namespace, g.Name, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Marker is the drain marker in the gateway's HERMES_HOME, nil if there is none.
func (g *Gateway) Marker() []byte {
	b, err := os.ReadFile(filepath.Join(g.Home, marker.Filename))
	if err != nil {
		return nil
	}
	return b
}

// CheckMarkerOf fails unless the gateway holds a marker that the
// GatewayDrain with drainUID wrote for its current pod.
func (g *Gateway) CheckMarkerOf(ctx context.Context, drainUID types.UID) error {
	pod, err := g.Pod(ctx)
	if err != nil {
		return err
	}
	raw := g.Marker()
	o, ok := marker.Parse(raw).Origin()
	if !ok || o.GatewayDrainUID != string(drainUID) || o.PodUID != string(pod.UID) || o.Pod != g.Namespace+"/"+g.Name {
		return fmt.Errorf("%s: marker %s is not this drain's for this instantiation", g.Name, raw)
	}
	return nil
}

// Pod reads the pod.
func (g *Gateway) Pod(ctx context.Context) (*corev1.Pod, error) {
	pod := &corev1.Pod{}
	err := g.c.Client.Get(ctx, client.ObjectKey{Namespace: g.Namespace, Name: g.Name}, pod)
	return pod, err
}

// Delete deletes the pod at once and waits until it is gone. The folder stays.
func (g *Gateway) Delete(ctx context.Context) error {
	pod, err := g.Pod(ctx)
	if err != nil {
		return err
	}
	if err := g.c.Client.Delete(ctx, pod, client.GracePeriodSeconds(0)); err != nil {
		return err
	}
	return g.waitPod(ctx, "gone", func(_ *corev1.Pod, err error) bool { return apierrors.IsNotFound(err) })
}

// Recreate replaces the pod StatefulSet-style: same name, new UID, same folder.
func (g *Gateway) Recreate(ctx context.Context) error {
	if err := g.Delete(ctx); err != nil {
		return err
	}
	return g.Create(ctx)
}

// RestartContainer simulates a restart of the gateway container, as a kubelet
// reports it: a new startedAt and restartCount+1.
func (g *Gateway) RestartContainer(ctx context.Context) error {
	pod, err := g.Pod(ctx)
	if err != nil {
		return err
	}
	for i := range pod.Status.ContainerStatuses {
		cs := &pod.Status.ContainerStatuses[i]
		if cs.Name != GatewayContainer || cs.State.Running == nil {
			continue
		}
		cs.RestartCount++
		cs.State.Running.StartedAt = metav1.NewTime(cs.State.Running.StartedAt.Add(time.Duration(cs.RestartCount) * time.Minute))
	}
	return g.c.Client.Status().Update(ctx, pod)
}

func (g *Gateway) waitPod(ctx context.Context, what string, done func(*corev1.Pod, error) bool) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		pod, err := g.Pod(ctx)
		if done(pod, err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pod %s/%s not %s: %w", g.Namespace, g.Name, what, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
