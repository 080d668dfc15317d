package gatewaydrain

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/internal/retry"
)

// step moves one target toward what the drain wants of it and returns the
// target as observed afterwards, plus when it wants to be looked at again
// (zero: only when its pod changes). At most a couple of round trips to the
// container; none when nothing is due.
func (r *Reconciler) step(ctx context.Context, d *view, t drainv1.Target, pod *corev1.Pod) (drainv1.Target, time.Time) {
	now := d.now
	switch t.State {
	case drainv1.TargetWaiting:
		return r.stepWaiting(ctx, d, t, pod)
	case drainv1.TargetReplacing, drainv1.TargetReplaced:
		return r.stepReplacing(ctx, d, t, pod)
	}
	if why := drain.InstantiationOver(&t, pod); why != "" {
		if d.following() && drain.ComingBack(pod) {
			// Not Drained yet: its next instantiation will be drained too
			// (followSelector), and until it runs the drain is not done.
			t.State, t.Message = drainv1.TargetPending, why+"; waiting for its new instantiation to run, to drain it too"
			return t, time.Time{} // its pod's events wake the drain
		}
		return r.stepRestarted(ctx, d, t, pod, why, now)
	}
	if t.Unreachable != "" {
		if d.release != "" {
			t.State, t.Message = drainv1.TargetReleased, "drain "+d.release+"; nothing was written ("+t.Unreachable+")"
		}
		return t, time.Time{}
	}
	if pod != nil && gatewaypod.ContainerStatus(pod, t.Container) == nil {
		return r.failed(t, now, fmt.Sprintf("pod has no container %q", t.Container))
	}
	if d.release != "" {
		return r.stepRelease(ctx, d, t, now)
	}
	attempted, refusedBefore := t.LastAttemptTime, strings.HasPrefix(t.Message, refusedWords)
	t, next := r.stepDrain(ctx, d, t, pod, now)
	if d.replaces && t.State == drainv1.TargetDrained && t.LastAttemptTime != attempted && pod != nil {
		// Drained on a read just made: replaced now. A refused eviction
		// is tried again on the next read (IdlePollInterval), which also
		// keeps the marker in place meanwhile.
		return r.evict(ctx, d, t, pod, refusedBefore)
	}
	return t, next
}

