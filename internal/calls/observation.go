package calls

import (
	"fmt"

	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// Why a home's records tell no live gateway's state.
const (
	ReasonNoState         = "NoState"
	ReasonStateUnreadable = "StateUnreadable"
	ReasonStarting        = "GatewayStarting"
	ReasonGatewayGone     = "GatewayGone"
	ReasonNotStarted      = "GatewayNotStarted"
)

// StateProblem says why the gateway's state cannot be told.
type StateProblem struct {
	Reason  string
	Message string
	// Definite is true when the problem itself proves that no gateway runs
	// in the home (its process is gone, none has started), so none accepts
	// turns; false when the state only cannot be told.
	Definite bool
}

// GatewayStateNow interprets a home's records as read back: the state of the
// gateway that runs there, or why they tell none.
//
// Liveness is judged in the gateway's container, never by the record's age:
// upstream writes gateway_state.json on events only, so an idle gateway's
// never changes, and updated_at is on another host's clock. As upstream's
// own readers do, a gateway runs when gateway.pid or the record names a
// process that is still there with the start time written. A record that
// names no PID cannot be proven stale and is taken as written (lenient, as
// upstream is with markers), unless the container's boot wrote it. A home
// with no record at all proves nothing: its gateway may not have started,
// or the home may not be the gateway's.
func (h GatewayHome) GatewayStateNow() (marker.GatewayState, *StateProblem) {
	starting := h.pidFileNamesALiveProcess()
	startingProblem := func(pid int64) *StateProblem {
		return &StateProblem{Reason: ReasonStarting, Message: fmt.Sprintf("a gateway (PID %d, in %s) runs and has not written %s yet", pid, marker.PIDFilename, marker.StateFilename)}
	}
	switch h.GatewayState.State {
	case FilePresent:
	case FileAbsent:
		if starting != 0 {
			return marker.GatewayState{}, startingProblem(starting)
		}
		return marker.GatewayState{}, &StateProblem{Reason: ReasonNoState, Message: marker.StateFilename + " not found (gateway not started, or HERMES_HOME is not its home?)"}
	default:
		return marker.GatewayState{}, &StateProblem{Reason: ReasonStateUnreadable, Message: fmt.Sprintf("%s is %s", marker.StateFilename, h.GatewayState.State)}
	}
	st, err := marker.ParseGatewayState(h.GatewayState.Data)
	if err != nil {
		return st, &StateProblem{Reason: ReasonStateUnreadable, Message: err.Error()}
	}
	if starting != 0 && starting != st.PID {
		return st, startingProblem(starting)
	}
	if st.BootPlaceholder {
		return st, &StateProblem{Reason: ReasonNotStarted, Message: fmt.Sprintf("no gateway has started: %s is the container's boot record (desired_state %q)", marker.StateFilename, st.DesiredState), Definite: true}
	}
	if gone := h.writerGone(st); gone != "" {
		return st, &StateProblem{Reason: ReasonGatewayGone, Message: fmt.Sprintf("%s says %q but %s: it is what a dead gateway left", marker.StateFilename, st.Written, gone), Definite: true}
	}
	return st, nil
}

// writerGone says why the process that wrote st is no longer running, or ""
// when it runs or this cannot be told.
func (h GatewayHome) writerGone(st marker.GatewayState) string {
	p := h.GatewayProcess
	if st.PID <= 0 || p.PID != st.PID {
		return "" // no PID, or not the one the program found: cannot tell
	}
	return p.goneSince(st.StartTime)
}

// pidFileNamesALiveProcess is the PID gateway.pid names if that process
// runs (with the start time written, where it gives one), else 0.
func (h GatewayHome) pidFileNamesALiveProcess() int64 {
	if h.PIDFile.State != FilePresent {
		return 0
	}
	rec, err := marker.ParsePIDRecord(h.PIDFile.Data)
	if err != nil || h.PIDProcess.PID != rec.PID || h.PIDProcess.goneSince(rec.StartTime) != "" {
		return 0
	}
	return rec.PID
}

// goneSince says why p is not the process that started at start (field 22
// of its stat; "" for any), or "" when it is, or when that cannot be told.
func (p Process) goneSince(start string) string {
	if p.Stat == "" {
		return fmt.Sprintf("its process %d is gone", p.PID)
	}
	if marker.ProcStatExited(p.Stat) {
		return fmt.Sprintf("its process %d has exited (its parent has not reaped it)", p.PID)
	}
	now, err := marker.ProcStatStartTime(p.Stat)
	if err != nil {
		return "" // a stat line that cannot be parsed proves nothing
	}
	if start != "" && now != start {
		return fmt.Sprintf("its process %d is gone (PID %d now belongs to a process started at %s, not %s)", p.PID, p.PID, marker.Excerpt(now, 20), start)
	}
	return ""
}
