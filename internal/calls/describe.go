package calls

import (
	"fmt"
	"time"

	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// HomeStatus is what a Read says of one HERMES_HOME and the gateways it
// holds, in words a person reads: the agent's `status` command and the
// kubectl plugin's preview print it.
type HomeStatus struct {
	Home    string        `json:"home"`
	Epoch   string        `json:"epoch"`
	Marker  MarkerStatus  `json:"marker"`
	Gateway GatewayStatus `json:"gateway"`
	// Profiles are the profile homes that run a gateway of their own (none
	// when the root's multiplexes them all).
	Profiles []ProfileStatus `json:"profiles,omitempty"`
	// Unlisted counts the profile homes beyond the ones a call looks into.
	Unlisted int `json:"unlisted,omitempty"`
}

// ProfileStatus is one profile home's marker and gateway.
type ProfileStatus struct {
	Name    string        `json:"name"`
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
	gateways := obs.Gateways(nil)
	s := HomeStatus{Home: obs.Home, Epoch: obs.Epoch, Marker: describeMarker(obs.Marker, obs.Epoch, now), Gateway: describeGateway(gateways[0])}
	for _, g := range gateways[1:] {
		s.Profiles = append(s.Profiles, ProfileStatus{Name: g.Profile, Marker: describeMarker(g.Home.Marker, obs.Epoch, now), Gateway: describeGateway(g)})
	}
	if !obs.Multiplexed() {
		s.Unlisted = obs.Unlisted()
	}
	return s
}

// GatewayOf is the status of the named profile's gateway (DefaultProfile:
// the root home's).
func (s HomeStatus) GatewayOf(profile string) GatewayStatus {
	for _, p := range s.Profiles {
		if p.Name == profile {
			return p.Gateway
		}
	}
	return s.Gateway
}

func describeMarker(f File, epoch string, now time.Time) MarkerStatus {
	m := MarkerStatus{State: f.State}
	if f.State == FilePresent {
		m.Whose = Whose(f.Data)
		m.Honoured = marker.Parse(f.Data).Honoured(epoch, now)
	}
	return m
}

func describeGateway(g Gateway) GatewayStatus {
	s := GatewayStatus{State: g.State.State, ActiveAgents: g.State.ActiveAgents}
	if g.Problem != nil {
		s.Problem = g.Problem.Message
	} else if why := g.NotRunning(); why != "" {
		s.Problem = why
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
