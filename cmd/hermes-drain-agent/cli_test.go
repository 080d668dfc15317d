package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

func cli(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeState(t *testing.T, home, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(home, marker.StateFilename), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDrainStatusCancel(t *testing.T) {
	home := t.TempDir()
	if code, out, errOut := cli("drain", "--home", home, "--principal", "alice"); code != exitOK || !strings.Contains(out, "drain requested") {
		t.Fatalf("drain: %d %q %q", code, out, errOut)
	}
	raw, err := os.ReadFile(filepath.Join(home, marker.Filename))
	if err != nil {
		t.Fatal(err)
	}
	found := marker.Parse(raw)
	if !found.Honoured(marker.ProcEpoch("/proc"), time.Now()) || found.Principal() != "alice" {
		t.Errorf("the marker %s is not honoured by this instantiation", raw)
	}
	if code, out, _ := cli("status", "--home", home); code != exitOK || !strings.Contains(out, `marker       honoured: a drain by principal "alice"`) {
		t.Errorf("status: %d %q", code, out)
	}
	code, out, _ := cli("status", "--home", home, "-o", "json")
	var s calls.HomeStatus
	if err := json.Unmarshal([]byte(out), &s); code != exitOK || err != nil || !s.Marker.Honoured || s.Home != home {
		t.Errorf("status -o json: %d %q %v", code, out, err)
	}
	if code, out, _ := cli("cancel", "--home", home); code != exitOK || !strings.Contains(out, "drain withdrawn") {
		t.Errorf("cancel: %d %q", code, out)
	}
	if code, out, _ := cli("cancel", "--home", home); code != exitOK || !strings.Contains(out, "no drain to withdraw") {
		t.Errorf("second cancel: %d %q", code, out)
	}
}

// Someone else's drain is neither replaced nor withdrawn, and the message
// names whose it is.
func TestSomeoneElsesDrainIsLeftAlone(t *testing.T) {
	home := t.TempDir()
	theirs := `{"action":"drain","principal":"ops","epoch":"x:1","kubernetes":{"gatewayDrainUID":"u","gatewayDrain":"team-a/upgrade"}}`
	if err := os.WriteFile(filepath.Join(home, marker.Filename), []byte(theirs), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := cli("drain", "--home", home); code != exitRefused || !strings.Contains(errOut, "GatewayDrain team-a/upgrade") {
		t.Errorf("drain: %d %q", code, errOut)
	}
	if code, _, errOut := cli("cancel", "--home", home); code != exitRefused || !strings.Contains(errOut, "not this command's") {
		t.Errorf("cancel: %d %q", code, errOut)
	}
	if b, _ := os.ReadFile(filepath.Join(home, marker.Filename)); string(b) != theirs {
		t.Errorf("their marker became %q", b)
	}
}

func TestDrainWaitsUntilNoTurnIsInFlight(t *testing.T) {
	home := t.TempDir()
	writeState(t, home, `{"gateway_state": "draining", "active_agents": 0}`)
	if code, out, errOut := cli("drain", "--home", home, "--wait", "--timeout", "10s"); code != exitOK || !strings.Contains(out, "drained, no turn in flight") {
		t.Errorf("drain --wait: %d %q %q", code, out, errOut)
	}
	cli("cancel", "--home", home)
	writeState(t, home, `{"gateway_state": "draining", "active_agents": 2}`)
	if code, _, errOut := cli("drain", "--home", home, "--wait", "--timeout", "1s"); code != exitRefused || !strings.Contains(errOut, "draining with 2 turns in flight") {
		t.Errorf("drain --wait with turns in flight: %d %q", code, errOut)
	}
}

// A gateway whose process is not visible here runs in another PID
// namespace: a marker stamped with this one's epoch would be wrong.
func TestNoDrainFromOutsideTheGatewaysPIDNamespace(t *testing.T) {
	home := t.TempDir()
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"gateway_state": "running", "active_agents": 0, "pid": gone.Process.Pid, "start_time": "1"})
	writeState(t, home, string(b))
	if code, _, errOut := cli("drain", "--home", home); code != exitRefused || !strings.Contains(errOut, "not in this PID namespace") {
		t.Errorf("drain: %d %q", code, errOut)
	}
	if _, err := os.Lstat(filepath.Join(home, marker.Filename)); !os.IsNotExist(err) {
		t.Errorf("a marker was written: %v", err)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{nil, {"frobnicate"}, {"status", "-o", "yaml"}, {"drain", "extra"}, {"serve"}, {"serve", "--operator", "no-slash"}} {
		if code, _, _ := cli(args...); code != exitError {
			t.Errorf("%q: exit %d, want %d", args, code, exitError)
		}
	}
}

// drain reaches the root home's gateway and every profile home's that runs
// one of its own; --wait waits for every one; status shows each; cancel
// releases them all; --profile picks one (issue 24, item 2).
func TestDrainReachesEveryProfileGateway(t *testing.T) {
	home := t.TempDir()
	live := fmt.Sprintf(`{"kind":"hermes-gateway","gateway_state":%%q,"active_agents":%%d,"pid":%d}`, os.Getpid())
	for _, p := range []string{"alice", "idle"} {
		if err := os.MkdirAll(filepath.Join(home, "profiles", p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	alice := filepath.Join(home, "profiles", "alice")
	writeState(t, home, fmt.Sprintf(live, "draining", 0))
	writeState(t, alice, fmt.Sprintf(live, "running", 1))
	if code, out, errOut := cli("drain", "--home", home); code != exitOK || !strings.Contains(out, "of 2 gateways: default, alice") {
		t.Fatalf("drain: %d %q %q", code, out, errOut)
	}
	for dir, want := range map[string]bool{alice: true, filepath.Join(home, "profiles", "idle"): false} {
		if _, err := os.Stat(filepath.Join(dir, marker.Filename)); (err == nil) != want {
			t.Errorf("marker in %s: %v, want present=%v", dir, err, want)
		}
	}
	if code, out, _ := cli("status", "--home", home); code != exitOK || !strings.Contains(out, "profile alice\n  marker     honoured") || !strings.Contains(out, "running with 1 turns in flight") {
		t.Errorf("status: %d %q", code, out)
	}
	if code, _, errOut := cli("drain", "--home", home, "--wait", "--timeout", "1s"); code != exitRefused || !strings.Contains(errOut, "profile alice") {
		t.Errorf("a wait with alice's turn in flight: %d %q", code, errOut)
	}
	writeState(t, alice, fmt.Sprintf(live, "draining", 0))
	if code, out, errOut := cli("drain", "--home", home, "--wait", "--timeout", "10s"); code != exitOK || !strings.Contains(out, "drained") {
		t.Errorf("a wait with every gateway drained: %d %q %q", code, out, errOut)
	}
	if code, out, _ := cli("cancel", "--home", home); code != exitOK || !strings.Contains(out, "profiles/alice: drain withdrawn") {
		t.Errorf("cancel: %d %q", code, out)
	}
	if _, err := os.Stat(filepath.Join(alice, marker.Filename)); err == nil {
		t.Error("cancel left alice's marker")
	}
	if code, out, errOut := cli("drain", "--home", home, "--profile", "alice"); code != exitOK || !strings.Contains(out, alice+": drain requested") {
		t.Errorf("drain --profile alice: %d %q %q", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(home, marker.Filename)); err == nil {
		t.Error("drain --profile alice wrote the root home's marker")
	}
	if code, _, _ := cli("drain", "--home", home, "--profile", "../x"); code != exitError {
		t.Errorf("--profile ../x: %d, want refused", code)
	}
}
