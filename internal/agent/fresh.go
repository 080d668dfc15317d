package agent

import (
	"fmt"
	"sync"
	"time"
)

// freshness refuses a request sent again: each carries a nonce and its
// sender's time; one older or newer than the window, or whose nonce was
// seen within it, is refused. It stops the verbatim replay of a request
// captured on its way (from a log or a proxy, say); a stolen token itself
// stays usable until it expires, as any bearer token does, which is why the
// operator's tokens live minutes (docs/agent.md).
type freshness struct {
	window time.Duration
	now    func() time.Time

	mu   sync.Mutex
	seen map[string]time.Time
	// order is the nonces in the order seen, to forget them in that order.
	order []string
}

func newFreshness(window time.Duration, now func() time.Time) *freshness {
	return &freshness{window: window, now: now, seen: map[string]time.Time{}}
}

func (f *freshness) check(nonce, sent string) error {
	if len(nonce) < 16 || len(nonce) > 128 {
		return fmt.Errorf("a request needs a nonce of 16 to 128 characters")
	}
	at, err := time.Parse(time.RFC3339Nano, sent)
	if err != nil {
		return fmt.Errorf("a request needs its time (RFC 3339): %v", err)
	}
	now := f.now()
	if d := now.Sub(at); d > f.window || d < -f.window {
		return fmt.Errorf("the request's time %s is more than %s from the agent's %s: replayed, or a clock is wrong", sent, f.window, now.UTC().Format(time.RFC3339))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.order) > 0 && now.Sub(f.seen[f.order[0]]) > 2*f.window {
		delete(f.seen, f.order[0])
		f.order = f.order[1:]
	}
	if _, dup := f.seen[nonce]; dup {
		return fmt.Errorf("the request was seen before: replayed")
	}
	f.seen[nonce] = now
	f.order = append(f.order, nonce)
	return nil
}