// stepDrain takes a gated target out of traffic first, then keeps our
// marker in place and reads how the gateway is doing.
func (r *Reconciler) stepDrain(ctx context.Context, d *view, t drainv1.Target, pod *corev1.Pod, now time.Time) (drainv1.Target, time.Time) {
	t, next, out := r.leaveTraffic(ctx, d, t, pod, now)
	if !out {
		return t, next
	}
	if t.State == drainv1.TargetMarkerRemoved && !askedAgain(d.gwd, t) {
		return t, time.Time{} // a person's cancel stands: nothing to do until asked again
	}
	if t.State == drainv1.TargetMarkerRemoved {
		t.MarkedProfiles = "" // asked again: every gateway's home is written anew
	}
	if next, ok := r.due(d, t, now); !ok {
		return t, next
	}
	container := d.container(t)
	var obs calls.Observation
	var err error
	if t.MarkerWrittenAt != nil && t.State != drainv1.TargetMarkerRemoved {
		// Ours was written to this instantiation: read before writing, so
		// that a marker someone removed is never put back.
		obs, err = r.Transport.Read(ctx, container, t.HermesHome)
		refreshDue := now.Sub(t.MarkerWrittenAt.Time) >= r.RefreshInterval
		if err == nil {
			if home := removedFrom(t, obs); home != "" {
				return r.markerRemoved(d, t, obs, home, now)
			}
			if d.ours(t, obs) && len(d.unmarked(t, obs)) == 0 && !refreshDue {
				return r.awaitDrained(d, t, obs, now)
			}
		}
	}
	if err == nil {
		req := d.request(t, nil)
		req.Profiles = d.profilesToMark(t, obs) // none known before the first call
		// A pod without the gate leaves traffic through its agent's probe,
		// where it has one (pods/exec cannot, and writes at once), if a
		// Service sends it any.
		req.LeaveTraffic = t.MarkerWrittenAt == nil && drain.LeavesTrafficFirst(d.gwd) && pod != nil && !gatewaypod.Gated(pod) && r.behindAService(ctx, pod)
		obs, err = r.Transport.Project(ctx, container, t.HermesHome, req)
	}
	if err == nil && obs.Outcome == calls.LeavingTraffic {
		t = readBack(t, obs, now)
		t.State, t.Failures = drainv1.TargetLeavingTraffic, 0
		t.Message = "out of traffic before the marker: its agent reports the pod not ready, and writes the marker once its settle time has passed"
		return t, now.Add(r.PollInterval)
	}
	if err == nil && obs.Outcome == calls.Foreign && !d.ours(t, obs) {
		found := marker.Parse(obs.Marker.Data)
		if !gatewayIgnores(found, obs) {
			return r.conflict(ctx, d, t, obs, calls.DefaultProfile, now)
		}
		// The gateway ignores this marker: it is dead weight from an earlier
		// instantiation, and ours must take its place.
		obs, err = r.Transport.Project(ctx, container, t.HermesHome, d.request(t, obs.Marker.Data))
		if err == nil && obs.Outcome == calls.Replaced {
			r.event(d.gwd, corev1.EventTypeNormal, "StaleMarkerReplaced",
				"%s: replaced a stale marker of principal %q (epoch %q)", t.PodName, marker.Shorten(found.Principal(), 80), marker.Shorten(found.EpochValue(), 80))
		}
	}
	if err == nil && d.ours(t, obs) {
		if more := d.unmarked(t, obs); len(more) > 0 {
			// The call found profile gateways none knew of before it.
			req := d.request(t, nil)
			req.Profiles = more
			obs, err = r.Transport.Project(ctx, container, t.HermesHome, req)
		}
	}
	if err != nil {
		return r.failed(t, now, "projecting the marker: "+err.Error())
	}
	toMark := d.profilesToMark(t, obs)
	if why := profileFailure(obs, toMark); why != "" {
		return r.failed(t, now, "projecting the marker: "+why)
	}
	// Only the marker read back counts: one another writer put in place
	// between the program's read and its write stands, and is not ours.
	if !d.ours(t, obs) {
		return r.conflict(ctx, d, t, obs, calls.DefaultProfile, now)
	}
	t = d.markProfiles(t, obs, toMark)
	if more := d.unmarked(t, obs); len(more) > 0 {
		return r.conflict(ctx, d, t, obs, more[0], now)
	}
	written := metav1.NewTime(now)
	t.MarkerWrittenAt = &written
	return r.awaitDrained(d, t, obs, now)
}

// markerRemoved records that our marker is gone from the instantiation it
// was written to while the drain stands: upstream's dashboard cancels a
// drain by deleting the marker, and nothing upstream ever puts one back.
// It is a person's decision, left alone until the drain is asked again.
func (r *Reconciler) markerRemoved(d *view, t drainv1.Target, obs calls.Observation, home string, now time.Time) (drainv1.Target, time.Time) {
	t = readBack(t, obs, now)
	removed := metav1.NewTime(now)
	t.State, t.MarkerRemovedAt, t.Failures = drainv1.TargetMarkerRemoved, &removed, 0
	where := ""
	if home != calls.DefaultProfile {
		where = " from profile " + home + "'s home"
	}
	t.BlockingGateway = home
	t.Message = fmt.Sprintf("our marker was removed%s while the gateway ran (a person's cancel): not written again; annotate the GatewayDrain %s=<now, RFC 3339> to ask again", where, drainv1.AskAgainAnnotation)
	r.event(d.gwd, corev1.EventTypeWarning, "MarkerRemoved", "%s: %s", t.PodName, t.Message)
	return t, time.Time{}
}

// askedAgain reports whether the drain was asked again (AskAgainAnnotation)
// after t's marker was found removed.
func askedAgain(gwd *drainv1.GatewayDrain, t drainv1.Target) bool {
	at, err := time.Parse(time.RFC3339, gwd.Annotations[drainv1.AskAgainAnnotation])
	return err == nil && t.MarkerRemovedAt != nil && at.After(t.MarkerRemovedAt.Time)
}

