package gatewaydrain

import (
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// view is one reconcile's view of a GatewayDrain: what it wants of its
// targets, with its defaults resolved.
type view struct {
	gwd *drainv1.GatewayDrain
	// targets are the drain's targets, in the order they joined (its
	// TargetSlices hold them).
	targets []drainv1.Target
	// now is this reconcile's time, read once from the reconciler's Clock:
	// every decision and every time stamped on a target uses it. Only what
	// bounds this process's own work in real time (callsUntil, the cache's
	// catch-up) reads the machine's clock: a test clock that stands still
	// must not stall a batch.
	now time.Time
	// withdrawn says why the drain no longer stands, or "" while it does.
	withdrawn string
	// replaces: the drain replaces its targets in waves (spec.replace).
	replaces bool
	// release says why the targets taken in are let go: the drain was
	// withdrawn, or its wave halted; "" while they are held.
	release string
	// replacements are this reconcile's candidates for the pods that
	// replace evicted targets, and the pods already claimed by one.
	replacements replacements
	// callsUntil is when this reconcile stops starting calls, on the
	// machine's own clock. A large drain is worked through in batches, each
	// written to status, so that progress shows and survives a crash of the
	// manager. A batch is bounded in time, not in calls: every reconcile
	// reads and writes all of a drain's targets, so a batch of agents'
	// quick calls should be large (small batches spend the manager's time
	// reading and writing targets: docs/benchmarks.md), and one of slow
	// execs small enough to show progress every few seconds.
	callsUntil time.Time
	// deferred counts the targets due now that the closed batch left to the
	// next reconcile.
	deferred atomic.Int32
}

func newView(gwd *drainv1.GatewayDrain, targets []drainv1.Target, now time.Time, batch time.Duration) *view {
	d := &view{gwd: gwd, targets: targets, now: now, withdrawn: drain.Withdrawal(gwd, now), replaces: drain.Replaces(gwd), callsUntil: time.Now().Add(batch)}
	d.setRelease()
	return d
}

// setRelease says why the targets taken in are let go, if they are.
func (d *view) setRelease() {
	d.release = d.withdrawn
	if d.release == "" && d.replaces && drain.Halted(d.gwd) {
		d.release = "halted (a replacement did not serve)"
	}
}

// following reports whether the drain still follows its selector: it
// stands, has not been Drained yet, and does not replace its targets (a
// replacement matches the selector, and must not be drained).
func (d *view) following() bool {
	return d.withdrawn == "" && d.gwd.Status.DrainedAt == nil && !d.replaces
}

// replacements are the pods that may replace evicted targets, read once per
// reconcile, and those claimed by a target.
type replacements struct {
	once sync.Once
	err  error
	// byOwner are the running or starting pods the selector matches that
	// are not targets, by drain.OwnerOf.
	byOwner map[string][]*corev1.Pod
	mu      sync.Mutex
	claimed map[string]bool
}

// principal is spec.principal or gatewaydrain/<namespace>/<name>.
func (d *view) principal() string {
	if d.gwd.Spec.Principal != "" {
		return d.gwd.Spec.Principal
	}
	return "gatewaydrain/" + d.gwd.Namespace + "/" + d.gwd.Name
}

func (d *view) container(t drainv1.Target) calls.Pod {
	return calls.Pod{Namespace: d.gwd.Namespace, Name: t.PodName, Container: t.Container}
}

// origin identifies this drain and the target's instantiation in the marker.
func (d *view) origin(t drainv1.Target) marker.Origin {
	o := marker.Origin{
		GatewayDrainUID: string(d.gwd.UID),
		GatewayDrain:    d.gwd.Namespace + "/" + d.gwd.Name,
		Pod:             d.gwd.Namespace + "/" + t.PodName,
		PodUID:          string(t.PodUID),
		Container:       t.Container,
		RestartCount:    t.RestartCount,
		ContainerID:     t.ContainerID,
	}
	if t.StartedAt != nil {
		o.ContainerStartedAt = t.StartedAt.UTC().Format(time.RFC3339)
	}
	return o
}

func (d *view) request(t drainv1.Target, replaceable []byte) calls.ProjectRequest {
	return calls.ProjectRequest{
		Marker: marker.Request{
			Principal:            d.principal(),
			SuppressNotification: d.gwd.Spec.SuppressNotification,
			Origin:               d.origin(t),
		},
		Replaceable: replaceable,
	}
}

// ours reports whether the marker read back is the one this drain wrote for
// this instantiation, with its epoch. Its age is the gateway's to judge, on
// the gateway's clock, which stamped it: the refresh keeps it well inside
// upstream's hour.
func (d *view) ours(t drainv1.Target, obs calls.Observation) bool {
	return d.oursIn(t, obs.Epoch, obs.GatewayHome)
}

// oursIn reports whether the marker read back in one gateway home (the root
// or a profile's) is ours, as ours does.
func (d *view) oursIn(t drainv1.Target, epoch string, h calls.GatewayHome) bool {
	if h.Marker.State != calls.FilePresent {
		return false
	}
	found := marker.Parse(h.Marker.Data)
	o, ok := found.Origin()
	return ok && o == d.origin(t) && !found.EpochMismatch(epoch)
}
