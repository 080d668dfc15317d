package drain

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
)

// maxNamed bounds how many blocking targets a condition message names.
const maxNamed = 5

// Stall is a reason the drain cannot progress without a person.
type Stall struct{ Reason, Message string }

// ComputeStatus derives counts and conditions from the targets as observed.
// It acts on nothing.
func ComputeStatus(gwd *drainv1.GatewayDrain, targets []drainv1.Target, withdrawn string, now time.Time, stalled *Stall) {
	st := &gwd.Status
	st.ObservedGeneration = gwd.Generation
	st.DeadlineExceeded = st.DeadlineExceeded || withdrawn == WithdrawnDeadline
	st.Counts = drainv1.TargetCounts{Targets: int32(len(targets))}
	replaces := Replaces(gwd)
	st.Unavailable, st.MaxUnavailable = 0, 0
	for _, t := range targets {
		*CountOf(&st.Counts, t.State)++
		if t.AddedAt != nil {
			st.Counts.Added++
		}
		if t.PartialWorkCounting && t.State == drainv1.TargetDrained {
			st.Counts.PartialWorkCounting++
		}
		if replaces && Unavailable(t) {
			st.Unavailable++
		}
	}
	st.Progress = fmt.Sprintf("%d/%d", st.Counts.Drained, st.Counts.Targets)
	if replaces {
		st.MaxUnavailable = int32(MaxUnavailable(gwd, len(targets)))
		st.Progress = fmt.Sprintf("%d/%d", st.Counts.Replaced+st.Counts.Restarted, st.Counts.Targets)
	}

	var blocking []*drainv1.Target
	for i := range targets {
		if !Done(targets[i], withdrawn != "", replaces) {
			blocking = append(blocking, &targets[i])
		}
	}
	// Those at work are named before those still waiting their turn.
	slices.SortStableFunc(blocking, func(a, b *drainv1.Target) int {
		return cmp.Compare(boolInt(a.State == drainv1.TargetWaiting), boolInt(b.State == drainv1.TargetWaiting))
	})
	set := func(typ string, ok bool, reason, msg string) {
		s := metav1.ConditionFalse
		if ok {
			s = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: typ, Status: s, Reason: reason, Message: msg, ObservedGeneration: gwd.Generation,
		})
	}
	if stalled == nil && st.StartedAt != nil && len(targets) == 0 {
		// The snapshot is empty, for good: a pod that starts later is not drained.
		msg := "no running gateway pod matched the selector when the drain started: nothing to drain (check the selector; pods that start later are not drained)"
		if st.NotGateways > 0 {
			msg += fmt.Sprintf("; %d matching pods do not declare themselves gateways (label %s=true or the readiness gate %s)", st.NotGateways, drainv1.GatewayLabel, drainv1.ReadinessGate)
		}
		stalled = &Stall{Reason: drainv1.ReasonNoTargets, Message: msg}
	}
	busy := len(blocking) > 0
	waiting := waitingMessage(blocking, len(targets))
	if replaces && busy {
		waiting = waveMessage(st) + "; " + waiting
	}
	if stalled == nil && withdrawn == "" && Halted(gwd) {
		stalled = &Stall{Reason: drainv1.ReasonReplacementNotServing, Message: fmt.Sprintf("the wave halted at %s: %s; nothing more is evicted, and the drained targets not yet replaced are released; fix the pods' template, replace that pod (an OnDelete StatefulSet recreates it only once it is deleted), then annotate %s=<now, RFC 3339> to resume (%s)",
			st.HaltedAt.UTC().Format(time.RFC3339), st.HaltedBecause, drainv1.ResumeAnnotation, waiting)}
	}
	if stalled == nil && busy && withdrawn == "" && allMarkersRemoved(blocking) {
		// Only the people who removed those markers, or asking again, can
		// move the drain.
		stalled = &Stall{Reason: drainv1.ReasonMarkerRemoved, Message: fmt.Sprintf("a person removed the marker of every target still to drain (annotate %s=<now> to ask again): %s", drainv1.AskAgainAnnotation, waiting)}
	}

	switch {
	case stalled != nil && withdrawn == "":
		set(drainv1.ConditionDrained, false, stalled.Reason, stalled.Message)
		if replaces {
			set(drainv1.ConditionReplaced, false, stalled.Reason, stalled.Message)
		}
		set(drainv1.ConditionReady, false, stalled.Reason, stalled.Message)
		set(drainv1.ConditionStalled, true, stalled.Reason, stalled.Message)
		set(drainv1.ConditionReconciling, false, stalled.Reason, stalled.Message)
		return
	case withdrawn == "" && replaces:
		// A drain-and-replace never holds its gateways drained all at
		// once: Drained stays False, and Replaced says when it is done.
		if busy {
			set(drainv1.ConditionDrained, false, drainv1.ReasonReplacing, "a drain-and-replace drains a few gateways at a time: wait for condition Replaced")
			set(drainv1.ConditionReplaced, false, drainv1.ReasonProgressing, waiting)
			set(drainv1.ConditionReady, false, drainv1.ReasonProgressing, waiting)
		} else {
			msg := fmt.Sprintf("all %d targets replaced by pods that serve (%d replaced by the wave, %d by someone else)", st.Counts.Targets, st.Counts.Replaced, st.Counts.Restarted)
			set(drainv1.ConditionDrained, false, drainv1.ReasonReplaced, "every target was replaced; their replacements serve, none is drained")
			set(drainv1.ConditionReplaced, true, drainv1.ReasonReplaced, msg)
			set(drainv1.ConditionReady, true, drainv1.ReasonReplaced, msg)
		}
		set(drainv1.ConditionStalled, false, drainv1.ReasonProgressing, "")
	case withdrawn == "":
		if busy {
			set(drainv1.ConditionDrained, false, drainv1.ReasonProgressing, waiting)
			set(drainv1.ConditionReady, false, drainv1.ReasonProgressing, waiting)
		} else {
			msg := fmt.Sprintf("all %d targets drained or restarted (%d restarted, %d joined after the start)", st.Counts.Targets, st.Counts.Restarted, st.Counts.Added)
			if n := st.Counts.PartialWorkCounting; n > 0 {
				msg += fmt.Sprintf("; %d drained on a count of chat turns alone: their gateways' records do not show that they count API-server and cron work (spec.requireCompleteWorkCounting refuses them)", n)
			}
			if st.DrainedAt == nil { // from now on the targets are frozen
				drained := metav1.NewTime(now)
				st.DrainedAt = &drained
			}
			set(drainv1.ConditionDrained, true, drainv1.ReasonDrained, msg)
			set(drainv1.ConditionReady, true, drainv1.ReasonDrained, msg)
		}
		set(drainv1.ConditionStalled, false, drainv1.ReasonProgressing, "")
	default:
		reason := drainv1.ReasonCancelled
		if withdrawn == WithdrawnDeadline {
			reason = drainv1.ReasonDeadlineExceeded
		}
		released := fmt.Sprintf("drain %s: all %d targets released", withdrawn, st.Counts.Targets)
		if busy {
			released = fmt.Sprintf("drain %s; releasing: %s", withdrawn, waiting)
		}
		set(drainv1.ConditionDrained, false, reason, released)
		if replaces {
			set(drainv1.ConditionReplaced, false, reason, released)
		}
		if reason == drainv1.ReasonDeadlineExceeded {
			msg := fmt.Sprintf("the deadline (%s after the drain started) passed; %s", Timeout(gwd), released)
			set(drainv1.ConditionReady, false, reason, msg)
			set(drainv1.ConditionStalled, true, reason, msg)
		} else {
			readyReason := drainv1.ReasonReleased
			if busy {
				readyReason = drainv1.ReasonReleasing
			}
			set(drainv1.ConditionReady, !busy, readyReason, released)
			set(drainv1.ConditionStalled, false, readyReason, "")
		}
	}
	if busy {
		set(drainv1.ConditionReconciling, true, drainv1.ReasonProgressing, waiting)
	} else {
		set(drainv1.ConditionReconciling, false, drainv1.ReasonSucceeded, "")
	}
}

