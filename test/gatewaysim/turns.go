package gatewaysim

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// TurnPath is where a simulated gateway serves turns over HTTP.
const TurnPath = "/turn"

// Turn starts a turn on the gateway at home, as a user's request does:
// refused while the gateway drains (upstream refuses new turns then),
// otherwise in flight, counted in active_agents, until the time it returns.
func (s *Sim) Turn(home string, now time.Time) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.gateway(home)
	if g.state != marker.StateRunning || g.stopped {
		return time.Time{}, false
	}
	g.start(now, s.opts.TurnDuration, 1, true)
	return now.Add(s.opts.TurnDuration), true
}

// TurnHandler serves the gateway at home's turns: a POST to TurnPath
// answers 200 when the turn is over, or 503 at once when the gateway
// refuses it.
func (s *Sim) TurnHandler(home string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+TurnPath, func(w http.ResponseWriter, r *http.Request) {
		done, ok := s.Turn(home, time.Now())
		if !ok {
			http.Error(w, "draining: new turns are refused", http.StatusServiceUnavailable)
			return
		}
		select {
		case <-time.After(time.Until(done)):
			w.WriteHeader(http.StatusOK)
		case <-r.Context().Done():
		}
	})
	return mux
}

// ServeTurns serves the turns of the gateway at home (TurnHandler) on
// addr until ctx ends. addr must be a loopback address: nothing may listen
// outside loopback.
func (s *Sim) ServeTurns(ctx context.Context, home, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s is not a loopback address: turns are served on loopback only", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: s.TurnHandler(home), ReadHeaderTimeout: 5 * time.Second}
	go func() { <-ctx.Done(); srv.Close() }()
	go func() { _ = srv.Serve(l) }()
	return nil
}
