package gatewaydrain

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
)

// When each target may be talked to again: the poll schedule while the
// drain stands, at once when it is withdrawn (a cancel must not wait out a
// drained target's idle poll), and the backoff after failures either way.
func TestNextAttempt(t *testing.T) {
	r := &Reconciler{Options: DefaultOptions()}
	last := metav1.NewTime(time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC))
	standing, withdrawn := &drain{}, &drain{withdrawn: "cancelled"}
	for _, tc := range []struct {
		name  string
		d     *drain
		t     drainv1.Target
		after time.Duration // from last; -1: at once
	}{
		{"never tried", standing, drainv1.Target{State: drainv1.TargetPending}, -1},
		{"draining", standing, drainv1.Target{State: drainv1.TargetDraining, LastAttemptTime: &last}, r.PollInterval},
		{"conflict", standing, drainv1.Target{State: drainv1.TargetConflict, LastAttemptTime: &last}, r.PollInterval},
		{"drained", standing, drainv1.Target{State: drainv1.TargetDrained, LastAttemptTime: &last}, r.IdlePollInterval},
		{"third failure", standing, drainv1.Target{State: drainv1.TargetFailed, Failures: 3, LastAttemptTime: &last}, 4 * r.RetryBase},
		{"many failures", standing, drainv1.Target{State: drainv1.TargetFailed, Failures: 40, LastAttemptTime: &last}, r.RetryMax},
		{"drained, then cancelled", withdrawn, drainv1.Target{State: drainv1.TargetDrained, LastAttemptTime: &last}, -1},
		{"draining, then cancelled", withdrawn, drainv1.Target{State: drainv1.TargetDraining, LastAttemptTime: &last}, -1},
		{"failing, then cancelled", withdrawn, drainv1.Target{State: drainv1.TargetFailed, Failures: 2, LastAttemptTime: &last}, 2 * r.RetryBase},
	} {
		want := time.Time{}
		if tc.after >= 0 {
			want = last.Add(tc.after)
		}
		if got := r.nextAttempt(tc.d, tc.t); !got.Equal(want) {
			t.Errorf("%s: next attempt %v, want %v", tc.name, got, want)
		}
	}
}
