package gatewaydrain

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	testclock "k8s.io/utils/clock/testing"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// container is a gateway container's HERMES_HOME and /proc, on disk, with
// the calls made in this process: the operator's whole view of it.
type container struct {
	t          *testing.T
	home, proc string
}

func newContainer(t *testing.T) *container {
	c := &container{t: t, home: t.TempDir(), proc: t.TempDir()}
	c.write(c.proc, "sys/kernel/random/boot_id", "b00t")
	c.write(c.proc, "1/stat", "1 (init) S 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 42 1 1")
	return c
}

func (c *container) write(dir, name, content string) {
	c.t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// gateway runs a gateway (PID pid) in the home below the root home ("" for
// the root's), recording state with agents turns in flight; pid 0 leaves
// the record of a process that is gone.
func (c *container) gateway(profile string, pid int, state string, agents int, extra string) {
	home := c.home
	if profile != "" {
		home = filepath.Join(c.home, "profiles", profile)
	}
	writer := pid
	if pid == 0 {
		writer = 4242 // no such process in c.proc
	} else {
		c.write(c.proc, fmt.Sprintf("%d/stat", pid), fmt.Sprintf("%d (python3) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 500 1 1", pid))
	}
	c.write(home, marker.StateFilename, fmt.Sprintf(`{"kind":"hermes-gateway","gateway_state":%q,"active_agents":%d,"pid":%d,"start_time":500%s}`, state, agents, writer, extra))
}

// stepAt makes one step of the drain towards target at now, its next
// attempt due.
func stepAt(r *Reconciler, gwd *drainv1.GatewayDrain, target drainv1.Target, now time.Time) (drainv1.Target, *view) {
	d := newView(gwd, nil, now, time.Hour)
	d.callsUntil = time.Now().Add(time.Hour)
	target.LastAttemptTime = nil
	target, _ = r.stepDrain(context.Background(), d, target, nil, now)
	return target, d
}

func (c *container) hasMarker(profile string) bool {
	_, err := os.Stat(filepath.Join(c.home, "profiles", profile, marker.Filename))
	return err == nil
}

// A drain reaches every gateway a container runs: the root home's and each
// profile's that runs one (issue 24, item 2). Drained waits for every one;
// the target names the one that blocks; a person's cancel in one profile
// home stands; under multiplex the root's marker is the only one.
func TestADrainReachesEveryProfileGateway(t *testing.T) {
	now := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	c := newContainer(t)
	c.gateway("", 10, marker.StateRunning, 0, "")
	c.gateway("alice", 11, marker.StateRunning, 2, "")
	c.gateway("bob", 0, marker.StateRunning, 0, "") // left by a gateway that is gone
	if err := os.MkdirAll(filepath.Join(c.home, "profiles", "carol"), 0o755); err != nil {
		t.Fatal(err)
	}
	gwd := &drainv1.GatewayDrain{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "d", UID: "uid-1"}}
	gwd.Spec.TrafficOrder = drainv1.TrafficMarkerFirst
	r := &Reconciler{Options: DefaultOptions(), Transport: calls.InProcess{ProcRoot: c.proc}, Clock: testclock.NewFakePassiveClock(now)}
	target := drainv1.Target{PodName: "gw-0", PodUID: "pod-uid", Container: "gateway", HermesHome: c.home, State: drainv1.TargetPending}
	step := func(at time.Duration, want drainv1.TargetState, blocking string) {
		t.Helper()
		target, _ = stepAt(r, gwd, target, now.Add(at))
		if target.State != want || target.BlockingGateway != blocking {
			t.Fatalf("at %s: %s blocked by %q (%s), want %s blocked by %q", at, target.State, target.BlockingGateway, target.Message, want, blocking)
		}
	}

	step(0, drainv1.TargetDraining, calls.DefaultProfile)
	if !c.hasMarker("alice") || c.hasMarker("bob") || c.hasMarker("carol") || target.Gateways != 2 || target.MarkedProfiles != "alice" {
		t.Fatalf("markers alice %v bob %v carol %v; %d gateways, marked %q: want alice's only, 2 gateways",
			c.hasMarker("alice"), c.hasMarker("bob"), c.hasMarker("carol"), target.Gateways, target.MarkedProfiles)
	}
	c.gateway("", 10, marker.StateDraining, 0, "")
	c.gateway("alice", 11, marker.StateDraining, 2, "")
	step(time.Second, drainv1.TargetDraining, "alice")
	if !strings.Contains(target.Message, "profile alice: gateway draining: 2 active agents") || *target.ActiveAgents != 2 {
		t.Errorf("message %q, %d agents: want alice's 2 turns named", target.Message, *target.ActiveAgents)
	}
	c.gateway("alice", 11, marker.StateDraining, 0, "")
	step(2*time.Second, drainv1.TargetDraining, "")
	step(5*time.Second, drainv1.TargetDrained, "")

	// A person cancels alice's drain: it stands.
	if err := os.Remove(filepath.Join(c.home, "profiles", "alice", marker.Filename)); err != nil {
		t.Fatal(err)
	}
	target.MarkerWrittenAt = &metav1.Time{Time: now}
	step(6*time.Second, drainv1.TargetMarkerRemoved, "alice")
	step(7*time.Second, drainv1.TargetMarkerRemoved, "alice")
	if c.hasMarker("alice") {
		t.Error("alice's marker, removed by a person, was written again")
	}
}

