package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// recheckEvery is how often the home is read even when no file changed: a
// gateway that dies leaves its state file as it was, and only /proc shows
// that its writer is gone.
const recheckEvery = time.Second

const notReadYet = "not read yet"

// readiness knows whether the gateway accepts turns, from
// gateway_state.json, watched (inotify) rather than read per probe, so the
// kubelet's probe costs nothing and follows a change within milliseconds.
type readiness struct {
	local calls.InProcess
	home  string
	log   logr.Logger
	// seen is told of every read (the guard adopts markers from it).
	seen func(calls.Observation)

	// newWatcher makes the inotify watcher (fsnotify.NewWatcher).
	newWatcher func() (*fsnotify.Watcher, error)

	mu sync.Mutex
	// gatewayReady and gatewayWhy are what the gateway's files said last.
	gatewayReady bool
	gatewayWhy   string
	// leaving holds the pod out of traffic for the drains that asked to
	// leave traffic before their markers (by GatewayDrain UID).
	leaving map[string]leave
	// ready and why are the answer: the gateway's, unless a drain holds
	// the pod out of traffic.
	ready bool
	why   string
	// changed is when ready last changed.
	changed time.Time
}

// leave is a drain that takes the pod out of traffic before its marker.
type leave struct {
	drain string
	// writeAt is when its marker may be written; until, when the hold
	// ends by itself: by then the gateway has long reported draining
	// (it looks at its marker once a second), or the write never came.
	writeAt, until time.Time
}

// holdAfterWrite is how long a hold outlives the time its marker may be
// written: the bridge until the gateway itself reports draining.
const holdAfterWrite = 30 * time.Second

func newReadiness(local calls.InProcess, home string, log logr.Logger, seen func(calls.Observation)) *readiness {
	return &readiness{local: local, home: home, log: log, seen: seen, why: notReadYet, gatewayWhy: notReadYet, changed: time.Now(),
		leaving: map[string]leave{}, newWatcher: fsnotify.NewWatcher}
}

// run watches the home until ctx ends. Where no inotify instance is left
// (a user gets 128 per node, and every container of that uid shares them),
// it reads the home every second instead: slower to notice, never wrong.
func (r *readiness) run(ctx context.Context) error {
	var events <-chan fsnotify.Event
	var errs <-chan error
	w, err := r.watch()
	if err != nil {
		r.log.Error(err, "cannot watch HERMES_HOME; reading it every second instead")
	} else {
		defer w.Close()
		events, errs = w.Events, w.Errors
	}
	tick := time.NewTicker(recheckEvery)
	defer tick.Stop()
	r.refresh(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-events:
			if name := ev.Name[len(r.home):]; name == "/"+marker.StateFilename || name == "/"+marker.Filename {
				r.refresh(ctx)
			}
		case err := <-errs:
			r.log.Error(err, "watching HERMES_HOME; reading it every second meanwhile")
		case <-tick.C:
			r.refresh(ctx)
		}
	}
}

// watch watches the home for changes of its files.
func (r *readiness) watch() (*fsnotify.Watcher, error) {
	w, err := r.newWatcher()
	if err != nil {
		return nil, err
	}
	if err := w.Add(r.home); err != nil {
		w.Close()
		return nil, fmt.Errorf("watching %s: %w", r.home, err)
	}
	return w, nil
}

// refresh reads the home and records whether the gateway accepts turns. A
// read that failed because this process is out of descriptors or memory
// says nothing of the gateway: the last answer stands (a peer that holds
// connections open must not take the pod out of traffic).
func (r *readiness) refresh(ctx context.Context) {
	obs, err := r.local.Read(ctx, calls.Pod{}, r.home)
	if (err != nil || obs.GatewayState.State == calls.FileUnreadable) && r.starved() {
		r.log.Error(err, "reading HERMES_HOME failed for want of descriptors or memory; /readyz keeps its last answer")
		return
	}
	ready, why := false, ""
	if err != nil {
		why = err.Error()
	} else if st, problem := obs.GatewayStateNow(); problem != nil {
		why = problem.Message
	} else if ready = st.AcceptsTurns(); !ready {
		why = fmt.Sprintf("the gateway is %s (%d turns in flight)", st.State, st.ActiveAgents)
	}
	r.mu.Lock()
	r.gatewayReady, r.gatewayWhy = ready, why
	if st, problem := obs.GatewayStateNow(); err == nil && problem == nil && st.State == marker.StateDraining {
		// The gateway drains: its own state keeps the pod out now.
		for owner, l := range r.leaving {
			if !time.Now().Before(l.writeAt) {
				delete(r.leaving, owner)
			}
		}
	}
	r.publish()
	r.mu.Unlock()
	if err == nil {
		r.seen(obs)
	}
}

// starved reports whether this process cannot open a descriptor now.
func (r *readiness) starved() bool {
	fd, err := unix.Open(r.home, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err == nil {
		unix.Close(fd)
		return false
	}
	return errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) || errors.Is(err, unix.ENOMEM)
}

// leaveTraffic reports the pod not ready for the drain owner from now on,
// and says when its marker may be written: settle after it first asked.
func (r *readiness) leaveTraffic(owner, drain string, settle time.Duration) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.leaving[owner]
	if !ok {
		now := time.Now()
		l = leave{drain: drain, writeAt: now.Add(settle), until: now.Add(settle + holdAfterWrite)}
		r.leaving[owner] = l
		r.publish()
	}
	return l.writeAt
}

// stopLeaving ends the hold of the drain owner: its marker was removed.
func (r *readiness) stopLeaving(owner string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.leaving, owner)
	r.publish()
}

// publish sets the answer from the gateway's state and the holds, ending
// the holds that are over. r.mu is held.
func (r *readiness) publish() {
	ready, why := r.gatewayReady, r.gatewayWhy
	for owner, l := range r.leaving {
		if time.Now().After(l.until) {
			delete(r.leaving, owner)
			continue
		}
		ready, why = false, "GatewayDrain "+l.drain+" takes the pod out of traffic before its marker"
	}
	if ready != r.ready || r.why == notReadYet && why != notReadYet { // a change, or the first answer
		r.changed = time.Now()
		r.log.Info("readiness", "ready", ready, "why", why)
	}
	r.ready, r.why = ready, why
}

// serve answers a probe, saying since when the answer has held: a person
// sees how long a gateway has been out, and the scale simulation measures
// how soon the answer followed the gateway (SinceOf).
func (r *readiness) serve(w http.ResponseWriter, _ *http.Request) {
	r.mu.Lock()
	r.publish() // a hold may have ended since
	ready, why, changed := r.ready, r.why, r.changed
	r.mu.Unlock()
	since := sinceMark + changed.UTC().Format(time.RFC3339Nano)
	if !ready {
		http.Error(w, why+since, http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "the gateway accepts turns"+since)
}

const sinceMark = "; since "

// SinceOf reads from a /readyz answer since when it has held.
func SinceOf(body string) (time.Time, error) {
	i := strings.LastIndex(body, sinceMark)
	if i < 0 {
		return time.Time{}, fmt.Errorf("no %q in %q", sinceMark, marker.Shorten(body, 200))
	}
	return time.Parse(time.RFC3339Nano, strings.TrimSpace(body[i+len(sinceMark):]))
}