// gatewayIgnores reports whether the gateway, as this very read shows it,
// ignores a foreign marker, which may then be replaced by ours: its epoch is
// definitely another instantiation's, or the gateway reports that it
// accepts turns in a state it wrote well after the marker was requested
// (or while a marker that is not UTF-8, which changes nothing, is in place).
// Age alone never counts: an older gateway honours a marker of any age, and
// the age would be judged on the operator's clock. The two times compared
// here are both the gateway host's (the dashboard and the in-container CLI
// write requested_at there, as upstream's own expiry assumes), and the
// margin covers the gateway's once-a-second look: a marker written a moment
// ago is not yet noticed, not ignored. Another GatewayDrain's marker is
// replaced only on an epoch mismatch: that drain removes its own markers.
func gatewayIgnores(found marker.Found, obs calls.Observation) bool {
	if found.EpochMismatch(obs.Epoch) {
		return true
	}
	if _, operators := found.Origin(); operators {
		return false
	}
	st, problem := obs.GatewayStateNow()
	if problem != nil || !st.AcceptsTurns() {
		return false
	}
	if found.Undecodable() {
		return true // it changes no gateway's state, and this one serves
	}
	requested, ok := found.RequestedAt()
	updated, err := marker.ParseTime(st.UpdatedAt)
	return ok && err == nil && updated.After(requested.Add(noticeMargin))
}

// noticeMargin is how long after a marker is requested the gateway has
// surely looked at it (it looks once a second).
const noticeMargin = 3 * time.Second

// conflict records that someone else's marker holds the target. If that is
// the marker of a GatewayDrain that no longer exists, it is removed, and
// the next poll puts ours in its place.
func (r *Reconciler) conflict(ctx context.Context, d *view, t drainv1.Target, obs calls.Observation, home string, now time.Time) (drainv1.Target, time.Time) {
	if r.Orphans != nil && home == calls.DefaultProfile {
		if err := r.Orphans.Check(ctx, d.gwd, d.container(t), t.HermesHome, obs); err != nil {
			log.FromContext(ctx).Error(err, "checking for an orphaned marker", "pod", t.PodName)
		}
	}
	t.State, t.Message, t.BlockingGateway = drainv1.TargetConflict, foreignMessage(obs.Marker), home
	if p, ok := obs.Profile(home); ok {
		t.Message = "profile " + home + ": " + foreignMessage(p.Marker)
	}
	t = readBack(t, obs, now)
	t.Failures++ // each look that finds it held sets the next one further off
	return t, r.nextAttempt(d, t)
}

// stepRelease removes our marker from a target whose drain was withdrawn.
func (r *Reconciler) stepRelease(ctx context.Context, d *view, t drainv1.Target, now time.Time) (drainv1.Target, time.Time) {
	if t.State == drainv1.TargetReleased {
		return t, time.Time{}
	}
	if next, ok := r.due(d, t, now); !ok {
		return t, next
	}
	obs, err := r.Transport.Clear(ctx, d.container(t), t.HermesHome, string(d.gwd.UID))
	if err == nil {
		if why := profileFailure(obs, nil); why != "" {
			err = errors.New(why)
		}
	}
	if err != nil {
		return r.failed(t, now, "removing the marker: "+err.Error())
	}
	t = readBack(t, obs, now)
	removed := metav1.NewTime(now)
	t.State, t.MarkerRemovedAt, t.Failures = drainv1.TargetReleased, &removed, 0
	t.Message = "drain " + d.release + "; marker removed"
	if obs.Outcome == calls.Foreign {
		t.Message = fmt.Sprintf("drain %s; a marker of principal %q remains, not ours: left alone", d.release, marker.Parse(obs.Marker.Data).Principal())
	}
	return t, time.Time{}
}

