package podreadiness

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

func TestServingMapsEveryGatewayState(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	fresh := now.Add(-5 * time.Second).Format(marker.TimeLayout)
	file := func(state string, agents int) calls.Observation {
		data := `{"gateway_state":"` + state + `","active_agents":` + string(rune('0'+agents)) + `,"updated_at":"` + fresh + `"}`
		return calls.Observation{GatewayHome: calls.GatewayHome{GatewayState: calls.File{State: calls.FilePresent, Data: []byte(data)}}}
	}
	cases := []struct {
		name    string
		obs     calls.Observation
		err     error
		status  corev1.ConditionStatus
		reason  string
		message string
	}{
		{"running", file("running", 2), nil, corev1.ConditionTrue, "Running", "Running: 2 active agents"},
		{"degraded", file("degraded", 0), nil, corev1.ConditionTrue, "Degraded", "Degraded: 0 active agents"},
		{"draining", file("draining", 3), nil, corev1.ConditionFalse, "Draining", "Draining: 3 active agents"},
		{"starting", file("starting", 0), nil, corev1.ConditionFalse, "Starting", "Starting: 0 active agents"},
		{"stopped", file("stopped", 0), nil, corev1.ConditionFalse, "Stopped", "Stopped: 0 active agents"},
		{"startup_failed", file("startup_failed", 0), nil, corev1.ConditionFalse, "StartupFailed", "StartupFailed: 0 active agents"},
		{"a state upstream never writes", file("sleeping", 0), nil, corev1.ConditionUnknown, ReasonUnknownState, `gateway_state "sleeping" is not one upstream writes`},
		{"missing file", calls.Observation{GatewayHome: calls.GatewayHome{GatewayState: calls.File{State: calls.FileAbsent}}}, nil, corev1.ConditionUnknown, calls.ReasonNoState, "gateway_state.json not found (gateway not started, or HERMES_HOME is not its home?)"},
		{"a directory", calls.Observation{GatewayHome: calls.GatewayHome{GatewayState: calls.File{State: calls.FileDirectory}}}, nil, corev1.ConditionUnknown, calls.ReasonStateUnreadable, "gateway_state.json is directory"},
		{"corrupt file", calls.Observation{GatewayHome: calls.GatewayHome{GatewayState: calls.File{State: calls.FilePresent, Data: []byte(`{"gateway_state":`)}}}, nil, corev1.ConditionUnknown, calls.ReasonStateUnreadable, "gateway_state.json is not valid: unexpected end of JSON input"},
		{"an old updated_at says nothing (another host's clock)", calls.Observation{GatewayHome: calls.GatewayHome{GatewayState: calls.File{State: calls.FilePresent, Data: []byte(`{"gateway_state":"running","active_agents":0,"updated_at":"` + now.Add(-3*time.Hour).Format(marker.TimeLayout) + `"}`)}}}, nil, corev1.ConditionTrue, "Running", "Running: 0 active agents"},
		{"writer alive", withWriter(file("running", 1), 42, "9000", statLine(42, "9000")), nil, corev1.ConditionTrue, "Running", "Running: 1 active agents"},
		{"writer gone", withWriter(file("running", 1), 42, "9000", ""), nil, corev1.ConditionFalse, calls.ReasonGatewayGone, `gateway_state.json says "running" but its process 42 is gone: it is what a dead gateway left`},
		{"writer's PID reused", withWriter(file("running", 1), 42, "9000", statLine(42, "9100")), nil, corev1.ConditionFalse, calls.ReasonGatewayGone, `gateway_state.json says "running" but its process 42 is gone (PID 42 now belongs to a process started at 9100, not 9000): it is what a dead gateway left`},
		{"read failed", calls.Observation{}, errors.New("exec: connection refused"), corev1.ConditionUnknown, ReasonReadFailed, "exec: connection refused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := serving(tc.obs, tc.err)
			if v.status != tc.status || v.reason != tc.reason || v.message != tc.message {
				t.Errorf("got %s/%s %q, want %s/%s %q", v.status, v.reason, v.message, tc.status, tc.reason, tc.message)
			}
		})
	}
}

// withWriter names a writer in obs's state file, and what the container's
// /proc showed of that PID.
func withWriter(obs calls.Observation, pid int64, start, stat string) calls.Observation {
	data := strings.TrimSuffix(string(obs.GatewayState.Data), "}")
	obs.GatewayState.Data = []byte(fmt.Sprintf(`%s,"pid":%d,"start_time":%s}`, data, pid, start))
	obs.GatewayProcess = calls.Process{PID: pid, Stat: stat}
	return obs
}

