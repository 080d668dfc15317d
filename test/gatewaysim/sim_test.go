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
