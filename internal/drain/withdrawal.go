package drain

import (
	"time"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
)

// Why a drain was withdrawn; "" while it stands.
const (
	WithdrawnCancelled = "cancelled"
	WithdrawnDeadline  = "deadline exceeded"
	WithdrawnDeleted   = "deleted"
)

// Withdrawal says why the drain no longer stands at now, or "" while it does.
func Withdrawal(gwd *drainv1.GatewayDrain, now time.Time) string {
	switch {
	case !gwd.DeletionTimestamp.IsZero():
		return WithdrawnDeleted
	case gwd.Spec.Action == drainv1.ActionCancel:
		return WithdrawnCancelled
	case deadlineExceeded(gwd, now):
		return WithdrawnDeadline
	}
	return ""
}

// Stands reports whether the drain still asks its targets to drain at now:
// not deleted, not cancelled, its deadline not passed.
func Stands(gwd *drainv1.GatewayDrain, now time.Time) bool { return Withdrawal(gwd, now) == "" }

// Timeout is spec.timeout or its default.
func Timeout(gwd *drainv1.GatewayDrain) time.Duration {
	if gwd.Spec.Timeout != nil {
		return gwd.Spec.Timeout.Duration
	}
	return 2 * time.Hour
}

// deadlineExceeded is true once the deadline of a drain with targets has
// passed. It stays true: a timeout raised afterwards does not drain again
// (create a new GatewayDrain). A drain without targets stays NoTargets.
func deadlineExceeded(gwd *drainv1.GatewayDrain, now time.Time) bool {
	return gwd.Status.DeadlineExceeded || gwd.Status.StartedAt != nil && gwd.Status.TargetSlices > 0 && !now.Before(gwd.Status.StartedAt.Add(Timeout(gwd)))
}
