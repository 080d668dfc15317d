// Package calls is the one definition of the three calls the operator makes
// into a gateway's HERMES_HOME (Project, Clear, Read): what each saw
// (Observation), how the agent carries them over HTTPS (the wire types), and
// their implementation in this process (InProcess), which the agent and its
// command line run. The operator's side, which carries the calls to a pod
// through pods/exec or an agent, is internal/transport; the agent imports
// only this package, so it links none of client-go's clients.
package calls

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// Pod addresses one gateway container.
type Pod struct {
	Namespace string
	Name      string
	Container string
}

func (p Pod) String() string { return p.Namespace + "/" + p.Name + ":" + p.Container }

// Outcome is what a call did to the marker.
type Outcome string

const (
	// Written: there was no marker; ours is now in place.
	Written Outcome = "written"
	// Refreshed: our own marker was rewritten (requested_at renewed).
	Refreshed Outcome = "refreshed"
	// Replaced: a stale foreign marker the caller named was overwritten by ours.
	Replaced Outcome = "replaced"
	// Cleared: our marker was removed.
	Cleared Outcome = "cleared"
	// Absent: there was no marker to clear.
	Absent Outcome = "absent"
	// Foreign: a marker someone else wrote is there; it was left alone.
	Foreign Outcome = "foreign"
	// Read: nothing was changed.
	Read Outcome = "read"
	// LeavingTraffic: nothing was written yet. The agent, asked to take the
	// pod out of traffic first, reports it not ready and writes the marker
	// on a call made once its settle time has passed.
	LeavingTraffic Outcome = "leaving-traffic"
)

// FileState says what was found at a path.
type FileState string

const (
	FilePresent   FileState = "present"
	FileAbsent    FileState = "absent"
	FileDirectory FileState = "directory"
	// FileIrregular: a symbolic link, FIFO, device or socket. Never read:
	// HERMES_HOME belongs to the gateway's user, who may plant one to make
	// the operator read or block on something else.
	FileIrregular  FileState = "irregular"
	FileUnreadable FileState = "unreadable"
)

// File is a file as found in the container after the call acted.
type File struct {
	State FileState
	Data  []byte
}

// Observation is what one call saw in the container, after acting: the
// HERMES_HOME it was asked for (the root home), and the home of each
// profile under it (profiles/<name>), where upstream runs a gateway per
// profile unless one gateway multiplexes them all.
type Observation struct {
	// Epoch is the container's native epoch, computed in the container.
	Epoch string
	// Home is the HERMES_HOME the call acted on: the one asked for, or the
	// one the container's environment names when none was.
	Home string
	// GatewayHome is the root home's, and its Outcome the call's.
	GatewayHome
	// Profiles are the profile homes, by name, at most MaxProfiles of the
	// ProfileCount found.
	Profiles     []Profile
	ProfileCount int
}

// GatewayHome is what a call found in one gateway's home after acting.
type GatewayHome struct {
	Outcome Outcome
	// Marker is .drain_request.json, GatewayState gateway_state.json and
	// PIDFile gateway.pid.
	Marker       File
	GatewayState File
	PIDFile      File
	// GatewayProcess is the process gateway_state.json names as its writer,
	// and PIDProcess the one gateway.pid names, as /proc showed them in
	// the container.
	GatewayProcess Process
	PIDProcess     Process
}

// Profile is one profile home, profiles/<name> under the root home: a real
// directory (never a link) whose name is a profile's as upstream spells
// them (ProfileName), so tombstones and backups are not profiles.
type Profile struct {
	Name string
	GatewayHome
	// Message says why the call failed in this home (Outcome Failed).
	Message string
}

// MaxProfiles bounds the profile homes a call acts on and reports: what a
// call prints stays bounded however many directories a home holds. A
// container with more is never counted drained (Gateways says why).
const MaxProfiles = 32

// ProfileName reports whether name is a profile's, as upstream's command
// line accepts them: [a-z0-9][a-z0-9_-]{0,63}.
func ProfileName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for i, c := range name {
		lower, digit, inner := c >= 'a' && c <= 'z', c >= '0' && c <= '9', i > 0 && (c == '_' || c == '-')
		if !lower && !digit && !inner {
			return false
		}
	}
	return true
}

// Process is one process as its /proc/PID/stat line showed it.
type Process struct {
	// PID is the PID gateway_state.json names, 0 when it names none.
	PID int64
	// Stat is the process's /proc/PID/stat line, "" when there is no such process.
	Stat string
}

// ProjectRequest is a marker to put in place.
type ProjectRequest struct {
	Marker marker.Request
	// Replaceable is the exact content of a foreign marker the caller found
	// stale (the gateway ignores it) and allows to be overwritten. Any other
	// foreign marker is left alone.
	Replaceable []byte
	// LeaveTraffic asks that the pod be taken out of traffic before the
	// marker is written, where the call's carrier can: an agent that serves
	// the pod's readiness does it (LeavingTraffic); pods/exec cannot, and
	// writes at once.
	LeaveTraffic bool
	// Profiles names the profile homes to put the marker in too (each must
	// pass ProfileName): those that run a gateway of their own.
	Profiles []string
}

// CheckProfiles refuses a request that names a profile home by what is not
// a profile's name: the names go into paths.
func (r ProjectRequest) CheckProfiles() error {
	if len(r.Profiles) > MaxProfiles {
		return fmt.Errorf("%d profiles named, at most %d", len(r.Profiles), MaxProfiles)
	}
	for _, name := range r.Profiles {
		if !ProfileName(name) {
			return fmt.Errorf("%q is not a profile's name", marker.Excerpt(name, 80))
		}
	}
	return nil
}

// Failed is the word a call reports when it refused or failed in the
// container; the report then carries the message.
const Failed Outcome = "error"

// NewNonce returns 96 random bits in hex: names no one can predict, and
// request nonces.
func NewNonce() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
