package node

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/internal/satoken"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
	"github.com/hermes-agent/hermes-drain-operator/test/cluster"
)

// withAgent adds the hermes-drain-agent as a native sidecar, as
// docs/agent.md shows it: it shares the pod's PID namespace and the
// gateway's HERMES_HOME volume, declares its port by name, proves who it is
// with a token for the operator, and its readiness probe is the gateway's.
// It runs as a uid of its own, with the gateway's group (the pod's fsGroup)
// for HERMES_HOME: the gateway's user can neither signal it nor read its
// token through /proc.
// The node has no pod network: the pod runs in the node's (loopback) with
// ports of its own, and the agent reaches the API server at its loopback
// address.
func withAgent(shareProcessNamespace bool) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		port, probe := freePort(), freePort()
		api := strings.TrimPrefix(lc.Config.Host, "https://")
		host, apiPort, _ := strings.Cut(api, ":")
		p.Spec.ShareProcessNamespace = ptr.To(shareProcessNamespace)
		p.Spec.SecurityContext = &corev1.PodSecurityContext{FSGroup: ptr.To(int64(10000))}
		p.Spec.AutomountServiceAccountToken = nil // the agent reads the API server's keys
		p.Spec.Volumes = []corev1.Volume{
			{Name: "hermes-home", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "agent-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{
				ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", Audience: satoken.OperatorAudience, ExpirationSeconds: ptr.To(int64(600))},
			}}}}},
		}
		home := corev1.VolumeMount{Name: "hermes-home", MountPath: "/opt/data"}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{home}
		p.Spec.InitContainers = []corev1.Container{{
			Name: "hermes-drain-agent", Image: "hermes-drain-agent:dev", ImagePullPolicy: corev1.PullNever,
			RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
			Args: []string{"serve", "--home", "/opt/data", "--operator", cluster.OperatorNamespace + "/" + cluster.OperatorRelease + "-hermes-drain-operator",
				"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--probe-listen", fmt.Sprintf("127.0.0.1:%d", probe)},
			Ports: []corev1.ContainerPort{{Name: drainv1.AgentPortName, ContainerPort: int32(port)}},
			Env:   []corev1.EnvVar{{Name: "KUBERNETES_SERVICE_HOST", Value: host}, {Name: "KUBERNETES_SERVICE_PORT", Value: apiPort}},
			ReadinessProbe: &corev1.Probe{PeriodSeconds: 1, ProbeHandler: corev1.ProbeHandler{
				HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromInt(probe)},
			}},
			SecurityContext: &corev1.SecurityContext{RunAsUser: ptr.To(int64(10001)), RunAsGroup: ptr.To(int64(10001))},
			VolumeMounts:    []corev1.VolumeMount{home, {Name: "agent-token", MountPath: "/var/run/secrets/hermes-drain", ReadOnly: true}},
		}}
		p.Labels["agent"] = "yes"
	}
}

func freePort() int {
	port, err := cluster.FreePort()
	if err != nil {
		panic(err)
	}
	return port
}

