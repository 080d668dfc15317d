package calls

import (
	"fmt"

	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// Why gateway_state.json says nothing about a live gateway.
const (
	ReasonNoState         = "NoState"
	ReasonStateUnreadable = "StateUnreadable"
	ReasonGatewayGone     = "GatewayGone"
)

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
// Liveness is judged in the gateway's container, never by the file's age:
// upstream writes it on events only, so an idle gateway's record never
// changes, and updated_at is on another host's clock. The file names its
// writer's PID and start time, and the process must still be there with
// that start time. A file that names no PID cannot be proven
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
