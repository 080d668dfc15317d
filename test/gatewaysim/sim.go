// Package gatewaysim plays the Hermes gateway's side of the drain contract
// towards any number of HERMES_HOMEs, as upstream's gateway does today
// (../shared/docs/hermes-gateway-contract.md), with Version switches for
// the older behaviours still deployed. Once per tick each gateway reads its
// drain marker, honours it or not by upstream's rules (epoch match, lenient
// on a missing epoch, fail-safe on a corrupt marker, unchanged on bytes that
// are not UTF-8, no drain on one it cannot read, expiry after an hour),
// moves between running and draining, and finishes in-flight work over
// time.
//
// Its runtime record, gateway_state.json, is written as upstream writes it:
// on events only (a transition, a turn's start or end), never on a
// heartbeat, and every tick while an external drain stands (upstream's PR
// #63891 persists active_agents each second then). gateway.pid names the
// gateway from its first tick.
//
// Each served home may hold profile homes (profiles/<name> with a SOUL.md,
// as upstream's container boot starts a gateway for): standalone, each runs
// a gateway of its own that watches its own marker; under Multiplex the
// root's gateway serves them all, lists them in served_profiles, and only
// its marker counts.
//
// Work arrives through control files in a gateway's home: TurnsFile (chat
// turns) and APITurnsFile (API-server runs) are refused while it drains;
// InternalFile is work an internal event starts (a restart-recovery replay,
// a background completion), which passes the accept gate even while it
// drains. StopFile stops the gateway on purpose (desired_state stopped),
// until the file is removed.
package gatewaysim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// The control files.
const (
	TurnsFile    = "sim_turns"
	APITurnsFile = "sim_api_turns"
	InternalFile = "sim_internal"
	StopFile     = "sim_stop"
	// SoulFile in a profile home makes it run a gateway, as upstream's
	// container boot starts one for each profile that has it.
	SoulFile = "SOUL.md"
)

// Version says which of upstream's behaviours the gateways have; the zero
// Version is today's.
type Version struct {
	// NoExpiry: before PR #85444 (2026-08-13) a marker never expires.
	NoExpiry bool
	// ChatOnlyCounting: before PR #63891 (v0.19.0) active_agents counts chat
	// turns only (API-server runs run uncounted), and nothing is written
	// during a drain but at turn boundaries.
	ChatOnlyCounting bool
	// Unversioned: before v0.20.6 the record carries no code_version and
	// no code_sha (nor active_work).
	Unversioned bool
}

// Options configure a simulator.
type Options struct {
	// Homes lists the HERMES_HOMEs to serve; it is called every tick, so
	// homes may come and go.
	Homes func() ([]string, error)
	// TurnDuration is how long an in-flight turn takes.
	TurnDuration time.Duration
	// Epoch is the gateways' instantiation epoch; "" means this host's.
	Epoch string
	// Version selects older behaviours; Multiplex serves a home's profiles
	// from its root gateway; OwnHomeOnly leaves them to other processes
	// (one per home, as upstream's s6 slots run them).
	Version     Version
	Multiplex   bool
	OwnHomeOnly bool
	// OnChange, if set, is told each time a gateway moves between running
	// and draining, just before the new state is written.
	OnChange func(home, state string)
}

// CodeVersion is what a versioned gateway writes as code_version.
const CodeVersion = "0.21.3"

// Sim is a simulator of many gateways.
type Sim struct {
	opts  Options
	epoch string
	// startTime is this process's field 22 of /proc/self/stat: simulated
	// gateways name this process as their writer, as upstream does its own.
	startTime string
	mu        sync.Mutex
	gateways  map[string]*gateway
}

type gateway struct {
	state   string
	stopped bool
	turns   []turn
	// written is what was last written; pidWritten whether gateway.pid is.
	written    record
	pidWritten bool
}

type turn struct {
	done    time.Time
	counted bool // API runs are not, before PR #63891
}

type record struct {
	state  string
	agents int
	served string
}

