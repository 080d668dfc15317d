package marker

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// StateFilename is the gateway's runtime status file inside HERMES_HOME.
const StateFilename = "gateway_state.json"

// Upstream's gateway_state values.
const (
	StateStarting      = "starting"
	StateRunning       = "running"
	StateDegraded      = "degraded"
	StateDraining      = "draining"
	StateStopped       = "stopped"
	StateStartupFailed = "startup_failed"
)

// GatewayState is the part of gateway_state.json the operator needs.
type GatewayState struct {
	State        string `json:"gateway_state"`
	ActiveAgents int32  `json:"active_agents"`
	// PID and StartTime name the process that wrote the file: its PID and
	// field 22 of its /proc stat, in the gateway's own PID namespace.
	PID       int64  `json:"pid,omitempty"`
	StartTime string `json:"start_time,omitempty"`
	UpdatedAt string `json:"updated_at,omitempty"`
}

// ParseGatewayState parses gateway_state.json. A file without a
// gateway_state, or with fields of the wrong type, is an error.
func ParseGatewayState(raw []byte) (GatewayState, error) {
	var s struct {
		State        *string `json:"gateway_state"`
		ActiveAgents *int32  `json:"active_agents"`
		PID          int64   `json:"pid"`
		StartTime    any     `json:"start_time"`
		UpdatedAt    string  `json:"updated_at"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return GatewayState{}, fmt.Errorf("%s is not valid: %v", StateFilename, err)
	}
	if s.State == nil || *s.State == "" {
		return GatewayState{}, fmt.Errorf("%s has no gateway_state", StateFilename)
	}
	if s.ActiveAgents != nil && *s.ActiveAgents < 0 {
		return GatewayState{}, fmt.Errorf("%s has negative active_agents %d", StateFilename, *s.ActiveAgents)
	}
	gs := GatewayState{State: *s.State, PID: s.PID, UpdatedAt: s.UpdatedAt}
	switch start := s.StartTime.(type) { // clock ticks, as a number or a string
	case float64:
		gs.StartTime = strconv.FormatFloat(start, 'f', -1, 64)
	case string:
		gs.StartTime = start
	}
	if s.ActiveAgents != nil {
		gs.ActiveAgents = *s.ActiveAgents
	}
	return gs, nil
}

// AcceptsTurns reports whether the gateway takes new turns.
func (s GatewayState) AcceptsTurns() bool {
	return s.State == StateRunning || s.State == StateDegraded
}

// DrainComplete reports whether the gateway is draining with nothing in flight.
func (s GatewayState) DrainComplete() bool {
	return s.State == StateDraining && s.ActiveAgents == 0
}
