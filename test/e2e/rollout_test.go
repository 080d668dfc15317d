package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
	"github.com/hermes-agent/hermes-drain-operator/test/cluster"
	"github.com/hermes-agent/hermes-drain-operator/test/gatewaysim"
)

// The rollout recipe of docs/rollout.md, step by step, on a StatefulSet of
// gateways: drain, wait for Drained, roll the StatefulSet to a new template,
// the drain completes by itself as pods are replaced, delete the drain.
func TestRolloutRecipe(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	ctx := context.Background()
	const replicas = 3
	var gws []*cluster.Gateway
	for i := range replicas {
		g := lc.Gateway(ns, fmt.Sprintf("gw-%d", i), gatewayLabels)
		if err := g.Prepare(ctx); err != nil { // folder (a durable volume) + kwok Exec rule
			t.Fatal(err)
		}
		gws = append(gws, g)
	}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gw"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To(int32(replicas)),
			Selector: &metav1.LabelSelector{MatchLabels: gatewayLabels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": gatewayLabels["app"], drainv1.GatewayLabel: "true"}},
				// One template serves every pod: it declares no HERMES_HOME, so
				// the operator uses the container's own, which this simulated
				// cluster sets to the pod's folder in each pod's execs. (Not
				// /proc/self/cwd: a home reached through a link is refused.)
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: cluster.GatewayContainer, Image: "hermes-gateway:1",
				}}},
			},
		},
	}
	if err := k8s.Create(ctx, sts); err != nil {
		t.Fatal(err)
	}
	mustKubectl(t, "-n", ns, "rollout", "status", "statefulset/gw", "--timeout=60s")
	for _, g := range gws {
		if err := gatewaysim.AddTurns(g.Home, 1); err != nil {
			t.Fatal(err)
		}
	}

	// 1. Drain, and wait until every gateway is drained.
	apply(t, ns, "upgrade")
	kubectlWait(t, ns, "upgrade", "Drained", "60s")
	for _, g := range gws {
		if m := g.Marker(); m == nil {
			t.Fatalf("%s: drained without a marker", g.Name)
		}
	}
	// 2. The disruptive work: a new template, rolled out pod by pod.
	mustKubectl(t, "-n", ns, "patch", "statefulset", "gw", "--type=merge", "-p", `{"spec":{"template":{"spec":{"containers":[{"name":"gateway","image":"hermes-gateway:2"}]}}}}`)
	mustKubectl(t, "-n", ns, "rollout", "status", "statefulset/gw", "--timeout=90s")
	// 3. The drain completed by itself: every target's instantiation is
	// over, the new ones are not drained, and no marker of ours is left.
	got := waitDrain(t, ns, "upgrade", "all restarted", func(d *drain.Observed) bool {
		return d.Status.Counts.Restarted == replicas
	})
	if r := conditionReason(got.GatewayDrain, drainv1.ConditionDrained); r != "True/"+drainv1.ReasonDrained {
		t.Errorf("Drained is %s after the rollout", r)
	}
	for _, g := range gws {
		testenv.Eventually(t, wait, func() (bool, string) {
			m := g.Marker()
			return m == nil, fmt.Sprintf("%s: marker left on the new instantiation: %s", g.Name, m)
		})
		waitSim(t, g, marker.StateRunning)
	}
	// 4. Clean up.
	mustKubectl(t, "-n", ns, "delete", "gwd", "upgrade", "--timeout=60s")
	if _, err := os.Stat(filepath.Join(gws[0].Home, marker.Filename)); err == nil {
		t.Errorf("a marker appeared after the cleanup")
	}
}
