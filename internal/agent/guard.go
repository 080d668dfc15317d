package agent

import (
	"errors"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"
)

// guard removes the agent's marker the instant the gateway container it
// was written for ends. In a pod that shares its PID namespace the epoch is
// the pause process's, which outlives a container restart: the gateway's
// next instantiation would honour the old marker (NS-570) unless something
// takes it away before the container starts again. The operator would, but
// it may be slow or down. The agent knows the gateway container by the
// process gateway_state.json names as its writer: the container is that
// process's first ancestor started from outside the namespace
// (containerOf). It waits on that process with a pidfd, so the marker goes
// as soon as it exits, before the kubelet can start the container again. A
// gateway process restarted inside its container (under a supervisor) is
// the same instantiation, as upstream's epoch says, and keeps its drain.
type guard struct {
	procRoot string
	// clear removes owner's marker, if it is still there.
	clear func(owner string)
	log   logr.Logger

	mu sync.Mutex
	// owner is the GatewayDrain whose marker is guarded; pending when the
	// gateway's container is not known yet (no live writer of
	// gateway_state.json when the marker was written).
	owner   string
	pending bool
	watched proc
	stop    *stopper
}

// bind guards owner's marker, written while writer ran in the gateway's
// container (writer 0: not known yet).
func (g *guard) bind(owner string, writer int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if writer <= 0 {
		if g.owner == owner {
			return // keep what is known of this owner's gateway
		}
		g.release()
		g.owner, g.pending = owner, true
		return
	}
	first, err := containerOf(g.procRoot, writer)
	if err == nil && first.PID == 1 { // daemonised under pause: itself
		first, _, err = readProc(g.procRoot, writer)
	}
	if err != nil {
		g.log.Error(err, "cannot find the gateway's container; the operator will end a stale drain", "writer", writer)
		g.release()
		return
	}
	if g.owner == owner && g.stop != nil && g.watched == first {
		return // already watching
	}
	stop, err := newStopper()
	if err != nil {
		g.log.Error(err, "cannot guard the marker; the operator will end a stale drain")
		g.release()
		return
	}
	g.release()
	g.owner, g.watched, g.stop = owner, first, stop
	go g.watch(owner, first, stop)
}

// pendingOwner is the owner whose marker waits for a gateway to guard, or "".
func (g *guard) pendingOwner() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pending {
		return g.owner
	}
	return ""
}

// guarding reports whether a marker is guarded or waits to be.
func (g *guard) guarding() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.owner != ""
}

// unbind stops guarding owner's marker (it was cleared).
func (g *guard) unbind(owner string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.owner == owner {
		g.release()
	}
}

func (g *guard) release() {
	if g.stop != nil {
		g.stop.stop()
	}
	g.owner, g.pending, g.watched, g.stop = "", false, proc{}, nil
}

// watch waits until p exits, then clears owner's marker unless the guard
// moved on meanwhile.
func (g *guard) watch(owner string, p proc, stop *stopper) {
	defer stop.close()
	if g.waitExit(p, stop) {
		return
	}
	g.mu.Lock()
	current := g.stop == stop
	if current {
		g.release()
	}
	g.mu.Unlock()
	if current {
		g.log.Info("the gateway container the marker was written for ended: removing the marker", "owner", owner, "process", p.PID)
		g.clear(owner)
	}
}

// waitExit returns when p has exited (false) or stop was called (true). It
// sleeps in poll(2) on p's pidfd and stop's eventfd: nothing runs while it
// waits.
func (g *guard) waitExit(p proc, stop *stopper) (stopped bool) {
	fd, err := unix.PidfdOpen(p.PID, 0)
	if err != nil {
		return false // gone already
	}
	defer unix.Close(fd)
	// The pidfd holds whatever process has the PID now: it is p only if
	// the start time is still p's.
	if !alive(g.procRoot, p) {
		return false
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(stop.fd), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		switch {
		case fds[1].Revents != 0:
			return true
		case fds[0].Revents != 0:
			return false
		case err != nil && !errors.Is(err, unix.EINTR):
			if !alive(g.procRoot, p) {
				return false
			}
			time.Sleep(500 * time.Millisecond) // poll(2) failed: check again later
		}
	}
}

// stopper wakes a watch sleeping in poll(2): an eventfd it polls beside
// the pidfd.
type stopper struct {
	mu sync.Mutex
	fd int // -1 once closed
}

func newStopper() (*stopper, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, err
	}
	return &stopper{fd: fd}, nil
}

func (s *stopper) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fd >= 0 {
		_, _ = unix.Write(s.fd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}
}

func (s *stopper) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	unix.Close(s.fd)
	s.fd = -1
}
