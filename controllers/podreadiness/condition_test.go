package podreadiness

import (
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/internal/transport"
)

func TestServingMapsEveryGatewayState(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	fresh := now.Add(-5 * time.Second).Format(marker.TimeLayout)
	file := func(state string, agents int) transport.Observation {
		data := `{"gateway_state":"` + state + `","active_agents":` + string(rune('0'+agents)) + `,"updated_at":"` + fresh + `"}`
		return transport.Observation{GatewayState: transport.File{State: transport.FilePresent, Data: []byte(data)}}
	}
	cases := []struct {
		name    string
		obs     transport.Observation
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
		{"missing file", transport.Observation{GatewayState: transport.File{State: transport.FileAbsent}}, nil, corev1.ConditionUnknown, transport.ReasonNoState, "gateway_state.json not found (gateway not started?)"},
		{"a directory", transport.Observation{GatewayState: transport.File{State: transport.FileDirectory}}, nil, corev1.ConditionUnknown, transport.ReasonStateUnreadable, "gateway_state.json is directory"},
		{"corrupt file", transport.Observation{GatewayState: transport.File{State: transport.FilePresent, Data: []byte(`{"gateway_state":`)}}, nil, corev1.ConditionUnknown, transport.ReasonStateUnreadable, "gateway_state.json is not valid: unexpected end of JSON input"},
		{"stale file", transport.Observation{GatewayState: transport.File{State: transport.FilePresent, Data: []byte(`{"gateway_state":"running","updated_at":"` + now.Add(-3*time.Minute).Format(marker.TimeLayout) + `"}`)}}, nil, corev1.ConditionUnknown, transport.ReasonStateStale, "gateway_state.json is stale (updated 3m0s ago): is the gateway alive?"},
		{"read failed", transport.Observation{}, errors.New("exec: connection refused"), corev1.ConditionUnknown, ReasonReadFailed, "exec: connection refused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := serving(tc.obs, tc.err, now)
			if v.status != tc.status || v.reason != tc.reason || v.message != tc.message {
				t.Errorf("got %s/%s %q, want %s/%s %q", v.status, v.reason, v.message, tc.status, tc.reason, tc.message)
			}
		})
	}
}

func TestReadsGoWhereTheGateIsAboutToChange(t *testing.T) {
	o := DefaultOptions()
	for _, tc := range []struct {
		state    string
		targeted bool
		want     time.Duration
	}{
		{marker.StateRunning, false, o.SlowInterval},
		{marker.StateRunning, true, o.FastInterval},   // the drain's marker is on its way
		{marker.StateDraining, true, o.SlowInterval},  // follows the drain; its withdrawal wakes a read
		{marker.StateDraining, false, o.FastInterval}, // a drain being withdrawn, or someone else's
		{marker.StateStarting, false, o.FastInterval},
		{marker.StateStarting, true, o.FastInterval},
		{marker.StateStopped, false, o.SlowInterval},
		{"", true, o.FastInterval}, // state unknown
	} {
		if got := o.nextLook(tc.state, tc.targeted); got != tc.want {
			t.Errorf("state %q targeted %v: next read after %s, want %s", tc.state, tc.targeted, got, tc.want)
		}
	}
}

func TestOnlyTurnsOfADrainWakeItsTargets(t *testing.T) {
	base := &drainv1.GatewayDrain{Spec: drainv1.GatewayDrainSpec{Action: drainv1.ActionDrain}}
	base.Status.Targets = []drainv1.Target{{PodName: "gw-0"}}
	base.Status.Conditions = []metav1.Condition{{Type: drainv1.ConditionDrained, Status: metav1.ConditionFalse, Reason: "Progressing"}}
	now := metav1.Now()
	for _, tc := range []struct {
		name   string
		change func(*drainv1.GatewayDrain)
		wake   bool
	}{
		{"progress written", func(g *drainv1.GatewayDrain) {
			g.Status.Targets[0].State = drainv1.TargetDrained
			g.Status.Progress = "1/1"
		}, false},
		{"targets taken", func(g *drainv1.GatewayDrain) {
			g.Status.Targets = append(g.Status.Targets, drainv1.Target{PodName: "gw-1"})
		}, true},
		{"cancelled", func(g *drainv1.GatewayDrain) { g.Spec.Action = drainv1.ActionCancel }, true},
		{"deleted", func(g *drainv1.GatewayDrain) { g.DeletionTimestamp = &now }, true},
		{"deadline passed", func(g *drainv1.GatewayDrain) { g.Status.Conditions[0].Reason = drainv1.ReasonDeadlineExceeded }, true},
	} {
		n := base.DeepCopy()
		tc.change(n)
		if got := drainTurned.Update(event.UpdateEvent{ObjectOld: base, ObjectNew: n}); got != tc.wake {
			t.Errorf("%s: wakes the targets' reads %v, want %v", tc.name, got, tc.wake)
		}
	}
}