func statLine(pid int64, start string) string {
	return fmt.Sprintf("%d (python3) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 %s 1000 100", pid, start)
}

func TestReadsGoWhereTheGateIsAboutToChange(t *testing.T) {
	o := DefaultOptions()
	written := metav1.Now()
	pending, projected := &drainv1.Target{State: drainv1.TargetPending}, &drainv1.Target{State: drainv1.TargetDraining, MarkerWrittenAt: &written}
	for _, tc := range []struct {
		name   string
		state  string
		target *drainv1.Target
		want   time.Duration
	}{
		{"running, no drain", marker.StateRunning, nil, o.SlowInterval},
		{"running, marker in place", marker.StateRunning, projected, o.FastInterval},
		{"running, marker not yet written (its write wakes a read)", marker.StateRunning, pending, o.SlowInterval},
		{"draining for its drain (the drain's turn wakes a read)", marker.StateDraining, projected, o.SlowInterval},
		{"draining, no standing drain", marker.StateDraining, nil, o.FastInterval},
		{"starting", marker.StateStarting, nil, o.FastInterval},
		{"starting, marker in place", marker.StateStarting, projected, o.FastInterval},
		{"stopped", marker.StateStopped, nil, o.SlowInterval},
	} {
		if got := o.readAgainAfter(tc.state, tc.target); got != tc.want {
			t.Errorf("%s: next read after %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestASliceWakesTheReadsOfWhatChanged(t *testing.T) {
	base := &drainv1.TargetSlice{Targets: []drainv1.Target{{PodName: "gw-0", State: drainv1.TargetPending}, {PodName: "gw-1", State: drainv1.TargetPending}}}
	now := metav1.Now()
	all := []string{"gw-0", "gw-1"}
	for _, tc := range []struct {
		name   string
		change func(*drainv1.TargetSlice)
		want   []string
	}{
		{"nothing of the targets", func(s *drainv1.TargetSlice) { s.Labels = map[string]string{"a": "b"} }, nil},
		{"one marker written", func(s *drainv1.TargetSlice) {
			s.Targets[1].State, s.Targets[1].MarkerWrittenAt = drainv1.TargetDraining, &now
		}, []string{"gw-1"}},
		{"one gateway read draining", func(s *drainv1.TargetSlice) { s.Targets[0].GatewayState = marker.StateDraining }, []string{"gw-0"}},
		{"a read that changed nothing", func(s *drainv1.TargetSlice) { s.Targets[0].LastAttemptTime = &now }, nil},
		{"a pod recreated", func(s *drainv1.TargetSlice) { s.Targets[0].PodUID = "new" }, []string{"gw-0"}},
		{"a target joined", func(s *drainv1.TargetSlice) { s.Targets = append(s.Targets, drainv1.Target{PodName: "gw-2"}) }, []string{"gw-2"}},
	} {
		n := base.DeepCopy()
		tc.change(n)
		if got := changedTargets(base, n); !slices.Equal(got, tc.want) {
			t.Errorf("%s: wakes %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := changedTargets(nil, base); !slices.Equal(got, all) {
		t.Errorf("a new or deleted slice wakes %v, want all of %v", got, all)
	}
}

// A drain that turns wakes the reads of all its targets.
func TestADrainThatTurnsWakesEveryRead(t *testing.T) {
	base := &drainv1.GatewayDrain{Spec: drainv1.GatewayDrainSpec{Action: drainv1.ActionDrain}}
	base.Status.Conditions = []metav1.Condition{{Type: drainv1.ConditionDrained, Status: metav1.ConditionFalse, Reason: "Progressing"}}
	now := metav1.Now()
	for _, tc := range []struct {
		name   string
		change func(*drainv1.GatewayDrain)
		want   bool
	}{
		{"progress", func(g *drainv1.GatewayDrain) { g.Status.Progress = "1/2" }, false},
		{"cancelled", func(g *drainv1.GatewayDrain) { g.Spec.Action = drainv1.ActionCancel }, true},
		{"deleted", func(g *drainv1.GatewayDrain) { g.DeletionTimestamp = &now }, true},
		{"deadline passed", func(g *drainv1.GatewayDrain) { g.Status.Conditions[0].Reason = drainv1.ReasonDeadlineExceeded }, true},
		{"drained", func(g *drainv1.GatewayDrain) { g.Status.Conditions[0].Reason = drainv1.ReasonDrained }, true},
	} {
		n := base.DeepCopy()
		tc.change(n)
		if got := turned(base, n); got != tc.want {
			t.Errorf("%s: turned %v, want %v", tc.name, got, tc.want)
		}
	}
}
