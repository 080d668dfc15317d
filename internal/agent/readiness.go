package agent

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"

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

	mu    sync.Mutex
	ready bool
	why   string
	// changed is when ready last changed.
	changed time.Time
}

func newReadiness(local calls.InProcess, home string, log logr.Logger, seen func(calls.Observation)) *readiness {
	return &readiness{local: local, home: home, log: log, seen: seen, why: notReadYet, changed: time.Now(), newWatcher: fsnotify.NewWatcher}
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

// refresh reads the home and records whether the gateway accepts turns.
func (r *readiness) refresh(ctx context.Context) {
	obs, err := r.local.Read(ctx, calls.Pod{}, r.home)
	ready, why := false, ""
	if err != nil {
		why = err.Error()
	} else if st, problem := obs.GatewayStateNow(); problem != nil {
		why = problem.Message
	} else if ready = st.AcceptsTurns(); !ready {
		why = fmt.Sprintf("the gateway is %s (%d turns in flight)", st.State, st.ActiveAgents)
	}
	r.mu.Lock()
	if ready != r.ready || r.why == notReadYet {
		r.changed = time.Now()
		r.log.Info("readiness", "ready", ready, "why", why)
	}
	r.ready, r.why = ready, why
	r.mu.Unlock()
	if err == nil {
		r.seen(obs)
	}
}

// serve answers a probe, saying since when the answer has held: a person
// sees how long a gateway has been out, and the scale simulation measures
// how soon the answer followed the gateway (SinceOf).
func (r *readiness) serve(w http.ResponseWriter, _ *http.Request) {
	r.mu.Lock()
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
