package cluster

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
)

// GatewayStatefulSet creates a StatefulSet name of n gateway pods
// (name-0 … name-(n-1)) running image, with the given update strategy,
// each pod's folder (a durable volume) and Exec rule prepared first, and
// waits until kwok execs in every pod. Its one template declares no
// HERMES_HOME: the operator uses the container's own, which this
// simulated cluster sets to each pod's folder in its execs.
func (c *Cluster) GatewayStatefulSet(ctx context.Context, namespace, name string, n int, labels map[string]string, image string, strategy appsv1.StatefulSetUpdateStrategyType) ([]*Gateway, error) {
	gws := make([]*Gateway, n)
	for i := range gws {
		gws[i] = c.Gateway(namespace, fmt.Sprintf("%s-%d", name, i), labels)
		if err := gws[i].Prepare(ctx); err != nil {
			return nil, err
		}
	}
	podLabels := map[string]string{drainv1.GatewayLabel: "true"}
	for k, v := range labels {
		podLabels[k] = v
	}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To(int32(n)),
			Selector:            &metav1.LabelSelector{MatchLabels: labels},
			PodManagementPolicy: appsv1.ParallelPodManagement,
			UpdateStrategy:      appsv1.StatefulSetUpdateStrategy{Type: strategy},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: GatewayContainer, Image: image}}},
			},
		},
	}
	if err := c.Client.Create(ctx, sts); err != nil {
		return nil, err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, gw := range gws {
		g.Go(func() error {
			if err := gw.waitPod(ctx, "running", func(p *corev1.Pod, err error) bool {
				return err == nil && p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) > 0
			}); err != nil {
				return err
			}
			return gw.waitExec(ctx)
		})
	}
	return gws, g.Wait()
}
