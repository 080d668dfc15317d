package gatewaysim

import (
	"context"
	"path/filepath"
	"time"
)

// Run ticks every interval until ctx ends. A failing tick is reported to
// onError (if any) and the simulator carries on, as a gateway would.
func (s *Sim) Run(ctx context.Context, interval time.Duration, onError func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.Tick(time.Now()); err != nil && onError != nil {
			onError(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Glob serves every directory matching pattern.
func Glob(pattern string) func() ([]string, error) {
	return func() ([]string, error) { return filepath.Glob(pattern) }
}
