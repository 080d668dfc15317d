package gatewaydrain

import (
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
)

// The log answers "why is gw-3 still Draining": each change of a target's
// state at level 0, and at level 1 each look that leaves it waiting, with
// what it waits for and until when.
func TestTheLogSaysWhyATargetWaits(t *testing.T) {
	for _, verbosity := range []int{0, 1} {
		var lines []string
		logger := funcr.New(func(prefix, args string) { lines = append(lines, args) }, funcr.Options{Verbosity: verbosity})
		next := time.Date(2026, 12, 7, 8, 0, 2, 0, time.UTC)
		draining := drainv1.Target{PodName: "gw-3", State: drainv1.TargetDraining, BlockingGateway: "alice", Message: "profile alice: gateway draining: 2 active agents"}
		logTarget(logger, drainv1.TargetPending, draining, next, false)
		logTarget(logger, drainv1.TargetDraining, draining, next, false)
		logTarget(logger, drainv1.TargetDrained, drainv1.Target{PodName: "gw-4", State: drainv1.TargetDrained}, next, false)
		want := []string{`"msg"="target" "pod"="gw-3" "state"="Draining" "message"="profile alice: gateway draining: 2 active agents" "blockingGateway"="alice" "was"="Pending"`}
		if verbosity == 1 {
			want = append(want, `"msg"="target waits" "pod"="gw-3" "state"="Draining" "message"="profile alice: gateway draining: 2 active agents" "blockingGateway"="alice" "next"="2026-12-07 08:00:02 +0000 UTC"`)
		}
		if len(lines) != len(want) {
			t.Fatalf("verbosity %d: %d lines, want %d:\n%s", verbosity, len(lines), len(want), strings.Join(lines, "\n"))
		}
		for i := range want {
			if !strings.Contains(lines[i], want[i]) {
				t.Errorf("verbosity %d, line %d: %s\nwant it to hold %s", verbosity, i, lines[i], want[i])
			}
		}
	}
}