// stepRestarted handles a target whose instantiation is over: its drain is
// over too. If a pod of the same name now runs a new instantiation, the
// marker we wrote for the old one may have survived on a durable
// HERMES_HOME; it is removed so that it cannot hold the new gateway (with
// shareProcessNamespace the epoch would not make the gateway ignore it).
func (r *Reconciler) stepRestarted(ctx context.Context, d *view, t drainv1.Target, pod *corev1.Pod, why string, now time.Time) (drainv1.Target, time.Time) {
	if t.State != drainv1.TargetRestarted {
		r.event(d.gwd, corev1.EventTypeNormal, "TargetRestarted", "%s: %s; its drain is over", t.PodName, why)
		t.State, t.Failures, t.LastAttemptTime = drainv1.TargetRestarted, 0, nil
		t.GatewayState, t.ActiveAgents = "", nil
	}
	if t.MarkerRemovedAt != nil || t.Unreachable != "" { // removed, or never written
		return t, time.Time{}
	}
	if !gatewaypod.Running(pod, t.Container) {
		t.Message = why + "; a marker left on its volume is ignored by the next instantiation's epoch, and removed when a pod of this name runs again"
		return t, time.Time{}
	}
	if next, ok := r.due(d, t, now); !ok {
		return t, next
	}
	attempt := metav1.NewTime(now)
	t.LastAttemptTime = &attempt
	obs, err := r.Transport.Clear(ctx, d.container(t), t.HermesHome, string(d.gwd.UID))
	if err == nil {
		if why := profileFailure(obs, nil); why != "" {
			err = errors.New(why)
		}
	}
	if err != nil {
		t.Failures++
		t.Message = why + "; removing our stale marker from the new instantiation failed: " + err.Error()
		return t, r.retryAt(t)
	}
	removed := metav1.NewTime(now)
	t.MarkerRemovedAt, t.Failures, t.Message = &removed, 0, why+"; not drained"
	if obs.Outcome == calls.Cleared {
		t.Message = why + "; removed our stale marker from the new instantiation, which is not drained"
	}
	return t, time.Time{}
}

// awaitDrained records a target whose markers are ours and in place, and its
// gateways' states as read: Drained once every one is drained.
func (r *Reconciler) awaitDrained(d *view, t drainv1.Target, obs calls.Observation, now time.Time) (drainv1.Target, time.Time) {
	t = readBack(t, obs, now)
	t.Failures = 0
	v := d.judge(t, obs)
	t.Gateways, t.ActiveAgents, t.GatewayState = v.gateways, &v.agents, v.state
	if v.blocking != nil {
		t.DrainSeenAt, t.DrainSeenBy, t.BlockingGateway, t.PartialWorkCounting = nil, "", v.blocking.Profile, false
		t.State, t.Message = drainv1.TargetDraining, v.why
		return t, now.Add(r.PollInterval)
	}
	was := t
	t.BlockingGateway, t.PartialWorkCounting = "", v.partial
	t, next := r.confirmDrained(t, v, now)
	if t.State == drainv1.TargetDrained && t.PartialWorkCounting && (was.State != drainv1.TargetDrained || !was.PartialWorkCounting) {
		r.event(d.gwd, corev1.EventTypeWarning, "PartialWorkCounting", "%s: drained on a count that may leave out API-server and cron work: its gateway's record does not show that it counts them (upstream before v0.20.6)", t.PodName)
	}
	return t, next
}

// confirmDrained counts a target whose gateways are all drained as Drained
// on a second such read, at least ConfirmAfter after the first, of records
// by the same processes. One read is not enough: internal events pass the
// gateway's accept gate and start work on a drained gateway, draining is
// also written by a restart or a scale-to-zero, and a gateway that was not
// running may be starting. (That the record be written after our marker is
// not asked: a gateway older than upstream's PR #63891, already draining
// when our marker came, never writes it again, and would hold the drain
// until its deadline.)
func (r *Reconciler) confirmDrained(t drainv1.Target, v gatewaysVerdict, now time.Time) (drainv1.Target, time.Time) {
	if t.DrainSeenAt == nil || t.DrainSeenBy != v.writers {
		seen := metav1.NewTime(now)
		t.DrainSeenAt, t.DrainSeenBy = &seen, v.writers
	}
	if confirmAt := t.DrainSeenAt.Add(r.ConfirmAfter); now.Before(confirmAt) {
		t.State, t.Message = drainv1.TargetDraining, v.drainedWords()+": confirming on a second read"
		return t, confirmAt
	}
	t.State, t.Message = drainv1.TargetDrained, v.drainedWords()+", on two reads by the same processes"
	return t, now.Add(r.IdlePollInterval)
}

