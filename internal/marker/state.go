package marker

import (
	"encoding/json"
	"fmt"
	"time"
)

const (
	// StateFilename is the gateway's runtime status file inside HERMES_HOME.
	StateFilename = "gateway_state.json"
	// StateStaleAfter is how old updated_at may be before the file no longer
	// says anything about a live gateway (upstream refreshes it about every 60 s).
	StateStaleAfter = 120 * time.Second
)

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
	PID          int64  `json:"pid,omitempty"`
	UpdatedAt    string `json:"updated_at,omitempty"`
}

// ParseGatewayState parses gateway_state.json. A file without a
// gateway_state, or with fields of the wrong type, is an error.
func ParseGatewayState(raw []byte) (GatewayState, error) {
	var s struct {
		State        *string `json:"gateway_state"`
		ActiveAgents *int32  `json:"active_agents"`
		PID          int64   `json:"pid"`
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
	if s.ActiveAgents != nil {
		gs.ActiveAgents = *s.ActiveAgents
	}
	return gs, nil
}

// Age is how long ago the gateway last wrote the file; ok is false when
// updated_at is missing or unparseable.
func (s GatewayState) Age(now time.Time) (age time.Duration, ok bool) {
	t, err := ParseTime(s.UpdatedAt)
	if err != nil {
		return 0, false
	}
	return now.Sub(t), true
}

// Stale reports whether the file is too old to describe a live gateway.
// A file without a readable updated_at is taken as fresh (lenient, as upstream).
func (s GatewayState) Stale(now time.Time) bool {
	age, ok := s.Age(now)
	return ok && age > StateStaleAfter
}

// AcceptsTurns reports whether the gateway takes new turns.
func (s GatewayState) AcceptsTurns() bool {
	return s.State == StateRunning || s.State == StateDegraded
}

// DrainComplete reports whether the gateway is draining with nothing in flight.
func (s GatewayState) DrainComplete() bool {
	return s.State == StateDraining && s.ActiveAgents == 0
}
