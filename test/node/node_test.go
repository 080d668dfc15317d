// Package node proves on a real node what only real containers can show: a
// kubelet with containerd and runc on this machine (test/cluster's
// RealNode), gateways running from the test gateway image (busybox and the
// simulator, as uid 10000, HERMES_HOME /opt/data), pods/exec through the
// real kubelet into each container's own PID namespace, and the operator
// itself a pod from its image, installed by `helm install --wait` with the
// chart's RBAC only.
package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod/gatewaypodtest"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
	"github.com/hermes-agent/hermes-drain-operator/test/cluster"
)

var lc *cluster.Cluster

// operatorValues are the chart values the operator is installed with.
const operatorValues = "pollInterval=200ms,idlePollInterval=1s,readiness.interval=2s"

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "hermes-node-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	if lc, err = cluster.Start(context.Background(), dir, cluster.Options{RealNode: true, WithoutOperatorCRDs: true}); err != nil {
		fmt.Fprintln(os.Stderr, "starting the real node:", err)
		if lc != nil {
			lc.Stop()
		}
		return 1
	}
	defer lc.Stop()
	fmt.Fprintf(os.Stderr, "real node up in %s\n", time.Since(start).Round(100*time.Millisecond))
	start = time.Now()
	if err := lc.InstallOperator(operatorValues); err != nil {
		fmt.Fprintln(os.Stderr, "helm install:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "operator installed by helm in %s\n", time.Since(start).Round(100*time.Millisecond))
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "--- operator log:\n%s\n", lc.OperatorLog())
	}
	return code
}

// simPod is a pod of the test gateway image on the real node, not created:
// a pod of its own (gatewayPod), or a controller's template.
func simPod(ns, name string) *corev1.Pod {
	pod := gatewaypodtest.Pod(gatewaypodtest.Spec{Namespace: ns, Name: name, Image: "hermes-gateway-sim:dev",
		Labels: map[string]string{"app": "hermes-gateway"}, Declared: true, NodeName: cluster.RealNodeName})
	pod.Spec.HostNetwork = true // nothing leaves loopback
	pod.Spec.AutomountServiceAccountToken = ptr.To(false)
	pod.Spec.Containers[0].ImagePullPolicy, pod.Spec.Containers[0].Args = corev1.PullNever, []string{"--interval", "200ms"}
	return pod
}

// gatewayPod runs the test gateway image on the real node; mutate may
// change the pod first.
func gatewayPod(t *testing.T, ns, name string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	t.Helper()
	pod := simPod(ns, name)
	for _, m := range mutate {
		m(pod)
	}
	if err := lc.Client.Create(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		if err := lc.Client.Get(context.Background(), client.ObjectKeyFromObject(pod), pod); err != nil {
			return false, err.Error()
		}
		cs := pod.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].State.Running != nil, fmt.Sprintf("%s not running: %+v", name, pod.Status)
	})
	return pod
}

// inside runs a shell command in the gateway container (the pod's first), as kubectl exec does.
func inside(t *testing.T, pod *corev1.Pod, script string) string {
	t.Helper()
	out, err := lc.Run("kubectl", "-n", pod.Namespace, "exec", pod.Name, "-c", pod.Spec.Containers[0].Name, "--", "sh", "-c", script)
	if err != nil {
		t.Fatalf("exec in %s: %v: %s", pod.Name, err, out)
	}
	return strings.TrimSpace(out)
}

// newDrain creates a GatewayDrain "d" of every gateway of namespace ns.
func newDrain(t *testing.T, ns string) *drainv1.GatewayDrain {
	t.Helper()
	gwd := &drainv1.GatewayDrain{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "d"}}
	gwd.Spec.Selector.MatchLabels = map[string]string{"app": "hermes-gateway"}
	if err := lc.Client.Create(context.Background(), gwd); err != nil {
		t.Fatal(err)
	}
	return gwd
}

// drainAll drains every gateway of namespace ns and waits for Drained.
func drainAll(t *testing.T, ns string) *drainv1.GatewayDrain {
	t.Helper()
	gwd := newDrain(t, ns)
	waitDrained(t, gwd)
	return gwd
}