// readBack copies into the target what every call reads back: when it was
// made, the epoch, the home, and the root gateway's state.
func readBack(t drainv1.Target, obs calls.Observation, now time.Time) drainv1.Target {
	attempt := metav1.NewTime(now)
	t.LastAttemptTime, t.Epoch = &attempt, marker.CheckEpoch(obs.Epoch)
	if t.HermesHome == "" && marker.ValidateHome(obs.Home) == nil {
		t.HermesHome = obs.Home // the container's own, read once
	}
	t.GatewayState, t.ActiveAgents = "", nil
	st, problem := obs.GatewayStateNow()
	if problem != nil {
		return t
	}
	agents := st.ActiveAgents
	t.GatewayState, t.ActiveAgents, t.StateUpdatedAt = st.State, &agents, st.UpdatedAt
	return t
}

func (r *Reconciler) failed(t drainv1.Target, now time.Time, msg string) (drainv1.Target, time.Time) {
	attempt := metav1.NewTime(now)
	t.State, t.Message, t.LastAttemptTime = drainv1.TargetFailed, msg, &attempt
	t.Failures++
	return t, r.retryAt(t)
}

// due reports whether the target may be talked to now: its next attempt has
// come and this reconcile's batch is still open. If not, it says when to
// look again: now, when only the batch stopped it, so that the next
// reconcile carries on after this one has written its progress.
func (r *Reconciler) due(d *view, t drainv1.Target, now time.Time) (time.Time, bool) {
	if next := r.nextAttempt(d, t); now.Before(next) {
		return next, false
	}
	if time.Now().After(d.callsUntil) {
		d.deferred.Add(1)
		return now, false
	}
	return time.Time{}, true
}

// conflictPollMax bounds how long a target another's marker holds waits
// between looks.
const conflictPollMax = 30 * time.Second

// nextAttempt is when a target may be talked to again: right away the first
// time, after the poll interval while draining, with exponential backoff
// after failures and while another's marker holds it. A withdrawn drain releases its targets at once: the poll
// schedule of the drain it was no longer holds them back.
func (r *Reconciler) nextAttempt(d *view, t drainv1.Target) time.Time {
	switch {
	case t.LastAttemptTime == nil:
		return time.Time{}
	case t.State == drainv1.TargetConflict && d.release == "":
		// Another's marker holds it, for as long as that drain or person
		// wants: looked at less and less often (up to conflictPollMax), so
		// that drains that can only wait, however many, cost little.
		return t.LastAttemptTime.Add(retry.Delay(r.PollInterval, conflictPollMax, max(t.Failures, 1)))
	case t.Failures > 0 && t.State != drainv1.TargetConflict:
		return r.retryAt(t)
	case t.State == drainv1.TargetWaiting:
		return t.LastAttemptTime.Add(r.IdlePollInterval)
	case t.State == drainv1.TargetReplacing:
		return t.LastAttemptTime.Add(r.PollInterval)
	case d.release != "":
		return time.Time{}
	case t.State == drainv1.TargetDrained:
		return t.LastAttemptTime.Add(r.IdlePollInterval)
	case t.State == drainv1.TargetDraining || t.State == drainv1.TargetLeavingTraffic:
		return t.LastAttemptTime.Add(r.PollInterval)
	}
	return time.Time{}
}

// retryAt is when a target whose last call failed may be tried again:
// exponential backoff from RetryBase up to RetryMax.
func (r *Reconciler) retryAt(t drainv1.Target) time.Time {
	return t.LastAttemptTime.Add(retry.Delay(r.RetryBase, r.RetryMax, t.Failures))
}

func foreignMessage(f calls.File) string {
	if f.State != calls.FilePresent {
		// Upstream's read fails on it, and a failed read is no drain.
		return fmt.Sprintf("the marker is %s (the gateway reads no drain in it: it serves); not ours: left alone", f.State)
	}
	found := marker.Parse(f.Data)
	if found.Undecodable() {
		return "a marker that is not UTF-8 is in place (the gateway keeps the state it had); not ours: left alone"
	}
	if found.Corrupt() {
		return "an unreadable marker is in place (the gateway treats it as a drain request); not ours: left alone"
	}
	if o, ok := found.Origin(); ok {
		return fmt.Sprintf("held by GatewayDrain %s (principal %q); not ours: left alone", o.GatewayDrain, found.Principal())
	}
	return fmt.Sprintf("held by a marker of principal %q (epoch %q); not ours: left alone", found.Principal(), found.EpochValue())
}
