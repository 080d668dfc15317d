package calls

import (
	"fmt"
	"time"

	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// HomeStatus is what a Read says of one HERMES_HOME, in words a person
// reads: the agent's `status` command and the kubectl plugin's preview
// print it.
type HomeStatus struct {
	Home    string        `json:"home"`
	Epoch   string        `json:"epoch"`
	Marker  MarkerStatus  `json:"marker"`
	Gateway GatewayStatus `json:"gateway"`
}

// MarkerStatus is the marker as found, whose it is, and whether the gateway
// honours it (a marker of another instantiation, or an expired one, is ignored).
type MarkerStatus struct {
	State    FileState `json:"state"`
	Whose    string    `json:"whose,omitempty"`
	Honoured bool      `json:"honoured"`
}

// GatewayStatus is gateway_state.json as read, or why it says nothing.
type GatewayStatus struct {
	State        string `json:"state,omitempty"`
	ActiveAgents int32  `json:"activeAgents"`
	Problem      string `json:"problem,omitempty"`
}

// Describe turns what a call observed into a HomeStatus, judged at now.
func Describe(obs Observation, now time.Time) HomeStatus {
	s := HomeStatus{Home: obs.Home, Epoch: obs.Epoch, Marker: MarkerStatus{State: obs.Marker.State}}
	if obs.Marker.State == FilePresent {
		s.Marker.Whose = Whose(obs.Marker.Data)
		s.Marker.Honoured = marker.Parse(obs.Marker.Data).Honoured(obs.Epoch, now)
	}
	st, problem := obs.GatewayStateNow()
	s.Gateway = GatewayStatus{State: st.State, ActiveAgents: st.ActiveAgents}
	if problem != nil {
		s.Gateway.Problem = problem.Message
	}
	return s
}

// Whose says who wrote a marker.
func Whose(data []byte) string {
	found := marker.Parse(data)
	if origin, ok := found.Origin(); ok && origin.GatewayDrain != "" {
		return fmt.Sprintf("GatewayDrain %s (principal %q)", marker.Excerpt(origin.GatewayDrain, 80), marker.Shorten(found.Principal(), 80))
	}
	if found.Undecodable() {
		return "a marker that is not UTF-8 (the gateway keeps the state it had)"
	}
	if found.Corrupt() {
		return "a marker that is not JSON"
	}
	return fmt.Sprintf("principal %q", marker.Shorten(found.Principal(), 80))
}

// Words says in one phrase what the marker is.
func (m MarkerStatus) Words() string {
	switch {
	case m.State == FileAbsent:
		return "none"
	case m.State != FilePresent:
		return string(m.State) + " (never read)"
	case m.Honoured:
		return "honoured: a drain by " + m.Whose
	}
	return "ignored (another instantiation's, or expired): by " + m.Whose
}

// Words says in one phrase what the gateway reports.
func (g GatewayStatus) Words() string {
	if g.Problem != "" {
		return g.Problem
	}
	return fmt.Sprintf("the gateway is %s with %d turns in flight", g.State, g.ActiveAgents)
}
