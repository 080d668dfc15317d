package agent

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
)

// fakeTree writes a /proc whose processes have the given parents.
func fakeTree(t *testing.T, parents map[int]int) string {
	t.Helper()
	root := t.TempDir()
	for pid, parent := range parents {
		dir := filepath.Join(root, fmt.Sprint(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		stat := fmt.Sprintf("%d (p %d) S %d 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 %d 0 0\n", pid, pid, parent, 1000+pid)
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestWhoSharesThePodsPIDNamespace(t *testing.T) {
	for name, tc := range map[string]struct {
		parents map[int]int
		self    int
		shared  bool
	}{
		// pause is PID 1; each container's first process was started from
		// outside the namespace (parent 0).
		"shared, the agent its container's first process":  {map[int]int{1: 0, 7: 0, 9: 0, 12: 9}, 7, true},
		"shared, the agent under a shell":                  {map[int]int{1: 0, 7: 0, 8: 7}, 8, true},
		"not shared, the agent PID 1":                      {map[int]int{1: 0}, 1, false},
		"not shared, the agent under its container's init": {map[int]int{1: 0, 6: 1}, 6, false},
	} {
		proc := fakeTree(t, tc.parents)
		if shared, err := sharesPIDNamespace(proc, tc.self); err != nil || shared != tc.shared {
			t.Errorf("%s: shared %v (%v), want %v", name, shared, err, tc.shared)
		}
	}
	proc := fakeTree(t, map[int]int{1: 0, 7: 0, 9: 0, 12: 9, 13: 12, 20: 1})
	for writer, want := range map[int]int{13: 9, 9: 9, 20: 1} {
		if got, err := containerOf(proc, writer); err != nil || got.PID != want || got.Start != fmt.Sprint(1000+want) {
			t.Errorf("containerOf(%d) = %+v (%v), want %d", writer, got, err, want)
		}
	}
	if _, err := containerOf(proc, 99); err == nil {
		t.Error("a missing process has a container")
	}
}

// A guard that lets go of a marker stops watching its gateway at once (its
// watch leaves poll(2)), and that gateway's end then clears nothing.
func TestALetGoGuardStopsWatching(t *testing.T) {
	cleared := make(chan string, 1)
	g := &guard{procRoot: "/proc", log: testr.New(t), clear: func(owner string) { cleared <- owner }}
	gw := exec.Command("sleep", "600")
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = gw.Process.Kill(); _ = gw.Wait() }()
	g.bind("uid-1", gw.Process.Pid)
	stop := g.stop
	if stop == nil {
		t.Fatal("nothing guarded")
	}
	g.unbind("uid-1")
	testenv.Eventually(t, 5*time.Second, func() (bool, string) {
		stop.mu.Lock()
		defer stop.mu.Unlock()
		return stop.fd == -1, "the watch still runs"
	})
	_ = gw.Process.Kill()
	_ = gw.Wait()
	if len(cleared) != 0 {
		t.Errorf("a marker let go of was cleared: %s", <-cleared)
	}
}