// setOperator upgrades the operator's release with values, and waits until
// its new pod is ready. (helm's --wait counts the old pod, which the
// hostNetwork rollout replaces only after it has stopped.)
func setOperator(t *testing.T, values string) {
	t.Helper()
	if out, err := lc.Run("helm", "upgrade", cluster.OperatorRelease, cluster.ChartPath, "-n", cluster.OperatorNamespace,
		"--reuse-values", "--set", values); err != nil {
		t.Fatalf("helm upgrade --set %s: %v: %s", values, err, out)
	}
	if out, err := lc.Run("kubectl", "-n", cluster.OperatorNamespace, "rollout", "status", operatorDeployment, "--timeout=120s"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}

const operatorDeployment = "deploy/" + cluster.OperatorRelease + "-hermes-drain-operator"

// podReady reads pod again and says whether it is Ready.
func podReady(t *testing.T, pod *corev1.Pod) bool {
	t.Helper()
	if err := lc.Client.Get(context.Background(), client.ObjectKeyFromObject(pod), pod); err != nil {
		t.Fatal(err)
	}
	return podReadyNow(pod)
}

// With the operator allowed no pods/exec at all, agent-equipped gateways
// are drained through their agents: the marker carries the epoch the
// gateway computes, the kubelet takes the pod out of Ready through the
// agent's probe alone, and cancel brings it back.
func TestAgents(t *testing.T) {
	setOperator(t, "exec.enabled=false")
	t.Cleanup(func() { setOperator(t, "exec.enabled=true") })

	t.Run("a drain through the agent, with no exec", func(t *testing.T) {
		ns := testenv.CreateNamespace(t, lc.Client)
		pods := []*corev1.Pod{gatewayPod(t, ns, "gw-0", withAgent(true)), gatewayPod(t, ns, "gw-1", withAgent(true))}
		for _, p := range pods {
			testenv.Eventually(t, time.Minute, func() (bool, string) { return podReady(t, p), p.Name + " not Ready" })
		}
		behindAService(t, ns, pods...)
		// The gateway's user, in the shared PID namespace, sees the agent
		// but can neither read its token through /proc nor signal it.
		reach := `pid=$(pidof hermes-drain-agent); id -u; [ -n "$pid" ] && echo sees-agent
cat /proc/$pid/root/var/run/secrets/hermes-drain/token >/dev/null 2>&1 && echo reads-token
kill -0 $pid 2>/dev/null && echo signals-agent; true`
		if got := inside(t, pods[0], reach); got != "10000\nsees-agent" {
			t.Errorf("the gateway's user against the agent: %q, want only that it sees it", got)
		}
		gwd := drainAll(t, ns)
		for _, p := range pods {
			checkMarkerHasItsEpoch(t, p)
			testenv.Eventually(t, time.Minute, func() (bool, string) { return !podReady(t, p), p.Name + " still Ready while draining" })
			// Out of traffic first: the kubelet turned the pod not Ready
			// through the agent's probe well before the marker was
			// requested (the agent's settle time, 5 s).
			ready := gatewaypod.Condition(p, corev1.PodReady)
			requested, ok := marker.Parse([]byte(inside(t, p, "cat /opt/data/.drain_request.json"))).RequestedAt()
			if ready == nil || !ok || requested.Sub(ready.LastTransitionTime.Time) < time.Second {
				t.Errorf("%s: not Ready since %v, marker requested at %s: want the pod out of traffic first", p.Name, ready, requested)
			} else {
				t.Logf("%s: not Ready %s before its marker was requested", p.Name, requested.Sub(ready.LastTransitionTime.Time).Round(100*time.Millisecond))
			}
		}
		cancel(t, gwd)
		for _, p := range pods {
			waitRunsFree(t, p)
			testenv.Eventually(t, time.Minute, func() (bool, string) { return podReady(t, p), p.Name + " not Ready after the cancel" })
		}
	})

	t.Run("the agent removes the marker when the gateway container ends, with no operator", func(t *testing.T) {
		ns := testenv.CreateNamespace(t, lc.Client)
		pod := gatewayPod(t, ns, "gw-0", withAgent(true))
		drainAll(t, ns)
		scaleOperator(t, 0)
		t.Cleanup(func() { scaleOperator(t, 1) })
		inside(t, pod, "kill $(pidof gatewaysim)")
		waitRestarted(t, pod)
		waitRunsFree(t, pod)
	})

	t.Run("without a shared PID namespace the agent refuses, and says why", func(t *testing.T) {
		ns := testenv.CreateNamespace(t, lc.Client)
		gatewayPod(t, ns, "gw-0", withAgent(false))
		gwd := newDrain(t, ns)
		testenv.Eventually(t, time.Minute, func() (bool, string) {
			got, err := drain.Observe(context.Background(), lc.Client, client.ObjectKeyFromObject(gwd))
			if err != nil || len(got.Targets) != 1 {
				return false, fmt.Sprintf("no target yet (%v)", err)
			}
			tg := got.Targets[0]
			return strings.Contains(tg.Message, "shareProcessNamespace: true"), fmt.Sprintf("target %s: %s", tg.State, tg.Message)
		})
	})
}

func cancel(t *testing.T, gwd *drainv1.GatewayDrain) {
	t.Helper()
	patch := client.MergeFrom(gwd.DeepCopy())
	gwd.Spec.Action = drainv1.ActionCancel
	if err := lc.Client.Patch(context.Background(), gwd, patch); err != nil {
		t.Fatal(err)
	}
}

// scaleOperator sets the operator's replicas and waits until that many run.
func scaleOperator(t *testing.T, replicas int) {
	t.Helper()
	if out, err := lc.Run("kubectl", "-n", cluster.OperatorNamespace, "scale", operatorDeployment, "--replicas="+strconv.Itoa(replicas)); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	testenv.Eventually(t, 2*time.Minute, func() (bool, string) {
		var pods corev1.PodList
		_ = lc.Client.List(context.Background(), &pods, client.InNamespace(cluster.OperatorNamespace))
		running := 0
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && podReadyNow(&p) {
				running++
			}
		}
		return running == replicas && len(pods.Items) == replicas, fmt.Sprintf("%d operator pods, %d ready", len(pods.Items), running)
	})
}

func podReadyNow(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
