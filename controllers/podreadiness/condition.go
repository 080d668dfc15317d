package podreadiness

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// Reasons of the gate condition beyond the state-file problems of transport.
const (
	ReasonReadFailed          = "ReadFailed"
	ReasonContainerNotRunning = "ContainerNotRunning"
	ReasonInvalidHome         = "InvalidHermesHome"
	ReasonUnknownState        = "UnknownState"
	ReasonDrainRequested      = "DrainRequested"
)

// stateReasons names the gate's reason for each upstream gateway_state.
var stateReasons = map[string]string{
	marker.StateRunning:       "Running",
	marker.StateDegraded:      "Degraded",
	marker.StateDraining:      "Draining",
	marker.StateStarting:      "Starting",
	marker.StateStopped:       "Stopped",
	marker.StateStartupFailed: "StartupFailed",
}

// verdict is what the gate should say.
type verdict struct {
	status  corev1.ConditionStatus
	reason  string
	message string
	// updatedAt is when the gateway wrote what was read, if known.
	updatedAt time.Time
	// state is the state read; its State is "" when unknown.
	state marker.GatewayState
}

// serving maps what was read from a gateway to "does this gateway accept
// turns": True for running or degraded, False for any other state upstream
// writes or when its writer is gone, Unknown when the state cannot be told.
func serving(obs calls.Observation, readErr error) verdict {
	if readErr != nil {
		// The error may quote what a container or an agent sent back.
		return verdict{status: corev1.ConditionUnknown, reason: ReasonReadFailed, message: marker.Elide(marker.Printable(readErr.Error()), drainv1.MaxTargetMessage)}
	}
	st, problem := obs.GatewayStateNow()
	if problem != nil {
		status := corev1.ConditionUnknown
		if problem.Definite {
			status = corev1.ConditionFalse
		}
		return verdict{status: status, reason: problem.Reason, message: problem.Message}
	}
	v := verdict{state: st}
	if t, err := marker.ParseTime(st.UpdatedAt); err == nil {
		v.updatedAt = t
	}
	reason, known := stateReasons[st.State]
	switch {
	case !known:
		v.status, v.reason = corev1.ConditionUnknown, ReasonUnknownState
		v.message = fmt.Sprintf("gateway_state %q is not one upstream writes", st.Written)
		return v
	case st.AcceptsTurns():
		v.status = corev1.ConditionTrue
	default:
		v.status = corev1.ConditionFalse
	}
	v.reason, v.message = reason, fmt.Sprintf("%s: %d active agents", reason, st.ActiveAgents)
	return v
}

// drainRequested is the gate of a target of a drain that stands and takes
// its targets out of traffic before writing their markers.
func drainRequested(gwd *drainv1.GatewayDrain) verdict {
	return verdict{status: corev1.ConditionFalse, reason: ReasonDrainRequested,
		message: "GatewayDrain " + gwd.Name + " drains this gateway: out of traffic until the drain ends"}
}

// readAgainAfter is when to read a gated gateway again, after reading state; t is
// its entry in a drain that stands, or nil. Each read is a call into the
// container, and their rate is bounded, so they go where the gate is about
// to change: a gateway whose drain marker is in place but not yet noticed, a
// gateway starting, or draining without a standing drain (a marker not
// ours, or ours being removed). A target not yet projected, or already
// draining, waits for its drain to change its entry or to turn, which wakes
// its read at once (drainEvents).
func (o Options) readAgainAfter(state string, t *drainv1.Target) time.Duration {
	switch {
	case t != nil && t.MarkerWrittenAt != nil && state != marker.StateDraining:
		return o.FastInterval
	case t != nil:
		return o.SlowInterval
	case state == marker.StateStarting, state == marker.StateDraining:
		return o.FastInterval
	}
	return o.SlowInterval
}
