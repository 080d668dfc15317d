package gatewaydrain

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// A target's container may run several gateways: the root home's, and one
// per profile home unless the root's multiplexes them (calls.Gateways says
// which count). The drain reaches each: a marker in every one, Drained when
// every one is.

// gateways are the target's gateways as obs shows them, counting a profile
// home whose gateway is not running when our marker is there (it drains if
// it starts).
func (d *view) gateways(t drainv1.Target, obs calls.Observation) []calls.Gateway {
	return obs.Gateways(func(h calls.GatewayHome) bool { return d.oursIn(t, obs.Epoch, h) })
}

// profilesToMark names the profile homes whose gateways our marker must
// reach, as obs shows them.
func (d *view) profilesToMark(t drainv1.Target, obs calls.Observation) []string {
	var names []string
	for _, g := range d.gateways(t, obs) {
		if g.Profile != calls.DefaultProfile {
			names = append(names, g.Profile)
		}
	}
	return names
}

// unmarked names the profile homes whose gateways our marker does not
// reach yet, and that a person has not cleared (they are not in
// MarkedProfiles).
func (d *view) unmarked(t drainv1.Target, obs calls.Observation) []string {
	var names []string
	for _, g := range d.gateways(t, obs) {
		if g.Profile != calls.DefaultProfile && !d.oursIn(t, obs.Epoch, g.Home) && !slices.Contains(markedProfiles(t), g.Profile) {
			names = append(names, g.Profile)
		}
	}
	return names
}

// removedBy names the home our marker was removed from while the drain
// stands (calls.DefaultProfile for the root home's), or "".
func removedFrom(t drainv1.Target, obs calls.Observation) string {
	if obs.Marker.State == calls.FileAbsent {
		return calls.DefaultProfile
	}
	return obs.ProfileMarkerGone(markedProfiles(t))
}

func markedProfiles(t drainv1.Target) []string {
	if t.MarkedProfiles == "" {
		return nil
	}
	return strings.Split(t.MarkedProfiles, ",")
}

// markProfiles adds to MarkedProfiles each profile home named that now
// holds our marker, as far as the field's bound allows: past it, a person's
// removal of one is not told from a gateway that has yet to get one.
func (d *view) markProfiles(t drainv1.Target, obs calls.Observation, names []string) drainv1.Target {
	marked := markedProfiles(t)
	for _, name := range names {
		p, ok := obs.Profile(name)
		if !ok || !d.oursIn(t, obs.Epoch, p.GatewayHome) || slices.Contains(marked, name) {
			continue
		}
		if len(t.MarkedProfiles)+len(name)+1 > maxMarkedProfiles {
			break
		}
		marked = append(marked, name)
		t.MarkedProfiles = strings.Join(marked, ",")
	}
	return t
}

// maxMarkedProfiles is MarkedProfiles's bound (the CRD's MaxLength).
const maxMarkedProfiles = 448

// profileFailure says why a call failed in one of the profile homes it
// acted on, or "".
func profileFailure(obs calls.Observation, names []string) string {
	for _, p := range obs.Profiles {
		if p.Outcome == calls.Failed && (names == nil || slices.Contains(names, p.Name)) {
			return fmt.Sprintf("profile %s: %s", p.Name, marker.Excerpt(p.Message, 300))
		}
	}
	return ""
}

// gatewaysVerdict is what the target's gateways, together, say of it.
type gatewaysVerdict struct {
	// blocking is the first gateway not yet drained, and why; nil when
	// every one is drained or not running.
	blocking *calls.Gateway
	why      string
	// gateways counts them; agents sums active_agents; state is the
	// blocking gateway's state (else the root's), as Target.GatewayState
	// shows it.
	gateways, agents int32
	state            string
	// writers identifies every gateway's writer: a drain is confirmed on
	// two reads by the same ones.
	writers string
	// notRunning counts the gateways that do not run, and draining the
	// ones that are drained.
	notRunning, drained int
	// partial: a drained gateway does not show that it counts all its work.
	partial bool
}

