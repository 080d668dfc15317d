package calls

import (
	"fmt"

	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// DefaultProfile is how upstream names the root home's profile.
const DefaultProfile = "default"

// Gateway is one gateway a container runs, as a call found it.
type Gateway struct {
	// Profile is its profile's name, DefaultProfile for the root home's.
	Profile string
	Home    GatewayHome
	// State is the gateway's state, or Problem why it cannot be told.
	State   marker.GatewayState
	Problem *StateProblem
}

// Running reports whether a gateway runs in the home, or may (its state
// cannot be told).
func (g Gateway) Running() bool { return g.NotRunning() == "" }

// Drained reports whether the gateway takes no more turns and has none in
// flight: draining with none, or not running with a drain's marker in its
// home (marked), so that it drains if it starts.
func (g Gateway) Drained(marked bool) bool {
	if g.NotRunning() != "" {
		return marked
	}
	return g.Problem == nil && g.State.DrainComplete()
}

// NotRunning says why no gateway runs in the home, "" when one runs or may:
// a stopped gateway (upstream writes stopped or startup_failed as it ends,
// and desired_state says whether a person stopped it), a dead one, or none
// started yet.
func (g Gateway) NotRunning() string {
	switch {
	case g.Problem != nil && g.Problem.Definite:
		return g.Problem.Message
	case g.Problem == nil && g.State.Stopped():
		return fmt.Sprintf("the gateway is %s (desired_state %q)", g.State.Written, g.State.DesiredState)
	}
	return ""
}

// Gateways lists the gateways a drain of the container must reach: the root
// home's, always (its marker is the one a gateway that starts later finds),
// and each profile home that runs a gateway of its own, or may, or that
// holds a marker keep wants counted (a drain's own: the gateway that starts
// there will drain). A profile home with no live gateway is none: upstream
// starts a gateway per profile that has one to run, and its peers skip the
// others. When the root's live gateway multiplexes the profiles (its record
// lists served_profiles), it is the only one: the drain flag is
// process-wide, and what profile homes hold is left from before.
func (o Observation) Gateways(keep func(GatewayHome) bool) []Gateway {
	root := Gateway{Profile: DefaultProfile, Home: o.GatewayHome}
	root.State, root.Problem = o.GatewayStateNow()
	gateways := []Gateway{root}
	if root.Problem == nil && root.State.ServedProfiles > 0 { // Multiplexed, as already read
		return gateways
	}
	for _, p := range o.Profiles {
		g := Gateway{Profile: p.Name, Home: p.GatewayHome}
		g.State, g.Problem = p.GatewayStateNow()
		// A profile home with no record and no live gateway.pid has no
		// gateway (in the root home, it may be the wrong home).
		started := g.Problem == nil || g.Problem.Reason != ReasonNoState
		if started && g.Running() || keep != nil && keep(p.GatewayHome) {
			gateways = append(gateways, g)
		}
	}
	return gateways
}

// Multiplexed reports whether the root home's gateway runs and serves every
// profile itself.
func (o Observation) Multiplexed() bool {
	st, problem := o.GatewayStateNow()
	return problem == nil && st.ServedProfiles > 0
}

// Unlisted counts the profile homes beyond MaxProfiles, which the call did
// not look into: a container with any is never counted drained.
func (o Observation) Unlisted() int { return max(o.ProfileCount-len(o.Profiles), 0) }

// ProfileMarkerGone names the first of the profile homes that the call
// found with no marker at all, "" when each holds one (or is gone): where
// a drain wrote its marker, a person's cancel.
func (o Observation) ProfileMarkerGone(names []string) string {
	for _, name := range names {
		if p, ok := o.Profile(name); ok && p.Marker.State == FileAbsent {
			return name
		}
	}
	return ""
}

// Profile returns the profile home of that name, if the call found one.
func (o Observation) Profile(name string) (Profile, bool) {
	for _, p := range o.Profiles {
		if p.Name == name {
			return p, true
		}
	}
	return Profile{}, false
}