// waitDrained waits until the drain is Drained.
func waitDrained(t *testing.T, gwd *drainv1.GatewayDrain) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		_ = lc.Client.Get(context.Background(), client.ObjectKeyFromObject(gwd), gwd)
		return meta.IsStatusConditionTrue(gwd.Status.Conditions, drainv1.ConditionDrained), fmt.Sprintf("not Drained: %+v", gwd.Status.Counts)
	})
}

// waitRestarted waits until the kubelet has restarted pod's gateway once.
func waitRestarted(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		_ = lc.Client.Get(context.Background(), client.ObjectKeyFromObject(pod), pod)
		cs := pod.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].RestartCount == 1 && cs[0].State.Running != nil, fmt.Sprintf("not restarted: %+v", cs)
	})
}

// waitRestartedAndCleared waits until the drain's one target is Restarted
// and its marker removed from the new instantiation.
func waitRestartedAndCleared(t *testing.T, gwd *drainv1.GatewayDrain) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		got, err := drain.Observe(context.Background(), lc.Client, client.ObjectKeyFromObject(gwd))
		if err != nil || len(got.Targets) == 0 {
			return false, fmt.Sprintf("no targets yet (%v)", err)
		}
		tg := got.Targets[0]
		return tg.State == drainv1.TargetRestarted && tg.MarkerRemovedAt != nil, fmt.Sprintf("target %s: %s", tg.State, tg.Message)
	})
}

// waitRunsFree waits until pod's gateway holds no marker and runs.
func waitRunsFree(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		state := inside(t, pod, `[ -e /opt/data/.drain_request.json ] && echo marker; cat /opt/data/gateway_state.json`)
		return !strings.HasPrefix(state, "marker") && strings.Contains(state, `"gateway_state":"running"`), pod.Name + " is held: " + state
	})
}

// epochInside computes the epoch in the container by upstream's recipe.
const epochInside = `read -r b < /proc/sys/kernel/random/boot_id; s=$(cat /proc/1/stat); set -- ${s##*)}; echo "$b:${20}"`

// checkMarkerHasItsEpoch checks that pod's gateway holds a marker stamped
// with the epoch a process in its container computes, which it honours.
func checkMarkerHasItsEpoch(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	epoch := inside(t, pod, epochInside)
	found := marker.Parse([]byte(inside(t, pod, "cat /opt/data/.drain_request.json")))
	if found.EpochValue() != epoch || !found.Honoured(epoch, time.Now()) {
		t.Errorf("%s: marker epoch %q, the gateway container's %q", pod.Name, found.EpochValue(), epoch)
	}
}

// Every drain here is made by the operator as a user runs it: a pod from
// its image, installed by `helm install --wait`, acting with its chart
// ServiceAccount's token. (No operator runs on the host.)
func TestTheOperatorIsAPodFromItsImage(t *testing.T) {
	var pods corev1.PodList
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		if err := lc.Client.List(context.Background(), &pods, client.InNamespace(cluster.OperatorNamespace)); err != nil {
			return false, err.Error()
		}
		return len(pods.Items) == 1 && podReadyNow(&pods.Items[0]), fmt.Sprintf("%d operator pods, want 1 Ready", len(pods.Items))
	})
	p := pods.Items[0]
	c := p.Status.ContainerStatuses
	if len(c) != 1 || c[0].Image != "docker.io/library/hermes-drain-operator:dev" {
		t.Errorf("operator container %+v", c)
	}
	if p.Spec.ServiceAccountName != cluster.OperatorRelease+"-hermes-drain-operator" {
		t.Errorf("service account %q", p.Spec.ServiceAccountName)
	}
	mounted := false
	for _, m := range p.Spec.Containers[0].VolumeMounts {
		mounted = mounted || m.MountPath == "/var/run/secrets/kubernetes.io/serviceaccount"
	}
	if !mounted {
		t.Errorf("no ServiceAccount token mounted: %+v", p.Spec.Containers[0].VolumeMounts)
	}
}

