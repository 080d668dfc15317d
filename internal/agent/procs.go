package agent

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// proc is one process: its PID and start time (field 22 of its /proc stat),
// which together name it even after the PID is reused.
type proc struct {
	PID   int
	Start string
}

// readProc reads pid's start time and parent from procRoot.
func readProc(procRoot string, pid int) (p proc, parent int, err error) {
	b, err := os.ReadFile(procRoot + "/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return proc{}, 0, err
	}
	stat := string(b)
	start, err := marker.ProcStatStartTime(stat)
	if err != nil {
		return proc{}, 0, err
	}
	// Fields after the command name: state, ppid, ...
	rest := strings.Fields(stat[strings.LastIndexByte(stat, ')')+1:])
	if parent, err = strconv.Atoi(rest[1]); err != nil {
		return proc{}, 0, fmt.Errorf("/proc/%d/stat: parent %q", pid, rest[1])
	}
	return proc{PID: pid, Start: start}, parent, nil
}

// alive reports whether p still runs (the same process, not a reuse of its PID).
func alive(procRoot string, p proc) bool {
	now, _, err := readProc(procRoot, p.PID)
	return err == nil && now == p
}

// containerOf returns the first process of pid's container: its ancestor
// whose parent is outside this PID namespace (parent 0). In a pod that
// shares its PID namespace every container's first process has parent 0,
// the runtime having started it from outside, and PID 1 is the sandbox's
// pause process, which reaps orphans: a process reparented to it
// (daemonised) has PID 1 as its "container". Without sharing, PID 1 is the
// first process of this container.
func containerOf(procRoot string, pid int) (proc, error) {
	for range 64 { // deeper trees are not process trees a container starts
		p, parent, err := readProc(procRoot, pid)
		if err != nil {
			return proc{}, err
		}
		if parent == 0 {
			return p, nil
		}
		pid = parent
	}
	return proc{}, fmt.Errorf("process %d: no container found within 64 ancestors", pid)
}

// sharesPIDNamespace reports whether this process shares its PID namespace
// with the pod's other containers: then PID 1 is the pause process, not the
// first process of this container. Only then does the epoch this process
// computes (from /proc/1) equal the gateway container's.
func sharesPIDNamespace(procRoot string, self int) (bool, error) {
	first, err := containerOf(procRoot, self)
	if err != nil {
		return false, err
	}
	return first.PID != 1, nil
}