// A gateway that does not run holds no drain: with our marker in place (it
// drains if it starts), it counts as drained, said apart from a gateway
// draining with no turn in flight (issue 24, item 4). Under multiplex, the
// root's gateway is the only one, whatever profile homes hold.
func TestAGatewayThatDoesNotRunIsDrainedWithOurMarker(t *testing.T) {
	now := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	gwd := &drainv1.GatewayDrain{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "d", UID: "uid-1"}}
	gwd.Spec.TrafficOrder = drainv1.TrafficMarkerFirst
	for _, tc := range []struct {
		name     string
		setup    func(c *container)
		gateways int32
		words    string
		state    string
	}{
		{"a gateway that exited", func(c *container) { c.gateway("", 0, marker.StateRunning, 0, "") }, 1, "no gateway runs", notRunningState},
		{"a gateway stopped on purpose", func(c *container) { c.gateway("", 10, marker.StateStopped, 0, `,"desired_state":"stopped"`) }, 1, "no gateway runs", marker.StateStopped},
		{"a container whose gateway has not started", func(c *container) {
			c.write(c.home, marker.StateFilename, `{"gateway_state":"running","desired_state":"running"}`)
		}, 1, "no gateway runs", notRunningState},
		{"a stopped profile beside a draining root", func(c *container) {
			c.gateway("", 10, marker.StateDraining, 0, "")
			c.gateway("alice", 11, marker.StateRunning, 0, "")
		}, 2, "1 gateway draining with no active agents, 1 not running", marker.StateDraining},
		{"a multiplexer", func(c *container) {
			c.gateway("", 10, marker.StateDraining, 0, `,"served_profiles":["alice","bob"]`)
			c.gateway("alice", 11, marker.StateRunning, 3, "") // live, but the multiplexer serves alice
		}, 1, "gateway draining with no active agents", marker.StateDraining},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newContainer(t)
			tc.setup(c)
			r := &Reconciler{Options: DefaultOptions(), Transport: calls.InProcess{ProcRoot: c.proc}, Clock: testclock.NewFakePassiveClock(now)}
			target := drainv1.Target{PodName: "gw-0", PodUID: "pod-uid", Container: "gateway", HermesHome: c.home, State: drainv1.TargetPending}
			for i, at := range []time.Duration{0, 3 * time.Second, 6 * time.Second} {
				if i == 1 && tc.name == "a stopped profile beside a draining root" {
					c.gateway("alice", 11, marker.StateStopped, 0, "") // it stops, our marker in its home
				}
				target, _ = stepAt(r, gwd, target, now.Add(at))
			}
			if target.State != drainv1.TargetDrained || target.Gateways != tc.gateways || !strings.Contains(target.Message, tc.words) || target.GatewayState != tc.state {
				t.Errorf("%s, %d gateways, state %q (%s); want Drained, %d gateways, state %q, saying %q", target.State, target.Gateways, target.GatewayState, target.Message, tc.gateways, tc.state, tc.words)
			}
		})
	}
}

// A gateway whose record does not show that it counts all its work is
// drained with a warning on the target, in the counts and in the Drained
// condition; spec.requireCompleteWorkCounting refuses it (issue 24, item 7).
func TestAGatewayThatMayNotCountAllItsWork(t *testing.T) {
	now := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		extra   string
		require bool
		want    drainv1.TargetState
		partial bool
	}{
		{"an older gateway", "", false, drainv1.TargetDrained, true},
		{"an older gateway, complete counting required", "", true, drainv1.TargetDraining, false},
		{"a gateway that shows its version", `,"code_version":"0.21.3"`, true, drainv1.TargetDrained, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newContainer(t)
			c.gateway("", 10, marker.StateDraining, 0, tc.extra)
			gwd := &drainv1.GatewayDrain{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "d", UID: "uid-1"}}
			gwd.Spec.TrafficOrder, gwd.Spec.RequireCompleteWorkCounting = drainv1.TrafficMarkerFirst, tc.require
			r := &Reconciler{Options: DefaultOptions(), Transport: calls.InProcess{ProcRoot: c.proc}, Clock: testclock.NewFakePassiveClock(now)}
			target := drainv1.Target{PodName: "gw-0", PodUID: "pod-uid", Container: "gateway", HermesHome: c.home, State: drainv1.TargetPending}
			var d *view
			for _, at := range []time.Duration{0, 3 * time.Second} {
				target, d = stepAt(r, gwd, target, now.Add(at))
			}
			if target.State != tc.want || target.PartialWorkCounting != tc.partial {
				t.Fatalf("%s, partial %v (%s); want %s, partial %v", target.State, target.PartialWorkCounting, target.Message, tc.want, tc.partial)
			}
			if tc.require && tc.want == drainv1.TargetDraining && !strings.Contains(target.Message, "requireCompleteWorkCounting") {
				t.Errorf("the refusal does not say why: %s", target.Message)
			}
			d.targets = []drainv1.Target{target}
			drain.ComputeStatus(gwd, d.targets, d.withdrawn, d.now, nil)
			drained := meta.FindStatusCondition(gwd.Status.Conditions, drainv1.ConditionDrained)
			if tc.partial && (gwd.Status.Counts.PartialWorkCounting != 1 || !strings.Contains(drained.Message, "1 drained on a count of chat turns alone")) {
				t.Errorf("counts %+v, Drained %q: want the warning", gwd.Status.Counts, drained.Message)
			}
		})
	}
}