// A drain through the real kubelet: each container gets a marker stamped
// with its own epoch (its own PID 1, distinct per pod, equal to what a
// process inside computes), the simulator inside honours it, the drain is
// Drained; cancelled, every marker is gone and the gateways run again.
func TestDrainRealContainers(t *testing.T) {
	ctx := context.Background()
	ns := testenv.CreateNamespace(t, lc.Client)
	// gw-0 as the upstream image runs: the container (and so exec) as root,
	// the gateway dropped to uid 10000, which owns HERMES_HOME.
	asUpstream := func(p *corev1.Pod) {
		p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsUser: ptr.To(int64(0)), RunAsGroup: ptr.To(int64(0))}
		p.Spec.Containers[0].Args = append(p.Spec.Containers[0].Args, "--run-as", "10000:10000")
	}
	// gw-3 as upstream's image runs with HERMES_UID remapping the gateway's
	// user: nothing may depend on uid 10000 (its HERMES_HOME a volume the
	// remapped user may write).
	remapped := func(p *corev1.Pod) {
		p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsUser: ptr.To(int64(0)), RunAsGroup: ptr.To(int64(0))}
		p.Spec.Containers[0].Args = append(p.Spec.Containers[0].Args, "--run-as", "10500:10500")
		p.Spec.Volumes = []corev1.Volume{{Name: "home", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "home", MountPath: "/opt/data"}}
	}
	pods := []*corev1.Pod{gatewayPod(t, ns, "gw-0", asUpstream), gatewayPod(t, ns, "gw-1"), gatewayPod(t, ns, "gw-2"), gatewayPod(t, ns, "gw-3", remapped)}
	if who := inside(t, pods[0], `id -u; stat -c %u /opt/data; awk '/^Uid/ {print $2}' /proc/1/status`); who != "0\n10000\n10000" {
		t.Fatalf("exec uid, HERMES_HOME owner, gateway uid: %q, want 0, 10000, 10000", who)
	}
	if who := inside(t, pods[3], `id -u; awk '/^Uid/ {print $2}' /proc/1/status`); who != "0\n10500" {
		t.Fatalf("exec uid, gateway uid: %q, want 0, 10500", who)
	}
	epochs := map[string]bool{}
	for _, p := range pods {
		epochs[inside(t, p, epochInside)] = true
	}
	if len(epochs) != len(pods) {
		t.Fatalf("containers share epochs: %v", epochs)
	}

	gwd := drainAll(t, ns)
	for _, p := range pods {
		checkMarkerHasItsEpoch(t, p)
		if st, err := marker.ParseGatewayState([]byte(inside(t, p, "cat /opt/data/gateway_state.json"))); err != nil || !st.DrainComplete() {
			t.Errorf("%s: the gateway inside is not drained: %+v %v", p.Name, st, err)
		}
	}
	got, err := drain.Observe(ctx, lc.Client, client.ObjectKeyFromObject(gwd))
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range got.Targets {
		if tg.HermesHome != "/opt/data" {
			t.Errorf("%s: HERMES_HOME %q, want the image's /opt/data", tg.PodName, tg.HermesHome)
		}
	}

	patch := client.MergeFrom(gwd.DeepCopy())
	gwd.Spec.Action = drainv1.ActionCancel
	if err := lc.Client.Patch(ctx, gwd, patch); err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		waitRunsFree(t, p)
	}
}

// A container restarted by the kubelet (its PID 1 killed) is a new
// instantiation with a new epoch. The marker left on the pod's volume is
// ignored by the gateway inside (upstream's own rule, now for real), and
// the operator, whose drain was already Drained, ends that target's drain
// and removes its marker.
func TestARestartedContainerEndsItsDrain(t *testing.T) {
	ns := testenv.CreateNamespace(t, lc.Client)
	pod := gatewayPod(t, ns, "gw-0", func(p *corev1.Pod) { // HERMES_HOME outlives the container
		p.Spec.Volumes = []corev1.Volume{{Name: "home", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "home", MountPath: "/opt/data"}}
	})
	before := inside(t, pod, epochInside)
	gwd := drainAll(t, ns)

	_, _ = lc.Run("kubectl", "-n", ns, "exec", pod.Name, "--", "kill", "1") // the exec dies with the container
	waitRestarted(t, pod)
	if after := inside(t, pod, epochInside); after == before {
		t.Errorf("the restarted container kept its epoch %s", after)
	}
	waitRestartedAndCleared(t, gwd)
	waitRunsFree(t, pod)
}

