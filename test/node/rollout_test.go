package node

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
	"github.com/hermes-agent/hermes-drain-operator/test/cluster"
)

// gatewayChart is docs/rollout.md's Helm recipe, as a chart.
var gatewayChart = filepath.Join(cluster.RepoRoot(), "docs", "examples", "hermes-gateway")

// The Helm recipe of docs/rollout.md, for real: `helm upgrade` of the
// example gateway chart applies the new template to its OnDelete
// StatefulSet (nothing restarts), then its post-upgrade hooks replace the
// gateways one at a time (drain.maxUnavailable 1), and Helm returns once
// every one is Replaced. Never are two old gateways held at once, each is
// drained before its pod goes, and every new pod takes turns. The hooks
// run kubectl from its upstream image name (make image writes it from the
// pinned kubectl).
func TestHelmUpgradeReplacesGatewaysOneAtATime(t *testing.T) {
	ctx := context.Background()
	ns := testenv.CreateNamespace(t, lc.Client)
	api, err := url.Parse(lc.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	// The node has no pod network: the pods run in the node's, and the hook
	// reaches the API server at its loopback address.
	values := []string{"-n", ns, "--set", "image=hermes-gateway-sim:dev,hostNetwork=true,drain.podSpec.hostNetwork=true",
		"--set", "drain.env[0].name=KUBERNETES_SERVICE_HOST,drain.env[1].name=KUBERNETES_SERVICE_PORT",
		"--set-string", "drain.env[0].value=" + api.Hostname() + ",drain.env[1].value=" + api.Port()}
	if out, err := lc.Run("helm", append([]string{"install", "gw", gatewayChart, "--wait", "--timeout", "120s"}, values...)...); err != nil {
		t.Fatalf("helm install: %v: %s", err, out)
	}
	t.Cleanup(func() { _, _ = lc.Run("helm", "uninstall", "gw", "-n", ns, "--wait") })
	old := gatewayPods(t, ns)
	for _, p := range old {
		waitRunsFree(t, p)
	}

	upgrade := make(chan error, 1)
	go func() {
		// No --wait: Helm waits for the hook's Job, which waits for Replaced.
		out, err := lc.Run("helm", append([]string{"upgrade", "gw", gatewayChart, "--timeout", "240s", "--set-string", "podAnnotations.revision=2"}, values...)...)
		if err != nil {
			err = fmt.Errorf("%w: %s", err, out)
		}
		upgrade <- err
	}()
	// Until Helm returns: never two old gateways held at once.
	for done := false; !done; {
		select {
		case err := <-upgrade:
			if err != nil {
				jobs, _ := lc.Run("kubectl", "-n", ns, "get", "jobs,pods,gatewaydrains", "-o", "wide")
				t.Fatalf("helm upgrade: %v\n%s", err, jobs)
			}
			done = true
			continue
		case <-time.After(200 * time.Millisecond):
		}
		var held []string
		for name, p := range old {
			state, err := lc.Run("kubectl", "-n", ns, "exec", name, "--", "sh", "-c", `[ -e /opt/data/.drain_request.json ] && echo marker`)
			if err == nil && running(ctx, ns, name, p.UID) && strings.HasPrefix(state, "marker") {
				held = append(held, name)
			}
		}
		if len(held) > 1 {
			t.Errorf("%v held at once; drain.maxUnavailable is 1", held)
		}
	}

	// After the upgrade: the drain is the record, every target was drained
	// and then replaced, one after the other, and every pod is new.
	got, err := drain.Observe(ctx, lc.Client, client.ObjectKey{Namespace: ns, Name: "gw-upgrade"})
	if err != nil {
		t.Fatal(err)
	}
	if !meta.IsStatusConditionTrue(got.Status.Conditions, drainv1.ConditionReplaced) || len(got.Targets) != len(old) {
		t.Fatalf("the drain: %d targets, conditions %+v", len(got.Targets), got.Status.Conditions)
	}
	slices.SortFunc(got.Targets, func(a, b drainv1.Target) int { return a.MarkerWrittenAt.Compare(b.MarkerWrittenAt.Time) })
	for i, tg := range got.Targets {
		if tg.State != drainv1.TargetReplaced || tg.MarkerWrittenAt == nil || tg.EvictedAt.Before(tg.MarkerWrittenAt) || tg.ReplacedAt.Before(tg.EvictedAt) {
			t.Errorf("%s: %s, marker %v, evicted %v, replaced %v", tg.PodName, tg.State, tg.MarkerWrittenAt, tg.EvictedAt, tg.ReplacedAt)
		}
		if i > 0 && tg.MarkerWrittenAt.Before(got.Targets[i-1].ReplacedAt) {
			t.Errorf("%s was marked before %s was replaced", tg.PodName, got.Targets[i-1].PodName)
		}
		t.Logf("%s: marked → evicted %s, evicted → replacement serving %s", tg.PodName, tg.EvictedAt.Sub(tg.MarkerWrittenAt.Time), tg.ReplacedAt.Sub(tg.EvictedAt.Time))
	}
	for name, p := range gatewayPods(t, ns) {
		if p.UID == old[name].UID || p.Annotations["revision"] != "2" {
			t.Errorf("%s was not replaced by the new template", name)
		}
		waitRunsFree(t, p)
	}
}

// A replacement that crash-loops halts the wave: the gateway waiting its
// turn is never touched, Stalled names the pod and why. Once the template
// is fixed and the crash-looping pod deleted (an OnDelete StatefulSet
// recreates it only then), the resume annotation carries the wave to the
// end: docs/rollout.md's "When a wave halts".
func TestABadTemplateHaltsTheWaveUntilResumed(t *testing.T) {
	ctx := context.Background()
	ns := testenv.CreateNamespace(t, lc.Client)
	labels := map[string]string{"app": "hermes-gateway"}
	tmpl := simPod("", "")
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gw"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To(int32(2)), Selector: &metav1.LabelSelector{MatchLabels: labels}, PodManagementPolicy: appsv1.ParallelPodManagement,
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType},
			Template:       corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: tmpl.Labels}, Spec: tmpl.Spec},
		},
	}
	if err := lc.Client.Create(ctx, sts); err != nil {
		t.Fatal(err)
	}
	pods := map[string]*corev1.Pod{}
	for _, name := range []string{"gw-0", "gw-1"} {
		pods[name] = waitPodRunning(t, ns, name)
		waitRunsFree(t, pods[name])
	}
	// The bad template: its gateway exits at once.
	setCommand := func(command []string) {
		t.Helper()
		patch := client.MergeFrom(sts.DeepCopy())
		sts.Spec.Template.Spec.Containers[0].Command = command
		if err := lc.Client.Patch(ctx, sts, patch); err != nil {
			t.Fatal(err)
		}
	}
	setCommand([]string{"/bin/sh", "-c", "exit 1"})
	gwd := &drainv1.GatewayDrain{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "upgrade"}, Spec: drainv1.GatewayDrainSpec{
		Selector: metav1.LabelSelector{MatchLabels: labels},
		Replace:  &drainv1.ReplaceSpec{MaxUnavailable: ptr.To(intstr.FromInt32(1)), ServingTimeout: &metav1.Duration{Duration: 20 * time.Second}},
	}}
	if err := lc.Client.Create(ctx, gwd); err != nil {
		t.Fatal(err)
	}
	var first, second string
	testenv.Eventually(t, 2*time.Minute, func() (bool, string) {
		_ = lc.Client.Get(ctx, client.ObjectKeyFromObject(gwd), gwd)
		c := meta.FindStatusCondition(gwd.Status.Conditions, drainv1.ConditionStalled)
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == drainv1.ReasonReplacementNotServing, fmt.Sprintf("not halted: %+v", gwd.Status)
	})
	got, err := drain.Observe(ctx, lc.Client, client.ObjectKeyFromObject(gwd))
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range got.Targets {
		switch tg.State {
		case drainv1.TargetReplacing:
			first = tg.PodName
		case drainv1.TargetWaiting:
			second = tg.PodName
		}
	}
	stalled := meta.FindStatusCondition(got.Status.Conditions, drainv1.ConditionStalled).Message
	if first == "" || second == "" || !strings.Contains(stalled, first+" was not replaced") || !strings.Contains(stalled, "exit code 1") {
		t.Fatalf("halted with %s replacing and %s waiting: %s", first, second, stalled)
	}
	if p := waitPodRunning(t, ns, second); p.UID != pods[second].UID {
		t.Fatalf("%s, waiting its turn, was replaced", second)
	}
	waitRunsFree(t, pods[second])

	// Resumed after the fix, the wave runs to the end.
	setCommand(nil)
	if err := lc.Client.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: first}}); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(gwd.DeepCopy())
	metav1.SetMetaDataAnnotation(&gwd.ObjectMeta, drainv1.ResumeAnnotation, time.Now().Add(time.Second).UTC().Format(time.RFC3339))
	if err := lc.Client.Patch(ctx, gwd, patch); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 3*time.Minute, func() (bool, string) {
		_ = lc.Client.Get(ctx, client.ObjectKeyFromObject(gwd), gwd)
		return meta.IsStatusConditionTrue(gwd.Status.Conditions, drainv1.ConditionReplaced), fmt.Sprintf("not Replaced: %+v", gwd.Status)
	})
	for name, p := range pods {
		now := waitPodRunning(t, ns, name)
		if now.UID == p.UID || len(now.Spec.Containers[0].Command) != 0 {
			t.Errorf("%s not replaced by the fixed template", name)
		}
		waitRunsFree(t, now)
	}
}

