package transport

import (
	"fmt"
	"time"

	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// Why gateway_state.json says nothing about the gateway.
const (
	ReasonNoState         = "NoState"
	ReasonStateUnreadable = "StateUnreadable"
	ReasonStateStale      = "StateStale"
)

// StateProblem says why the gateway's state cannot be told.
type StateProblem struct {
	Reason  string
	Message string
}

// GatewayStateAt interprets gateway_state.json as read back: the gateway's
// state, or why it cannot be told (absent, unreadable, corrupt, stale).
func (o Observation) GatewayStateAt(now time.Time) (marker.GatewayState, *StateProblem) {
	switch o.GatewayState.State {
	case FilePresent:
	case FileAbsent:
		return marker.GatewayState{}, &StateProblem{ReasonNoState, marker.StateFilename + " not found (gateway not started?)"}
	default:
		return marker.GatewayState{}, &StateProblem{ReasonStateUnreadable, fmt.Sprintf("%s is %s", marker.StateFilename, o.GatewayState.State)}
	}
	st, err := marker.ParseGatewayState(o.GatewayState.Data)
	if err != nil {
		return st, &StateProblem{ReasonStateUnreadable, err.Error()}
	}
	if st.Stale(now) {
		age, _ := st.Age(now)
		return st, &StateProblem{ReasonStateStale, fmt.Sprintf("%s is stale (updated %s ago): is the gateway alive?", marker.StateFilename, age.Round(time.Second))}
	}
	return st, nil
}