// Done reports whether a target needs nothing more: drained (or gone) while
// the drain stands, replaced instead when it replaces its targets, released
// (or gone) once it is withdrawn. A restarted target whose stale marker
// could not be removed yet is not done.
func Done(t drainv1.Target, withdrawn, replaces bool) bool {
	switch t.State {
	case drainv1.TargetRestarted:
		return t.MarkerRemovedAt != nil || t.Failures == 0
	case drainv1.TargetReplaced:
		return true
	case drainv1.TargetDrained:
		return !withdrawn && !replaces
	case drainv1.TargetReleased:
		return withdrawn
	}
	return false
}

// allMarkersRemoved reports whether every target in blocking had its marker
// removed by a person.
func allMarkersRemoved(blocking []*drainv1.Target) bool {
	for _, t := range blocking {
		if t.State != drainv1.TargetMarkerRemoved {
			return false
		}
	}
	return true
}

// waitingMessage names the targets that block, so a stuck drain says which
// pod holds it and why.
func waitingMessage(blocking []*drainv1.Target, total int) string {
	if len(blocking) == 0 {
		return ""
	}
	names := SomeOf(len(blocking), "; ", func(i int) string {
		return fmt.Sprintf("%s (%s: %s)", blocking[i].PodName, blocking[i].State, blocking[i].Message)
	})
	return fmt.Sprintf("waiting for %d of %d targets: %s", len(blocking), total, names)
}

// waveMessage says where a drain-and-replace stands.
func waveMessage(st *drainv1.GatewayDrainStatus) string {
	c := st.Counts
	return fmt.Sprintf("replaced %d of %d; %d out at once (at most %d); %d waiting their turn", c.Replaced+c.Restarted, c.Targets, st.Unavailable, st.MaxUnavailable, c.Waiting)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// CountOf is the counter of targets in state s.
func CountOf(c *drainv1.TargetCounts, s drainv1.TargetState) *int32 {
	switch s {
	case drainv1.TargetWaiting:
		return &c.Waiting
	case drainv1.TargetReplacing:
		return &c.Replacing
	case drainv1.TargetReplaced:
		return &c.Replaced
	case drainv1.TargetLeavingTraffic:
		return &c.LeavingTraffic
	case drainv1.TargetDraining:
		return &c.Draining
	case drainv1.TargetDrained:
		return &c.Drained
	case drainv1.TargetReleased:
		return &c.Released
	case drainv1.TargetRestarted:
		return &c.Restarted
	case drainv1.TargetConflict:
		return &c.Conflict
	case drainv1.TargetMarkerRemoved:
		return &c.MarkerRemoved
	case drainv1.TargetFailed:
		return &c.Failed
	}
	return &c.Pending
}

// PodNames lists the targets' pods for a message, at most maxNamed of them.
func PodNames(targets []drainv1.Target) string {
	return SomeOf(len(targets), ", ", func(i int) string { return targets[i].PodName })
}

// SomeOf joins the descriptions of the first maxNamed of n things and says
// how many more there are: a message about a thousand pods stays readable.
func SomeOf(n int, sep string, describe func(i int) string) string {
	var parts []string
	for i := range min(n, maxNamed) {
		parts = append(parts, describe(i))
	}
	if n > maxNamed {
		parts = append(parts, fmt.Sprintf("and %d more", n-maxNamed))
	}
	return strings.Join(parts, sep)
}
