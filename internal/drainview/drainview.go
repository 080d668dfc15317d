// Package drainview renders GatewayDrains for people: the per-pod table that
// `kubectl hermes-drain status` and `drain --wait` print (and `make demo`
// shows), and the one-line-per-drain summary.
package drainview

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/printers"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// MessageWidth bounds a message in a table cell, WordWidth a cell of one
// word (a gateway's state, a condition's status); the full text is in the
// object (-o yaml). What a cell shows of a status is marker.Excerpt: a
// status can quote what a gateway wrote, and a gateway may be hostile, so
// nothing in it may act on the terminal the plugin redraws.
const (
	MessageWidth = 100
	WordWidth    = 32
)

// Drain writes one drain: a header, its conditions, then one row per target
// with the operator's last word on it (what blocks it, or the last error).
func Drain(w io.Writer, gwd *drainv1.GatewayDrain, targets []drainv1.Target, now time.Time) error {
	fmt.Fprintf(w, "GatewayDrain %s/%s: %s, %s\n", gwd.Namespace, gwd.Name, gwd.Spec.Action, progress(gwd, now))
	tw := printers.GetNewTabWriter(w)
	for _, typ := range []string{drainv1.ConditionDrained, drainv1.ConditionReplaced, drainv1.ConditionReady, drainv1.ConditionReconciling, drainv1.ConditionStalled} {
		if c := meta.FindStatusCondition(gwd.Status.Conditions, typ); c != nil {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", typ, c.Status, c.Reason, marker.Excerpt(c.Message, 2*MessageWidth))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(targets) == 0 {
		_, err := fmt.Fprintln(w, "\nNo targets.")
		return err
	}
	sorted := slices.Clone(targets)
	slices.SortStableFunc(sorted, func(a, b drainv1.Target) int { return strings.Compare(a.PodName, b.PodName) })
	fmt.Fprintln(w)
	tw = printers.GetNewTabWriter(w) // a writer of its own: it remembers column widths
	fmt.Fprintln(tw, "POD\tTARGET\tGATEWAYS\tBLOCKED BY\tGATEWAY\tAGENTS\tMESSAGE")
	for _, t := range sorted {
		agents, gateways := "-", "-"
		if t.ActiveAgents != nil {
			agents = fmt.Sprint(*t.ActiveAgents)
		}
		if t.Gateways > 0 {
			gateways = fmt.Sprint(t.Gateways)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.PodName, t.State, gateways, marker.Excerpt(cmp.Or(t.BlockingGateway, "-"), WordWidth),
			marker.Excerpt(cmp.Or(t.GatewayState, "-"), WordWidth), agents, marker.Excerpt(t.Message, MessageWidth))
	}
	return tw.Flush()
}

// Drains writes one line per drain, with its namespace when they may come
// from several.
func Drains(w io.Writer, drains []drainv1.GatewayDrain, withNamespace bool, now time.Time) error {
	if len(drains) == 0 {
		_, err := fmt.Fprintln(w, "No GatewayDrains.")
		return err
	}
	tw := printers.GetNewTabWriter(w)
	if withNamespace {
		fmt.Fprint(tw, "NAMESPACE\t")
	}
	fmt.Fprintln(tw, "NAME\tACTION\tDRAINED\tREADY\tWAITING FOR\tAGE")
	for i := range drains {
		gwd := &drains[i]
		if withNamespace {
			fmt.Fprintf(tw, "%s\t", gwd.Namespace)
		}
		ready, waiting := "-", "-"
		if c := meta.FindStatusCondition(gwd.Status.Conditions, drainv1.ConditionReady); c != nil {
			ready = c.Reason
		}
		if c := meta.FindStatusCondition(gwd.Status.Conditions, drainv1.ConditionReconciling); c != nil && c.Status == "True" && c.Message != "" {
			waiting = marker.Excerpt(c.Message, MessageWidth/2)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", gwd.Name, gwd.Spec.Action, cmp.Or(gwd.Status.Progress, "-"), ready, waiting,
			duration.HumanDuration(now.Sub(gwd.CreationTimestamp.Time)))
	}
	return tw.Flush()
}

// progress says how far the drain is and how long it may still take.
func progress(gwd *drainv1.GatewayDrain, now time.Time) string {
	c := gwd.Status.Counts
	parts := []string{fmt.Sprintf("%d/%d drained", c.Drained, c.Targets)}
	if gwd.Spec.Replace != nil {
		st := gwd.Status
		parts = []string{fmt.Sprintf("%s replaced; wave: %d out (at most %d), %d waiting", cmp.Or(st.Progress, "0/0"), st.Unavailable, st.MaxUnavailable, c.Waiting)}
		if c.Drained > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.Drained, drainv1.TargetDrained))
		}
		if st.HaltedAt != nil {
			parts = append(parts, "halted "+st.HaltedAt.UTC().Format(time.RFC3339))
		}
	}
	for _, n := range []struct {
		state drainv1.TargetState
		count int32
	}{
		{drainv1.TargetReplacing, c.Replacing},
		{drainv1.TargetPending, c.Pending}, {drainv1.TargetLeavingTraffic, c.LeavingTraffic}, {drainv1.TargetDraining, c.Draining},
		{drainv1.TargetFailed, c.Failed}, {drainv1.TargetConflict, c.Conflict}, {drainv1.TargetMarkerRemoved, c.MarkerRemoved},
		{drainv1.TargetRestarted, c.Restarted}, {drainv1.TargetReleased, c.Released},
	} {
		if n.count > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n.count, n.state))
		}
	}
	s := strings.Join(parts, ", ")
	if d := gwd.Status.Deadline; d != nil && gwd.Status.DrainedAt == nil && !gwd.Status.DeadlineExceeded {
		s += fmt.Sprintf("; deadline %s (in %s)", d.UTC().Format(time.RFC3339), duration.HumanDuration(d.Sub(now)))
	}
	return s
}