// The readiness gate is honoured by the real kubelet: the pod is Ready only
// while its gateway accepts turns, not Ready while it drains, Ready again
// after the cancel. (Its endpoint in a Service cannot be shown here: the
// API server refuses loopback addresses in EndpointSlices, and these
// hostNetwork pods' IP is 127.0.0.1; the kwok suites show the endpoints.)
func TestTheKubeletFollowsTheReadinessGate(t *testing.T) {
	ctx := context.Background()
	ns := testenv.CreateNamespace(t, lc.Client)
	pod := gatewayPod(t, ns, "gw-0", gated)
	waitReady(t, pod, true)

	gwd := newDrain(t, ns)
	waitReady(t, pod, false)
	patch := client.MergeFrom(gwd.DeepCopy())
	gwd.Spec.Action = drainv1.ActionCancel
	if err := lc.Client.Patch(ctx, gwd, patch); err != nil {
		t.Fatal(err)
	}
	waitReady(t, pod, true)
}

func gated(p *corev1.Pod) {
	p.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: drainv1.ReadinessGate}}
}

// waitReady waits until the pod's gate and the kubelet's Ready are both
// True, or both not.
func waitReady(t *testing.T, pod *corev1.Pod, want bool) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		_ = lc.Client.Get(context.Background(), client.ObjectKeyFromObject(pod), pod)
		gate := gatewaypod.ConditionStatus(pod, drainv1.ReadinessGate) == corev1.ConditionTrue
		podReady := gatewaypod.ConditionStatus(pod, corev1.PodReady) == corev1.ConditionTrue
		return gate == want && podReady == want, fmt.Sprintf("%s: gate %v, kubelet's Ready %v; want %v", pod.Name, gate, podReady, want)
	})
}

// With shareProcessNamespace PID 1 is the pod's pause process for every
// container: the epoch survives a restart of the gateway container, so only
// the operator can end the drain of the new instantiation, and it does: it
// removes its marker from the volume.
func TestSharedProcessNamespaceKeepsTheEpochAndTheOperatorClears(t *testing.T) {
	ns := testenv.CreateNamespace(t, lc.Client)
	pod := gatewayPod(t, ns, "gw-0", func(p *corev1.Pod) {
		p.Spec.ShareProcessNamespace = ptr.To(true)
		p.Spec.Volumes = []corev1.Volume{{Name: "home", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "home", MountPath: "/opt/data"}}
	})
	if comm := inside(t, pod, "cat /proc/1/comm"); comm != "pause" {
		t.Fatalf("PID 1 is %q, want the pause process", comm)
	}
	before := inside(t, pod, epochInside)
	gwd := drainAll(t, ns)

	// The gateway is no longer PID 1: stop it by name.
	_, _ = lc.Run("kubectl", "-n", ns, "exec", pod.Name, "--", "sh", "-c", "kill $(pidof gatewaysim)")
	waitRestarted(t, pod)
	if after := inside(t, pod, epochInside); after != before {
		t.Errorf("the epoch changed with a shared process namespace: %s -> %s", before, after)
	}
	waitRestartedAndCleared(t, gwd)
	waitRunsFree(t, pod)
}

