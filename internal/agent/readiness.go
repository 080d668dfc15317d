package agent

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"

	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/internal/transport"
)

// recheckEvery is how often the home is read even when no file changed: a
// gateway that dies leaves its state file as it was, and only /proc shows
// that its writer is gone.
const recheckEvery = time.Second

// readiness knows whether the gateway accepts turns, from
// gateway_state.json, watched (inotify) rather than read per probe, so the
// kubelet's probe costs nothing and follows a change within milliseconds.
type readiness struct {
	calls transport.InProcess
	home  string
	log   logr.Logger
	// seen is told of every read (the guard adopts markers from it).
	seen func(transport.Observation)

	mu    sync.Mutex
	ready bool
	why   string
	// changed is when ready last changed.
	changed time.Time
}

func newReadiness(calls transport.InProcess, home string, log logr.Logger, seen func(transport.Observation)) *readiness {
	return &readiness{calls: calls, home: home, log: log, seen: seen, why: "not read yet"}
}

// run watches the home until ctx ends.
func (r *readiness) run(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	if err := w.Add(r.home); err != nil {
		return fmt.Errorf("watching %s: %w", r.home, err)
	}
	tick := time.NewTicker(recheckEvery)
	defer tick.Stop()
	r.refresh(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-w.Events:
			if name := ev.Name[len(r.home):]; name == "/"+marker.StateFilename || name == "/"+marker.Filename {
				r.refresh(ctx)
			}
		case err := <-w.Errors:
			r.log.Error(err, "watching HERMES_HOME; reading it every second meanwhile")
		case <-tick.C:
			r.refresh(ctx)
		}
	}
}

// refresh reads the home and records whether the gateway accepts turns.
func (r *readiness) refresh(ctx context.Context) {
	obs, err := r.calls.Read(ctx, transport.Pod{}, r.home)
	ready, why := false, ""
	if err != nil {
		why = err.Error()
	} else if st, problem := obs.GatewayStateNow(); problem != nil {
		why = problem.Message
	} else if ready = st.AcceptsTurns(); !ready {
		why = fmt.Sprintf("the gateway is %s (%d turns in flight)", st.State, st.ActiveAgents)
	}
	r.mu.Lock()
	if ready != r.ready || r.changed.IsZero() {
		r.changed = time.Now()
		r.log.Info("readiness", "ready", ready, "why", why)
	}
	r.ready, r.why = ready, why
	r.mu.Unlock()
	if err == nil {
		r.seen(obs)
	}
}

func (r *readiness) serve(w http.ResponseWriter, _ *http.Request) {
	r.mu.Lock()
	ready, why := r.ready, r.why
	r.mu.Unlock()
	if !ready {
		http.Error(w, why, http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "the gateway accepts turns")
}
