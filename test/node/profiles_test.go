package node

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
)

// slots runs the pod's gateways as upstream's image runs standalone
// profiles: a root gateway and one per profile, each a process of its own.
func slots(profiles ...string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		c := &p.Spec.Containers[0]
		c.Command = []string{"/usr/local/bin/gateway-slots"}
		c.Args = append(profiles, "--", "--interval", "200ms", "--turn-duration", "15s")
	}
}

// target is the drain's one target as the operator last recorded it.
func target(t *testing.T, gwd *drainv1.GatewayDrain) (drainv1.Target, bool) {
	got, err := drain.Observe(context.Background(), lc.Client, client.ObjectKeyFromObject(gwd))
	if err != nil || len(got.Targets) == 0 {
		return drainv1.Target{}, false
	}
	return got.Targets[0], true
}

func waitTarget(t *testing.T, gwd *drainv1.GatewayDrain, what string, ok func(drainv1.Target) bool) drainv1.Target {
	t.Helper()
	var tg drainv1.Target
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		var found bool
		tg, found = target(t, gwd)
		return found && ok(tg), fmt.Sprintf("want %s; target %s, %d gateways, blocked by %q: %s", what, tg.State, tg.Gateways, tg.BlockingGateway, tg.Message)
	})
	return tg
}

// One container runs three gateways, as upstream's s6 slots do: the drain
// reaches each, waits for each (issue 24, item 2), leaves a person's cancel
// in one profile home alone until asked again (item 3), and counts a
// gateway stopped on purpose, or one that exited, as drained with our
// marker in place (item 4).
func TestEveryGatewayOfAContainerIsDrained(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := testenv.CreateNamespace(t, lc.Client)
	pod := gatewayPod(t, ns, "slots", slots("alice", "bob"))
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		out := inside(t, pod, `cat /opt/data/profiles/alice/gateway_state.json /opt/data/profiles/bob/gateway_state.json /opt/data/gateway_state.json 2>&1`)
		return strings.Count(out, `"gateway_state":"running"`) == 3, "three gateways not running yet: " + out
	})
	if pids := inside(t, pod, `pidof gatewaysim | wc -w`); pids != "3" {
		t.Fatalf("%s gateway processes, want 3", pids)
	}
	inside(t, pod, `echo 2 > /opt/data/profiles/bob/sim_turns`)
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		out := inside(t, pod, `cat /opt/data/profiles/bob/gateway_state.json`)
		return strings.Contains(out, `"active_agents":2`), "bob's turns not started: " + out
	})

	gwd := newDrain(t, ns)
	waitTarget(t, gwd, "bob's turns holding the drain", func(tg drainv1.Target) bool {
		return tg.State == drainv1.TargetDraining && tg.BlockingGateway == "bob" && tg.Gateways == 3
	})
	waitDrained(t, gwd)
	if out := inside(t, pod, `ls /opt/data/.drain_request.json /opt/data/profiles/*/.drain_request.json | wc -l`); out != "3" {
		t.Errorf("%s markers, want one in each of the three homes", out)
	}

	// A person cancels alice's drain through upstream's dashboard: the
	// marker is deleted. It stands, and Drained is False while alice serves.
	inside(t, pod, `rm /opt/data/profiles/alice/.drain_request.json`)
	waitTarget(t, gwd, "alice's marker removed", func(tg drainv1.Target) bool {
		return tg.State == drainv1.TargetMarkerRemoved && tg.BlockingGateway == "alice"
	})
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		_ = lc.Client.Get(ctx, client.ObjectKeyFromObject(gwd), gwd)
		return !meta.IsStatusConditionTrue(gwd.Status.Conditions, drainv1.ConditionDrained), "Drained while alice serves again"
	})
	time.Sleep(2 * time.Second) // ten of the operator's polls: nothing may write it back
	if out := inside(t, pod, `ls /opt/data/profiles/alice/`); strings.Contains(out, ".drain_request.json") {
		t.Fatalf("alice's marker, removed by a person, was written back: %s", out)
	}
	patch := client.MergeFrom(gwd.DeepCopy())
	gwd.Annotations = map[string]string{drainv1.AskAgainAnnotation: time.Now().Add(time.Second).UTC().Format(time.RFC3339)}
	if err := lc.Client.Patch(ctx, gwd, patch); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, gwd)

	// alice is stopped on purpose and bob's gateway exits: neither serves,
	// both hold our marker, the target stays drained, said apart.
	inside(t, pod, `touch /opt/data/profiles/alice/sim_stop; for p in $(pidof gatewaysim); do tr '\0' ' ' < /proc/$p/cmdline | grep -q profiles/bob && kill $p; done; true`)
	tg := waitTarget(t, gwd, "drained with two gateways not running", func(tg drainv1.Target) bool {
		return tg.State == drainv1.TargetDrained && strings.Contains(tg.Message, "2 not running")
	})
	if tg.Gateways != 3 {
		t.Errorf("%d gateways, want 3", tg.Gateways)
	}

	patch = client.MergeFrom(gwd.DeepCopy())
	gwd.Spec.Action = drainv1.ActionCancel
	if err := lc.Client.Patch(ctx, gwd, patch); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		out := inside(t, pod, `ls /opt/data/.drain_request.json /opt/data/profiles/*/.drain_request.json 2>/dev/null | wc -l`)
		return out == "0", out + " markers left"
	})
}

// An idle gated gateway writes its record once and stays Ready, however
// long nothing happens: upstream writes the record on events only, and the
// operator judges liveness by the writer's process, never by the file's
// age (issue 24, item 1). 150 s is longer than the 2 minutes a read may go
// without news before the gate turns Unknown (--readiness-keep-last-for).
func TestAnIdleGatedGatewayStaysReady(t *testing.T) {
	t.Parallel()
	ns := testenv.CreateNamespace(t, lc.Client)
	pod := gatewayPod(t, ns, "idle", gated)
	waitReady(t, pod, true)
	written := inside(t, pod, `cat /opt/data/gateway_state.json`)
	gate := gatewaypod.GateCondition(pod)
	if gate == nil {
		t.Fatal("no gate condition on a Ready pod")
	}
	since := gate.LastTransitionTime
	for end := time.Now().Add(150 * time.Second); time.Now().Before(end); {
		_ = lc.Client.Get(context.Background(), client.ObjectKeyFromObject(pod), pod)
		// The gate's last transition catches a change between two looks.
		if c := gatewaypod.GateCondition(pod); c == nil || c.Status != corev1.ConditionTrue || !c.LastTransitionTime.Equal(&since) {
			t.Fatalf("an idle gateway's gate changed: %+v", c)
		}
		time.Sleep(5 * time.Second) // watching a condition that must never change: there is nothing to wait for
	}
	waitReady(t, pod, true)
	if now := inside(t, pod, `cat /opt/data/gateway_state.json`); now != written {
		t.Errorf("the idle gateway rewrote its record: %s, then %s", written, now)
	}
}
