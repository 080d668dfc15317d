package calls

import (
	"fmt"
	"time"

	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// Why gateway_state.json says nothing about a live gateway.
const (
	ReasonNoState         = "NoState"
	ReasonStateUnreadable = "StateUnreadable"
	ReasonGatewayGone     = "GatewayGone"
	ReasonStateStalled    = "StateStalled"
)

// StateStaleAfter is how long gateway_state.json may go unchanged before it
// no longer says anything about a working gateway (upstream rewrites it
// about every 60 s). It is measured on the operator's own clock, between
// its own reads, never by comparing updated_at with that clock: the
// gateway's node and the operator's may disagree by minutes.
const StateStaleAfter = 120 * time.Second

// Progress follows whether a gateway keeps rewriting its state file,
// between the operator's reads of it.
type Progress struct {
	// UpdatedAt is updated_at as last read.
	UpdatedAt string
	// Since is when the operator first read that value.
	Since time.Time
}

// Observe records a read of st at now.
func (p Progress) Observe(st marker.GatewayState, now time.Time) Progress {
	if p.Since.IsZero() || st.UpdatedAt != p.UpdatedAt {
		return Progress{UpdatedAt: st.UpdatedAt, Since: now}
	}
	return p
}

// Stalled is a problem when the file has gone unchanged for longer than
// StateStaleAfter. A file without updated_at cannot be judged (lenient).
func (p Progress) Stalled(now time.Time) *StateProblem {
	if p.UpdatedAt == "" || now.Sub(p.Since) <= StateStaleAfter {
		return nil
	}
	return &StateProblem{Reason: ReasonStateStalled, Message: fmt.Sprintf("%s has not changed for %s (updated_at %s): is the gateway wedged?",
		marker.StateFilename, now.Sub(p.Since).Round(time.Second), marker.Excerpt(p.UpdatedAt, 40))}
}

// StateProblem says why the gateway's state cannot be told.
type StateProblem struct {
	Reason  string
	Message string
	// Definite is true when the problem itself proves that the gateway does
	// not accept turns (its process is gone), false when it only means the
	// state cannot be told.
	Definite bool
}

// GatewayStateNow interprets gateway_state.json as read back: the gateway's
// state, or why it says nothing about a live gateway (absent, unreadable,
// corrupt, or left behind by a process that is gone).
//
// Liveness is judged in the gateway's container, never by comparing
// updated_at with the operator's clock (clocks of two hosts may differ): the
// file names its writer's PID and start time, and the process must still be
// there with that start time. A file that names no PID cannot be proven
// stale and is taken as written (lenient, as upstream is with markers).
func (o Observation) GatewayStateNow() (marker.GatewayState, *StateProblem) {
	switch o.GatewayState.State {
	case FilePresent:
	case FileAbsent:
		return marker.GatewayState{}, &StateProblem{Reason: ReasonNoState, Message: marker.StateFilename + " not found (gateway not started?)"}
	default:
		return marker.GatewayState{}, &StateProblem{Reason: ReasonStateUnreadable, Message: fmt.Sprintf("%s is %s", marker.StateFilename, o.GatewayState.State)}
	}
	st, err := marker.ParseGatewayState(o.GatewayState.Data)
	if err != nil {
		return st, &StateProblem{Reason: ReasonStateUnreadable, Message: err.Error()}
	}
	if gone := o.writerGone(st); gone != "" {
		return st, &StateProblem{Reason: ReasonGatewayGone, Message: fmt.Sprintf("%s says %q but %s: it is what a dead gateway left", marker.StateFilename, st.Written, gone), Definite: true}
	}
	return st, nil
}

// writerGone says why the process that wrote st is no longer running, or ""
// when it runs or this cannot be told.
func (o Observation) writerGone(st marker.GatewayState) string {
	p := o.GatewayProcess
	if st.PID <= 0 || p.PID != st.PID {
		return "" // no PID, or not the one the program found: cannot tell
	}
	if p.Stat == "" {
		return fmt.Sprintf("its process %d is gone", st.PID)
	}
	start, err := marker.ProcStatStartTime(p.Stat)
	if err != nil {
		return "" // a stat line that cannot be parsed proves nothing
	}
	if st.StartTime != "" && start != st.StartTime {
		return fmt.Sprintf("its process %d is gone (PID %d now belongs to a process started at %s, not %s)", st.PID, st.PID, marker.Excerpt(start, 20), st.StartTime)
	}
	return ""
}