// A StatefulSet pod recreated on a durable volume (hostPath: the volume
// outlives the pod, as upstream's /opt/data does) is a new instantiation:
// the marker on the volume is the old epoch's, ignored by the new gateway,
// and the operator, whose drain was Drained, removes it.
func TestARecreatedPodOnADurableVolumeIsNotDrained(t *testing.T) {
	ctx := context.Background()
	ns := testenv.CreateNamespace(t, lc.Client)
	volume := t.TempDir()
	if err := os.Chmod(volume, 0o777); err != nil { // the gateway runs as uid 10000
		t.Fatal(err)
	}
	labels := map[string]string{"app": "hermes-gateway", drainv1.GatewayLabel: "true"}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gw"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeName: cluster.RealNodeName, HostNetwork: true, AutomountServiceAccountToken: ptr.To(false),
					Containers: []corev1.Container{{
						Name: "gateway", Image: "hermes-gateway-sim:dev", ImagePullPolicy: corev1.PullNever,
						Args:         []string{"--interval", "200ms"},
						VolumeMounts: []corev1.VolumeMount{{Name: "home", MountPath: "/opt/data"}},
					}},
					Volumes: []corev1.Volume{{Name: "home", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: volume}}}},
				},
			},
		},
	}
	if err := lc.Client.Create(ctx, sts); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gw-0"}}
	running := func() {
		t.Helper()
		testenv.Eventually(t, time.Minute, func() (bool, string) {
			err := lc.Client.Get(ctx, client.ObjectKeyFromObject(pod), pod)
			return err == nil && len(pod.Status.ContainerStatuses) == 1 && pod.Status.ContainerStatuses[0].State.Running != nil, "gw-0 not running"
		})
	}
	running()
	gwd := drainAll(t, ns)
	oldUID := pod.UID
	if err := lc.Client.Delete(ctx, pod); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 2*time.Minute, func() (bool, string) {
		err := lc.Client.Get(ctx, client.ObjectKeyFromObject(pod), pod)
		return err == nil && pod.UID != oldUID && len(pod.Status.ContainerStatuses) == 1 && pod.Status.ContainerStatuses[0].State.Running != nil, "gw-0 not recreated"
	})
	waitRestartedAndCleared(t, gwd)
	if _, err := os.Stat(filepath.Join(volume, marker.Filename)); !os.IsNotExist(err) {
		t.Errorf("our marker is still on the volume: %v", err)
	}
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		state := inside(t, pod, "cat /opt/data/gateway_state.json")
		return strings.Contains(state, `"gateway_state":"running"`), "the new pod is held: " + state
	})
}

// A container without /bin/sh cannot run the in-container program: its
// target fails with the runtime's own words, naming /bin/sh, and the drain
// says which pod blocks it.
func TestAContainerWithoutShFailsItsTargetClearly(t *testing.T) {
	ctx := context.Background()
	ns := testenv.CreateNamespace(t, lc.Client)
	gatewayPod(t, ns, "no-sh", func(p *corev1.Pod) { // the pause image: one static binary, nothing else
		p.Spec.Containers[0].Image, p.Spec.Containers[0].Args = "pause:dev", nil
	})
	gwd := newDrain(t, ns)
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		got, err := drain.Observe(ctx, lc.Client, client.ObjectKeyFromObject(gwd))
		if err != nil || len(got.Targets) == 0 {
			return false, fmt.Sprintf("no targets yet (%v)", err)
		}
		tg := got.Targets[0]
		drained := meta.FindStatusCondition(got.Status.Conditions, drainv1.ConditionDrained)
		return tg.State == drainv1.TargetFailed && strings.Contains(tg.Message, `"/bin/sh"`) && strings.Contains(tg.Message, "no such file") &&
			drained != nil && strings.Contains(drained.Message, "no-sh (Failed"), fmt.Sprintf("target %s: %s", tg.State, tg.Message)
	})
	// Nothing can remove a marker from it (nor was one written): its pod
	// goes first, so that the deleted drain lets go at once rather than
	// after --release-timeout (which would hold later tests' uninstall).
	if err := lc.Client.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "no-sh"}}, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	if err := lc.Client.Delete(ctx, gwd); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		err := lc.Client.Get(ctx, client.ObjectKeyFromObject(gwd), &drainv1.GatewayDrain{})
		return apierrors.IsNotFound(err), fmt.Sprintf("the drain is not gone: %v", err)
	})
}
