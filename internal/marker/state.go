package marker

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"
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
	// StateUnknown stands for any other value: what a gateway writes may be
	// hostile, and is never kept as written.
	StateUnknown = "unknown"
)

// knownStates are the values upstream writes.
var knownStates = []string{StateStarting, StateRunning, StateDegraded, StateDraining, StateStopped, StateStartupFailed}

// writtenExcerpt bounds what a message quotes of a state as written.
const writtenExcerpt = 32

// GatewayState is the part of gateway_state.json the operator needs, in
// bounded forms: whoever reads it may store it (status, conditions) or print
// it, and the file belongs to a gateway that may be hostile.
type GatewayState struct {
	// State is one of the states upstream writes, or StateUnknown.
	State string `json:"gateway_state"`
	// Written is the value as written, printable and cut short: what a
	// message quotes of it (an unknown state says which).
	Written      string `json:"-"`
	ActiveAgents int32  `json:"active_agents"`
	// PID and StartTime name the process that wrote the file: its PID and
	// field 22 of its /proc stat, in the gateway's own PID namespace
	// (decimal digits, "" when the file gives none that fit a 64-bit count).
	PID       int64  `json:"pid,omitempty"`
	StartTime string `json:"start_time,omitempty"`
	// UpdatedAt is updated_at as an RFC 3339 time in UTC, "" when the file
	// gives none that parses.
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
	gs := GatewayState{State: *s.State, Written: Excerpt(*s.State, writtenExcerpt), PID: s.PID}
	if !slices.Contains(knownStates, gs.State) {
		gs.State = StateUnknown
	}
	if t, err := ParseTime(s.UpdatedAt); err == nil {
		// Rewritten, not kept as written: Go parses a fraction of any
		// length, and the canonical form compares equal for equal times.
		gs.UpdatedAt = t.UTC().Format(time.RFC3339Nano)
	}
	switch start := s.StartTime.(type) { // clock ticks, as a number or a string
	case float64:
		gs.StartTime = strconv.FormatFloat(start, 'f', -1, 64)
	case string:
		gs.StartTime = start
	}
	if _, err := strconv.ParseUint(gs.StartTime, 10, 64); err != nil {
		gs.StartTime = ""
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
