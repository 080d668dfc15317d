package marker

import (
	"encoding/json"
	"fmt"
	"slices"
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
	// ServedProfiles counts the profiles a multiplexing gateway serves
	// (served_profiles): its marker is the drain of them all.
	ServedProfiles int `json:"-"`
	// DesiredState is desired_state, the person's intent (DesiredStopped:
	// stopped on purpose), printable and cut short.
	DesiredState string `json:"-"`
	// BootPlaceholder: the record was written by the container's boot, not
	// by a gateway (no PID, no kind): no gateway has started.
	BootPlaceholder bool `json:"-"`
	// CountsAllWork: the record shows that active_agents counts every
	// kind of work upstream counts (chat turns, API-server runs, cron jobs,
	// deferred workers), not chat turns alone. Upstream's PR #63891
	// (v0.19.0) made it so; the record shows it only from v0.20.6, which
	// stamps code_version and code_sha (later ones also write active_work).
	// A gateway from v0.19.0 to v0.20.5 counts all without showing it.
	CountsAllWork bool `json:"-"`
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
		Kind         any     `json:"kind"`
		Served       any     `json:"served_profiles"`
		Desired      any     `json:"desired_state"`
		CodeVersion  any     `json:"code_version"`
		CodeSHA      any     `json:"code_sha"`
		// ActiveWork is null outside a drain: its key alone says what
		// writer wrote the record.
		ActiveWork json.RawMessage `json:"active_work"`
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
	gs.StartTime = startTime(s.StartTime)
	if s.ActiveAgents != nil {
		gs.ActiveAgents = *s.ActiveAgents
	}
	if served, ok := s.Served.([]any); ok {
		gs.ServedProfiles = len(served)
	}
	if desired, ok := s.Desired.(string); ok {
		gs.DesiredState = Excerpt(desired, writtenExcerpt)
	}
	gs.BootPlaceholder = s.PID == 0 && s.Kind != gatewayKind && s.Desired != nil
	gs.CountsAllWork = nonEmpty(s.CodeVersion) || nonEmpty(s.CodeSHA) || len(s.ActiveWork) > 0
	return gs, nil
}

// nonEmpty: a writer that has the field wrote it ("unknown" included).
func nonEmpty(v any) bool {
	s, ok := v.(string)
	return ok && s != ""
}

// AcceptsTurns reports whether the gateway takes new turns.
func (s GatewayState) AcceptsTurns() bool {
	return s.State == StateRunning || s.State == StateDegraded
}

// DrainComplete reports whether the gateway is draining with nothing in flight.
func (s GatewayState) DrainComplete() bool {
	return s.State == StateDraining && s.ActiveAgents == 0
}

// Gateway records that say a gateway is not running.
const (
	// DesiredStopped is desired_state for a gateway stopped on purpose.
	DesiredStopped = "stopped"
	// gatewayKind is kind in every record a gateway writes itself; the
	// container's boot writes a record without it (and without a PID)
	// before any gateway has started.
	gatewayKind = "hermes-gateway"
)

// Stopped reports whether the record says its gateway stopped (or never
// got past its start): it serves no turns, whatever its process does next.
func (s GatewayState) Stopped() bool {
	return s.State == StateStopped || s.State == StateStartupFailed
}
