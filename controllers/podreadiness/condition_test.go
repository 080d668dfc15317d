package podreadiness

import (
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

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