// waitPodRunning waits until the pod of this name runs its gateway.
func waitPodRunning(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{}
	testenv.Eventually(t, 2*time.Minute, func() (bool, string) {
		err := lc.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, pod)
		return err == nil && pod.DeletionTimestamp == nil && gatewaypod.Running(pod, "gateway"), fmt.Sprintf("%s not running: %v %+v", name, err, pod.Status.ContainerStatuses)
	})
	return pod
}

// gatewayPods are the example chart's two running pods, by name.
func gatewayPods(t *testing.T, ns string) map[string]*corev1.Pod {
	t.Helper()
	return runningPods(t, ns, map[string]string{"app.kubernetes.io/instance": "gw"}, 2)
}

// running reports whether the pod of this name is still the one with uid,
// not terminating.
func running(ctx context.Context, ns, name string, uid types.UID) bool {
	p := &corev1.Pod{}
	err := lc.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, p)
	return err == nil && p.UID == uid && p.DeletionTimestamp == nil
}

// docs/rollout.md quotes the recipe this test runs, byte for byte.
func TestRolloutDocQuotesTheTestedRecipe(t *testing.T) {
	tmpl, err := os.ReadFile(filepath.Join(gatewayChart, "templates", "drain-hooks.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(cluster.RepoRoot(), "docs", "rollout.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```yaml\n"+string(tmpl)+"```") {
		t.Error("docs/rollout.md does not quote docs/examples/hermes-gateway/templates/drain-hooks.yaml as it is")
	}
}

// A Deployment's gateways restarted drained, one at a time: each pod is
// evicted only once drained, its ReplicaSet's replacement (a new name) is
// found and counted once it serves, and no replacement is claimed twice.
func TestADeploymentsGatewaysAreRestartedDrained(t *testing.T) {
	ctx := context.Background()
	ns := testenv.CreateNamespace(t, lc.Client)
	labels := map[string]string{"app": "hermes-gateway"}
	tmpl := simPod("", "")
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gw"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(2)), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: tmpl.Labels}, Spec: tmpl.Spec},
		},
	}
	if err := lc.Client.Create(ctx, dep); err != nil {
		t.Fatal(err)
	}
	old := runningPods(t, ns, labels, 2)
	for _, p := range old {
		waitRunsFree(t, p)
	}
	gwd := &drainv1.GatewayDrain{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "restart"}, Spec: drainv1.GatewayDrainSpec{
		Selector: metav1.LabelSelector{MatchLabels: labels},
		Replace:  &drainv1.ReplaceSpec{MaxUnavailable: ptr.To(intstr.FromInt32(1))},
	}}
	if err := lc.Client.Create(ctx, gwd); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 3*time.Minute, func() (bool, string) {
		_ = lc.Client.Get(ctx, client.ObjectKeyFromObject(gwd), gwd)
		return meta.IsStatusConditionTrue(gwd.Status.Conditions, drainv1.ConditionReplaced), fmt.Sprintf("not Replaced: %+v", gwd.Status)
	})
	got, err := drain.Observe(ctx, lc.Client, client.ObjectKeyFromObject(gwd))
	if err != nil {
		t.Fatal(err)
	}
	now := runningPods(t, ns, labels, 2)
	for _, tg := range got.Targets {
		p, ok := now[tg.Replacement]
		if tg.State != drainv1.TargetReplaced || tg.Owner != "Deployment/gw" || !ok || old[tg.Replacement] != nil {
			t.Errorf("%s: %s by %q (owner %q); running now: %v", tg.PodName, tg.State, tg.Replacement, tg.Owner, slices.Collect(maps.Keys(now)))
			continue
		}
		waitRunsFree(t, p)
	}
	if r0, r1 := got.Targets[0].Replacement, got.Targets[1].Replacement; r0 == r1 {
		t.Errorf("both targets claim %s", r0)
	}
}

// runningPods waits until exactly n pods with these labels run, not
// terminating, and returns them by name.
func runningPods(t *testing.T, ns string, labels map[string]string, n int) map[string]*corev1.Pod {
	t.Helper()
	pods := map[string]*corev1.Pod{}
	testenv.Eventually(t, 2*time.Minute, func() (bool, string) {
		var list corev1.PodList
		if err := lc.Client.List(context.Background(), &list, client.InNamespace(ns), client.MatchingLabels(labels)); err != nil {
			return false, err.Error()
		}
		clear(pods)
		all := 0
		for i := range list.Items {
			all++
			if p := &list.Items[i]; p.DeletionTimestamp == nil && gatewaypod.Running(p, "gateway") {
				pods[p.Name] = p
			}
		}
		return len(pods) == n && all == n, fmt.Sprintf("%d of %d pods running, want %d", len(pods), all, n)
	})
	return pods
}
