package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
)

// The agent's command line as a preStop hook drains the gateway before the
// kubelet stops it, with no operator: any deletion of the pod (a node
// drain, an eviction, an autoscaler) lets the turns in flight finish first.
// The gateway's home is on the host, so what the gateway last wrote is read
// after its pod is gone: without the hook it is "running" with its turns
// cut off.
func TestAPreStopHookDrainsBeforeTheGatewayStops(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := testenv.CreateNamespace(t, lc.Client)
	home := t.TempDir()
	if err := os.Chmod(home, 0o777); err != nil { // the gateway runs as uid 10000
		t.Fatal(err)
	}
	pod := gatewayPod(t, ns, "gw-0", func(p *corev1.Pod) {
		p.Labels["app"] = "prestop" // no drain of the suite selects it
		p.Spec.TerminationGracePeriodSeconds = ptr.To(int64(60))
		p.Spec.Volumes = []corev1.Volume{{Name: "home", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: home}}}}
		c := &p.Spec.Containers[0]
		c.Args = []string{"--interval", "200ms", "--turn-duration", "8s"}
		c.VolumeMounts = []corev1.VolumeMount{{Name: "home", MountPath: "/opt/data"}}
		c.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{
			Command: []string{"/usr/local/bin/hermes-drain-agent", "drain", "--wait", "--timeout", "50s"},
		}}}
	})
	record := func() marker.GatewayState {
		raw, _ := os.ReadFile(filepath.Join(home, marker.StateFilename))
		st, _ := marker.ParseGatewayState(raw)
		return st
	}
	inside(t, pod, `echo 2 > /opt/data/sim_turns`)
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		st := record()
		return st.State == marker.StateRunning && st.ActiveAgents == 2, fmt.Sprintf("turns not started: %+v", st)
	})

	deleted := time.Now()
	if err := lc.Client.Delete(ctx, pod); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 2*time.Minute, func() (bool, string) {
		err := lc.Client.Get(ctx, client.ObjectKeyFromObject(pod), &corev1.Pod{})
		return apierrors.IsNotFound(err), fmt.Sprintf("the pod is not gone: %v", err)
	})
	if st := record(); !st.DrainComplete() {
		t.Errorf("the gateway was stopped as %+v: want draining with its turns finished", st)
	}
	found := marker.Parse(mustRead(t, filepath.Join(home, marker.Filename)))
	if o, ok := found.Origin(); !ok || o.GatewayDrainUID != "hermes-drain-agent" {
		t.Errorf("the marker left on the home is not the hook's: %+v", found)
	}
	t.Logf("pod deleted with 2 turns in flight: stopped %s later, its turns finished", time.Since(deleted).Round(100*time.Millisecond))
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