// judge tells whether every gateway of the target is drained: draining with
// no turn in flight, or not running with our marker in place (it drains if
// it starts). A container with more profile homes than a call looks into
// is never drained.
func (d *view) judge(t drainv1.Target, obs calls.Observation) gatewaysVerdict {
	gateways := d.gateways(t, obs)
	v := gatewaysVerdict{gateways: int32(len(gateways)), state: gatewayStateShown(gateways[0])}
	var writers []string
	for i := range gateways {
		g := &gateways[i]
		v.agents += g.State.ActiveAgents
		notRunning := g.NotRunning()
		switch {
		case g.Drained(d.oursIn(t, obs.Epoch, g.Home)) && notRunning != "":
			v.notRunning++
			writers = append(writers, g.Profile+"=none")
			continue
		case g.Drained(true) && (g.State.CountsAllWork || !d.gwd.Spec.RequireCompleteWorkCounting):
			v.drained++
			v.partial = v.partial || !g.State.CountsAllWork
			writers = append(writers, fmt.Sprintf("%s=%d/%s", g.Profile, g.State.PID, g.State.StartTime))
			continue
		}
		why := ""
		switch {
		case g.Drained(true):
			why = "gateway draining with no active agents, but its record does not show that it counts API-server and cron work (upstream before v0.20.6), and spec.requireCompleteWorkCounting asks that it does"
		case notRunning != "":
			why = notRunning + "; our marker is not in its home"
		case g.Problem != nil:
			why = "marker in place; " + g.Problem.Message
		case g.State.State == marker.StateDraining:
			why = fmt.Sprintf("gateway draining: %d active agents", g.State.ActiveAgents)
		default:
			why = fmt.Sprintf("marker in place; waiting for the gateway to report draining (it reports %q)", g.State.Written)
		}
		if v.blocking == nil {
			v.blocking, v.why, v.state = g, why, gatewayStateShown(*g)
			if len(gateways) > 1 {
				v.why = "profile " + g.Profile + ": " + why
			}
		}
	}
	if n := obs.Unlisted(); n > 0 && !obs.Multiplexed() && v.blocking == nil {
		v.blocking, v.why = &gateways[0], fmt.Sprintf("%d profile homes beyond the %d a call looks into: whether their gateways are drained cannot be told", n, calls.MaxProfiles)
	}
	v.writers = strings.Join(writers, ",")
	if len(v.writers) > 64 { // DrainSeenBy's bound
		sum := sha256.Sum256([]byte(v.writers))
		v.writers = "sha256:" + hex.EncodeToString(sum[:16])
	}
	return v
}

// gatewayStateShown is a gateway's state as Target.GatewayState shows it.
func gatewayStateShown(g calls.Gateway) string {
	switch {
	case g.Problem == nil:
		return g.State.State
	case g.Problem.Definite:
		return notRunningState
	}
	return ""
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// notRunningState is Target.GatewayState for a gateway that does not run.
const notRunningState = "not-running"

// drainedWords says how the target's gateways are drained.
func (v gatewaysVerdict) drainedWords() string {
	switch {
	case v.partial:
		return v.counted() + "; a gateway's record does not show that it counts API-server and cron work (upstream before v0.20.6): work it does not count may still run"
	}
	return v.counted()
}

func (v gatewaysVerdict) counted() string {
	switch {
	case v.notRunning == 0 && v.drained == 1:
		return "gateway draining with no active agents"
	case v.drained == 0 && v.notRunning == 1:
		return "no gateway runs (our marker is in place, so one that starts drains)"
	case v.notRunning == 0:
		return fmt.Sprintf("all %d gateways draining with no active agents", v.drained)
	case v.drained == 0:
		return fmt.Sprintf("none of %d gateways runs (our marker is in place, so one that starts drains)", v.notRunning)
	}
	return fmt.Sprintf("%d %s draining with no active agents, %d not running (our marker is in place, so one that starts drains)", v.drained, plural(v.drained, "gateway"), v.notRunning)
}
