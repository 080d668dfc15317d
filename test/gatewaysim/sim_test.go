package gatewaysim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

const epoch = "boot:42"

func newSim(t *testing.T) (*Sim, string) {
	home := t.TempDir()
	return New(Options{Homes: func() ([]string, error) { return []string{home}, nil }, TurnDuration: 10 * time.Second, Epoch: epoch}), home
}

func tick(t *testing.T, s *Sim, home string, at time.Time) marker.GatewayState {
	t.Helper()
	if err := s.Tick(at); err != nil {
		t.Fatal(err)
	}
	st, err := ReadState(home)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func writeMarker(t *testing.T, home, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(home, marker.Filename), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDrainLetsInFlightTurnsFinishAndRefusesNewOnes(t *testing.T) {
	s, home := newSim(t)
	t0 := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	if err := AddTurns(home, 2); err != nil {
		t.Fatal(err)
	}
	if st := tick(t, s, home, t0); st.State != marker.StateRunning || st.ActiveAgents != 2 {
		t.Fatalf("after two turns: %+v", st)
	}
	writeMarker(t, home, `{"action":"drain","requested_at":"`+t0.Format(marker.TimeLayout)+`","epoch":"`+epoch+`"}`)
	if err := AddTurns(home, 5); err != nil {
		t.Fatal(err)
	}
	if st := tick(t, s, home, t0.Add(time.Second)); st.State != marker.StateDraining || st.ActiveAgents != 2 {
		t.Fatalf("draining should refuse the 5 new turns and keep 2: %+v", st)
	}
	if st := tick(t, s, home, t0.Add(11*time.Second)); !st.DrainComplete() || st.PID != int64(os.Getpid()) || st.StartTime == "" {
		t.Fatalf("turns should have finished: %+v", st)
	}
	if err := os.Remove(filepath.Join(home, marker.Filename)); err != nil {
		t.Fatal(err)
	}
	if st := tick(t, s, home, t0.Add(12*time.Second)); st.State != marker.StateRunning {
		t.Fatalf("cancel should resume: %+v", st)
	}
}

func TestMarkerRulesAreUpstreams(t *testing.T) {
	now := time.Now()
	fresh := now.UTC().Format(marker.TimeLayout)
	for name, tc := range map[string]struct {
		content  string
		draining bool
	}{
		"same epoch":      {`{"action":"drain","requested_at":"` + fresh + `","epoch":"` + epoch + `"}`, true},
		"stale epoch":     {`{"action":"drain","requested_at":"` + fresh + `","epoch":"boot:41"}`, false},
		"no epoch":        {`{"action":"drain","requested_at":"` + fresh + `"}`, true},
		"corrupt":         {`{"action":`, true},
		"expired request": {`{"action":"drain","requested_at":"` + now.Add(-2*time.Hour).UTC().Format(marker.TimeLayout) + `","epoch":"` + epoch + `"}`, false},
	} {
		t.Run(name, func(t *testing.T) {
			s, home := newSim(t)
			writeMarker(t, home, tc.content)
			if st := tick(t, s, home, now); (st.State == marker.StateDraining) != tc.draining {
				t.Errorf("state %s, want draining=%v", st.State, tc.draining)
			}
		})
	}
}

func TestStateFileIsUpstreamsShapeAndAtomic(t *testing.T) {
	s, home := newSim(t)
	tick(t, s, home, time.Now())
	raw, err := os.ReadFile(filepath.Join(home, marker.StateFilename))
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"kind":"hermes-gateway"`, `"gateway_state":"running"`, `"active_agents":0`, `"pid":`, `"updated_at":`} {
		if !contains(raw, field) {
			t.Errorf("%s lacks %s", raw, field)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(home, ".gateway_state.*")); len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }

// A marker that is not UTF-8 changes nothing, as upstream's watcher, whose
// read raises, keeps the state it had: a running gateway keeps running, a
// draining one keeps draining.
func TestAMarkerThatIsNotUTF8ChangesNothing(t *testing.T) {
	s, home := newSim(t)
	t0 := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	writeMarker(t, home, "\xff\xfe")
	if st := tick(t, s, home, t0); st.State != marker.StateRunning {
		t.Fatalf("a running gateway: %s", st.State)
	}
	writeMarker(t, home, `{"action":"drain","requested_at":"`+t0.Format(marker.TimeLayout)+`","epoch":"`+epoch+`"}`)
	if st := tick(t, s, home, t0.Add(time.Second)); st.State != marker.StateDraining {
		t.Fatalf("the drain: %s", st.State)
	}
	writeMarker(t, home, "\xff\xfe")
	if st := tick(t, s, home, t0.Add(2*time.Second)); st.State != marker.StateDraining {
		t.Fatalf("a draining gateway: %s", st.State)
	}
}

func drainMarker(at time.Time) string {
	return `{"action":"drain","requested_at":"` + at.UTC().Format(marker.TimeLayout) + `","epoch":"` + epoch + `"}`
}

func simWith(t *testing.T, opts Options) (*Sim, string) {
	home := t.TempDir()
	opts.Homes, opts.TurnDuration, opts.Epoch = func() ([]string, error) { return []string{home}, nil }, 10*time.Second, epoch
	return New(opts), home
}

// The record is written on events only, as upstream's: an idle gateway
// never rewrites it; while an external drain stands, today's gateway
// persists it every tick, an older one only at turn boundaries.
func TestTheRecordIsWrittenOnEventsOnly(t *testing.T) {
	for _, v := range []Version{{}, {ChatOnlyCounting: true}} {
		s, home := simWith(t, Options{Version: v})
		t0 := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
		first := tick(t, s, home, t0)
		for i := 1; i <= 5; i++ {
			if st := tick(t, s, home, t0.Add(time.Duration(i)*time.Minute)); st.UpdatedAt != first.UpdatedAt {
				t.Fatalf("%+v: an idle gateway rewrote its record at %s", v, st.UpdatedAt)
			}
		}
		writeMarker(t, home, drainMarker(t0.Add(6*time.Minute)))
		draining := tick(t, s, home, t0.Add(6*time.Minute))
		again := tick(t, s, home, t0.Add(6*time.Minute+time.Second))
		if persisted := again.UpdatedAt != draining.UpdatedAt; persisted == v.ChatOnlyCounting {
			t.Errorf("%+v: during a drain the record was rewritten each tick: %v", v, persisted)
		}
	}
}

// Work the gateway does not count, and work that passes its accept gate.
func TestWorkIsCountedAsTheVersionCountsIt(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		v       Version
		counted int
	}{{Version{}, 2}, {Version{ChatOnlyCounting: true}, 1}} {
		s, home := simWith(t, Options{Version: tc.v})
		if err := AddTurns(home, 1); err != nil {
			t.Fatal(err)
		}
		if err := AddAPITurns(home, 1); err != nil {
			t.Fatal(err)
		}
		if st := tick(t, s, home, t0); st.ActiveAgents != int32(tc.counted) {
			t.Errorf("%+v: %d active agents, want %d", tc.v, st.ActiveAgents, tc.counted)
		}
	}
	s, home := simWith(t, Options{})
	writeMarker(t, home, drainMarker(t0))
	if st := tick(t, s, home, t0); !st.DrainComplete() {
		t.Fatalf("not drained: %+v", st)
	}
	if err := AddInternalWork(home, 1); err != nil {
		t.Fatal(err)
	}
	if st := tick(t, s, home, t0.Add(time.Second)); st.State != marker.StateDraining || st.ActiveAgents != 1 {
		t.Errorf("an internal event's work during a drain: %+v, want draining with 1 in flight", st)
	}
}

// Each profile home with a SOUL.md runs a gateway of its own, watching its
// own marker; under multiplex the root's serves them all and lists them.
func TestProfilesStandaloneAndMultiplexed(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	for _, multiplex := range []bool{false, true} {
		s, home := simWith(t, Options{Multiplex: multiplex})
		for _, p := range []string{"alice", "bob", "nosoul"} {
			if err := os.MkdirAll(filepath.Join(home, "profiles", p), 0o755); err != nil {
				t.Fatal(err)
			}
			if p != "nosoul" {
				if err := os.WriteFile(filepath.Join(home, "profiles", p, SoulFile), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		alice := filepath.Join(home, "profiles", "alice")
		writeMarker(t, alice, drainMarker(t0))
		root := tick(t, s, home, t0)
		_, aliceErr := ReadState(alice)
		_, nosoulErr := ReadState(filepath.Join(home, "profiles", "nosoul"))
		if multiplex {
			if root.ServedProfiles != 2 || root.State != marker.StateRunning || aliceErr == nil {
				t.Errorf("multiplex: root %+v, alice's record %v: want the root serving 2, none of alice's", root, aliceErr)
			}
			continue
		}
		st, err := ReadState(alice)
		if err != nil || st.State != marker.StateDraining || root.State != marker.StateRunning || nosoulErr == nil {
			t.Errorf("standalone: alice %+v %v, root %s, nosoul %v: want alice draining alone", st, err, root.State, nosoulErr)
		}
		if _, err := os.Stat(filepath.Join(alice, marker.PIDFilename)); err != nil {
			t.Errorf("alice's gateway.pid: %v", err)
		}
	}
}

// A gateway stopped on purpose says so, and serves nothing until started.
func TestAGatewayStoppedOnPurpose(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	s, home := simWith(t, Options{})
	if err := Stop(home); err != nil {
		t.Fatal(err)
	}
	if st := tick(t, s, home, t0); st.State != marker.StateStopped || st.DesiredState != marker.DesiredStopped {
		t.Errorf("stopped: %+v", st)
	}
	if _, ok := s.Turn(home, t0); ok {
		t.Error("a stopped gateway took a turn")
	}
	if err := Start(home); err != nil {
		t.Fatal(err)
	}
	if st := tick(t, s, home, t0.Add(time.Second)); st.State != marker.StateRunning || st.DesiredState != marker.StateRunning {
		t.Errorf("started: %+v", st)
	}
}

// Older versions: no expiry, no version in the record; a marker the
// gateway cannot read is no drain.
func TestOlderVersionsAndUnreadableMarkers(t *testing.T) {
	now := time.Now()
	s, home := simWith(t, Options{Version: Version{NoExpiry: true, Unversioned: true}})
	writeMarker(t, home, drainMarker(now.Add(-2*time.Hour)))
	if st := tick(t, s, home, now); st.State != marker.StateDraining || st.CountsAllWork {
		t.Errorf("before expiry and versions: %+v, want draining on an old marker, no version shown", st)
	}
	s, home = simWith(t, Options{})
	if err := os.Mkdir(filepath.Join(home, marker.Filename), 0o755); err != nil {
		t.Fatal(err)
	}
	if st := tick(t, s, home, now); st.State != marker.StateRunning {
		t.Errorf("a marker that is a directory: %s, want running", st.State)
	}
}