// New returns a simulator.
func New(opts Options) *Sim {
	epoch := opts.Epoch
	if epoch == "" {
		epoch = marker.ProcEpoch("/proc")
	}
	self, _ := os.ReadFile("/proc/self/stat")
	start, _ := marker.ProcStatStartTime(string(self))
	return &Sim{opts: opts, epoch: epoch, startTime: start, gateways: map[string]*gateway{}}
}

// Epoch is the epoch the simulated gateways compare markers with.
func (s *Sim) Epoch() string { return s.epoch }

// Tick plays one round of every gateway's watcher at time now.
func (s *Sim) Tick(now time.Time) error {
	homes, err := s.opts.Homes()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []string
	for _, home := range homes {
		var profiles []string
		if !s.opts.OwnHomeOnly {
			profiles = Profiles(home)
		}
		served := ""
		if s.opts.Multiplex {
			served = strings.Join(profiles, ",")
			profiles = nil
		}
		for _, h := range append([]string{home}, profileHomes(home, profiles)...) {
			if err := s.tick(h, s.gateway(h), served, now); err != nil {
				errs = append(errs, err.Error())
			}
			served = ""
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func (s *Sim) gateway(home string) *gateway {
	g := s.gateways[home]
	if g == nil { // a gateway that just started runs
		g = &gateway{state: marker.StateRunning}
		s.gateways[home] = g
	}
	return g
}

// Profiles names the profile homes under home that run a gateway: real
// directories named as upstream names profiles, holding a SOUL.md.
func Profiles(home string) []string {
	entries, err := os.ReadDir(filepath.Join(home, "profiles"))
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() || !calls.ProfileName(e.Name()) {
			continue
		}
		if _, err := os.Stat(filepath.Join(home, "profiles", e.Name(), SoulFile)); err == nil {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names
}

func profileHomes(home string, names []string) []string {
	homes := make([]string, len(names))
	for i, n := range names {
		homes[i] = filepath.Join(home, "profiles", n)
	}
	return homes
}

// tick is one look of the gateway at home; served lists the profiles a
// multiplexing root serves.
func (s *Sim) tick(home string, g *gateway, served string, now time.Time) error {
	if err := s.writePID(home, g); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(home, StopFile)); err == nil {
		if !g.stopped {
			g.stopped, g.turns = true, nil
			return s.write(home, g, marker.StateStopped, served, now)
		}
		return nil
	}
	if g.stopped {
		g.stopped, g.state = false, marker.StateRunning
	}
	was := g.state
	switch drain := s.drainRequested(home, g, now); {
	case drain:
		g.state = marker.StateDraining
	case g.state == marker.StateDraining:
		g.state = marker.StateRunning
	}
	if g.state != was && s.opts.OnChange != nil {
		s.opts.OnChange(home, g.state)
	}
	draining := g.state == marker.StateDraining
	if n := take(home, TurnsFile); n > 0 && !draining {
		g.start(now, s.opts.TurnDuration, n, true)
	}
	if n := take(home, APITurnsFile); n > 0 && !draining {
		g.start(now, s.opts.TurnDuration, n, !s.opts.Version.ChatOnlyCounting)
	}
	if n := take(home, InternalFile); n > 0 { // past the accept gate
		g.start(now, s.opts.TurnDuration, n, true)
	}
	g.finish(now)
	changed := g.written != record{state: g.state, agents: g.agents(), served: served}
	persist := draining && !s.opts.Version.ChatOnlyCounting // PR #63891's every second
	if !changed && !persist {
		return nil
	}
	return s.write(home, g, g.state, served, now)
}

// drainRequested is upstream's drain_requested(home), as the watcher acts
// on it: a marker it cannot decode leaves the state as it was.
func (s *Sim) drainRequested(home string, g *gateway, now time.Time) bool {
	raw, err := os.ReadFile(filepath.Join(home, marker.Filename))
	if err != nil {
		return false // absent, unreadable, a directory: no drain
	}
	found := marker.Parse(raw)
	if found.Undecodable() {
		return g.state == marker.StateDraining
	}
	if s.opts.Version.NoExpiry {
		return found.Corrupt() || !found.EpochMismatch(s.epoch)
	}
	return found.Honoured(s.epoch, now)
}

func (g *gateway) start(now time.Time, d time.Duration, n int, counted bool) {
	for range n {
		g.turns = append(g.turns, turn{done: now.Add(d), counted: counted})
	}
}

func (g *gateway) finish(now time.Time) {
	inFlight := g.turns[:0]
	for _, t := range g.turns {
		if now.Before(t.done) {
			inFlight = append(inFlight, t)
		}
	}
	g.turns = inFlight
}

// agents is active_agents: the work the gateway counts.
func (g *gateway) agents() int {
	n := 0
	for _, t := range g.turns {
		if t.counted {
			n++
		}
	}
	return n
}

// write replaces gateway_state.json as upstream does.
func (s *Sim) write(home string, g *gateway, state, served string, now time.Time) error {
	desired := marker.StateRunning
	if g.stopped {
		desired = marker.DesiredStopped
	}
	rec := map[string]any{
		"kind":              "hermes-gateway",
		"pid":               os.Getpid(),
		"argv":              []string{"hermes", "gateway", "run"},
		"start_time":        json.Number(s.startTime),
		"gateway_state":     state,
		"desired_state":     desired,
		"active_agents":     g.agents(),
		"updated_at":        now.UTC().Format(marker.TimeLayout),
		"exit_reason":       nil,
		"restart_requested": false,
		"platforms":         map[string]any{},
	}
	if !s.opts.Version.Unversioned {
		rec["code_version"], rec["code_sha"], rec["active_work"] = CodeVersion, "0000000000000000000000000000000000000000", nil
		if state == marker.StateDraining {
			work := make([]map[string]any, 0, len(g.turns))
			for range g.turns {
				work = append(work, map[string]any{"kind": "chat", "pid": os.Getpid()})
			}
			rec["active_work"] = work
		}
	}
	if served != "" {
		rec["served_profiles"] = strings.Split(served, ",")
	}
	if err := writeAtomic(home, marker.StateFilename, rec); err != nil {
		return err
	}
	g.written = record{state: state, agents: g.agents(), served: served}
	return nil
}

// writePID writes gateway.pid once, as upstream's gateway does as it starts.
func (s *Sim) writePID(home string, g *gateway) error {
	if g.pidWritten {
		return nil
	}
	err := writeAtomic(home, marker.PIDFilename, map[string]any{
		"pid": os.Getpid(), "kind": "hermes-gateway", "argv": []string{"hermes", "gateway", "run"}, "start_time": json.Number(s.startTime),
	})
	g.pidWritten = err == nil
	return err
}

// take reads and removes a control file: how much work it hands over.
func take(home, name string) int {
	path := filepath.Join(home, name)
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	_ = os.Remove(path)
	n, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
	return n
}

// writeAtomic replaces name in home with v as JSON atomically, as upstream's
// atomic_json_write does.
func writeAtomic(home, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(home, "."+name+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(home, name))
}

// AddTurns hands the gateway at home n new chat turns.
func AddTurns(home string, n int) error { return hand(home, TurnsFile, n) }

// AddAPITurns hands the gateway at home n new API-server runs.
func AddAPITurns(home string, n int) error { return hand(home, APITurnsFile, n) }

// AddInternalWork starts n units of work at home as an internal event
// does: past the accept gate, even while the gateway drains.
func AddInternalWork(home string, n int) error { return hand(home, InternalFile, n) }

// Stop stops the gateway at home on purpose (desired_state stopped), and
// Start starts it again.
func Stop(home string) error { return os.WriteFile(filepath.Join(home, StopFile), nil, 0o644) }
func Start(home string) error {
	if err := os.Remove(filepath.Join(home, StopFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func hand(home, name string, n int) error {
	return os.WriteFile(filepath.Join(home, name), []byte(strconv.Itoa(n)), 0o644)
}

// ReadState reads a gateway's gateway_state.json.
func ReadState(home string) (marker.GatewayState, error) {
	raw, err := os.ReadFile(filepath.Join(home, marker.StateFilename))
	if err != nil {
		return marker.GatewayState{}, err
	}
	return marker.ParseGatewayState(raw)
}
