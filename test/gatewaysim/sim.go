// Package gatewaysim plays the Hermes gateway's side of the drain contract
// towards any number of HERMES_HOMEs, as upstream's gateway does towards its
// one: once per interval it reads the drain marker, honours it or not by
// upstream's rules (epoch match, lenient on a missing epoch, fail-safe on a
// corrupt marker, expiry of an old requested_at), moves gateway_state between
// running and draining, finishes in-flight turns over time, and rewrites
// gateway_state.json atomically.
//
// Turns arrive through a control file: writing N to {home}/sim_turns hands
// the gateway N new turns, which it accepts only while it is not draining
// (upstream refuses new turns while draining).
package gatewaysim

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// TurnsFile is the control file that hands a gateway new turns.
const TurnsFile = "sim_turns"

// Options configure a simulator.
type Options struct {
	// Homes lists the HERMES_HOMEs to serve; it is called every tick, so
	// homes may come and go.
	Homes func() ([]string, error)
	// TurnDuration is how long an in-flight turn takes to finish.
	TurnDuration time.Duration
	// Epoch is the gateways' instantiation epoch; "" means this host's.
	Epoch string
	// OnChange, if set, is told each time a gateway moves between running
	// and draining, just before the new state is written.
	OnChange func(home, state string)
}

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
	state string
	turns []time.Time // when each in-flight turn finishes
	// written is what was last written, and when.
	written struct {
		state  string
		agents int
		at     time.Time
	}
}

// heartbeat is how often an unchanged state is written again (upstream:
// about every 60 s; the operator calls a file stalled after 2 minutes
// unchanged). A change is written at once. Upstream also rewrites
// active_agents every second during a drain; writing only changes keeps
// thousands of simulated gateways within one process's means.
const heartbeat = 10 * time.Second

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
		g := s.gateways[home]
		if g == nil {
			g = &gateway{state: marker.StateRunning}
			s.gateways[home] = g
		}
		if err := s.tick(home, g, now); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func (s *Sim) tick(home string, g *gateway, now time.Time) error {
	draining := false
	if raw, err := os.ReadFile(filepath.Join(home, marker.Filename)); err == nil {
		found := marker.Parse(raw)
		// Upstream's read of a marker that is not UTF-8 raises, and its
		// watcher keeps the state it had.
		draining = found.Honoured(s.epoch, now) || found.Undecodable() && g.state == marker.StateDraining
	}
	was := g.state
	switch {
	case draining:
		g.state = marker.StateDraining
	case g.state == marker.StateDraining:
		g.state = marker.StateRunning
	}
	if g.state != was && s.opts.OnChange != nil {
		s.opts.OnChange(home, g.state)
	}
	if n := takeTurns(home); n > 0 && g.state != marker.StateDraining {
		for range n {
			g.turns = append(g.turns, now.Add(s.opts.TurnDuration))
		}
	}
	inFlight := g.turns[:0]
	for _, t := range g.turns {
		if now.Before(t) {
			inFlight = append(inFlight, t)
		}
	}
	g.turns = inFlight
	if g.written.state == g.state && g.written.agents == len(g.turns) && now.Sub(g.written.at) < heartbeat {
		return nil
	}
	err := writeState(home, map[string]any{
		"kind":              "hermes-gateway",
		"gateway_state":     g.state,
		"active_agents":     len(g.turns),
		"pid":               os.Getpid(),
		"start_time":        json.Number(s.startTime),
		"updated_at":        now.UTC().Format(marker.TimeLayout),
		"exit_reason":       nil,
		"restart_requested": false,
		"platforms":         []string{},
	})
	if err == nil {
		g.written.state, g.written.agents, g.written.at = g.state, len(g.turns), now
	}
	return err
}

// takeTurns reads and removes the control file.
func takeTurns(home string) int {
	path := filepath.Join(home, TurnsFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	_ = os.Remove(path)
	n, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
	return n
}

// writeState replaces gateway_state.json atomically, as upstream does.
func writeState(home string, state map[string]any) error {
	b, err := json.Marshal(state)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(home, ".gateway_state.*.tmp")
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
	return os.Rename(tmp.Name(), filepath.Join(home, marker.StateFilename))
}

// AddTurns hands the gateway at home n new turns (through the control file).
func AddTurns(home string, n int) error {
	return os.WriteFile(filepath.Join(home, TurnsFile), []byte(strconv.Itoa(n)), 0o644)
}

// ReadState reads a gateway's gateway_state.json.
func ReadState(home string) (marker.GatewayState, error) {
	raw, err := os.ReadFile(filepath.Join(home, marker.StateFilename))
	if err != nil {
		return marker.GatewayState{}, err
	}
	return marker.ParseGatewayState(raw)
}
