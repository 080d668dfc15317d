package drain

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
)

// The conditions table of docs/design.md, row by row: what kubectl wait,
// Flux and Argo CD read.
func TestComputeStatusConditions(t *testing.T) {
	started := metav1.NewTime(time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC))
	target := func(name string, s drainv1.TargetState, msg string) drainv1.Target {
		return drainv1.Target{PodName: name, State: s, Message: msg}
	}
	type want struct{ drained, ready, reconciling, stalled string } // "Status/Reason"
	cases := []struct {
		name      string
		withdrawn string
		stalled   *Stall
		targets   []drainv1.Target
		want      want
		mentions  string // the Drained message names what blocks
	}{
		{"still draining", "", nil,
			[]drainv1.Target{target("gw-0", drainv1.TargetDrained, ""), target("gw-1", drainv1.TargetDraining, "gateway draining: 2 active agents")},
			want{"False/Progressing", "False/Progressing", "True/Progressing", "False/Progressing"}, "gw-1 (Draining: gateway draining: 2 active agents)"},
		{"a failed target holds it", "", nil,
			[]drainv1.Target{target("gw-0", drainv1.TargetFailed, "exec: forbidden")},
			want{"False/Progressing", "False/Progressing", "True/Progressing", "False/Progressing"}, "gw-0 (Failed: exec: forbidden)"},
		{"drained or restarted", "", nil,
			[]drainv1.Target{target("gw-0", drainv1.TargetDrained, ""), target("gw-1", drainv1.TargetRestarted, "")},
			want{"True/Drained", "True/Drained", "False/Succeeded", "False/Progressing"}, "1 restarted"},
		{"restarted, stale marker not yet removed", "", nil,
			[]drainv1.Target{{PodName: "gw-0", State: drainv1.TargetRestarted, Failures: 2, Message: "removing failed"}},
			want{"False/Progressing", "False/Progressing", "True/Progressing", "False/Progressing"}, "gw-0 (Restarted: removing failed)"},
		{"cancelled, releasing", WithdrawnCancelled, nil,
			[]drainv1.Target{target("gw-0", drainv1.TargetReleased, ""), target("gw-1", drainv1.TargetDrained, "")},
			want{"False/Cancelled", "False/Releasing", "True/Progressing", "False/Releasing"}, "gw-1 (Drained"},
		{"cancelled, released", WithdrawnCancelled, nil,
			[]drainv1.Target{target("gw-0", drainv1.TargetReleased, ""), target("gw-1", drainv1.TargetRestarted, "")},
			want{"False/Cancelled", "True/Released", "False/Succeeded", "False/Released"}, "all 2 targets released"},
		{"deadline passed", WithdrawnDeadline, nil,
			[]drainv1.Target{target("gw-0", drainv1.TargetReleased, "")},
			want{"False/DeadlineExceeded", "False/DeadlineExceeded", "False/Succeeded", "True/DeadlineExceeded"}, "deadline exceeded"},
		{"no targets", "", nil, nil,
			want{"False/NoTargets", "False/NoTargets", "False/NoTargets", "True/NoTargets"}, "no running gateway pod matched"},
		{"invalid selector", "", &Stall{Reason: drainv1.ReasonInvalidSelector, Message: "invalid selector: bad operator"}, nil,
			want{"False/InvalidSelector", "False/InvalidSelector", "False/InvalidSelector", "True/InvalidSelector"}, "bad operator"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gwd := &drainv1.GatewayDrain{ObjectMeta: metav1.ObjectMeta{Generation: 3}}
			if tc.stalled == nil {
				gwd.Status.StartedAt = &started
			}
			ComputeStatus(gwd, tc.targets, tc.withdrawn, time.Time{}, tc.stalled)
			got := want{}
			for typ, into := range map[string]*string{
				drainv1.ConditionDrained: &got.drained, drainv1.ConditionReady: &got.ready,
				drainv1.ConditionReconciling: &got.reconciling, drainv1.ConditionStalled: &got.stalled,
			} {
				c := meta.FindStatusCondition(gwd.Status.Conditions, typ)
				if c == nil || c.ObservedGeneration != 3 {
					t.Fatalf("%s missing or not for generation 3: %+v", typ, c)
				}
				*into = string(c.Status) + "/" + c.Reason
			}
			if got != tc.want {
				t.Errorf("conditions %+v, want %+v", got, tc.want)
			}
			if msg := meta.FindStatusCondition(gwd.Status.Conditions, drainv1.ConditionDrained).Message; !strings.Contains(msg, tc.mentions) {
				t.Errorf("Drained message %q should mention %q", msg, tc.mentions)
			}
			if gwd.Status.ObservedGeneration != 3 {
				t.Errorf("observedGeneration %d", gwd.Status.ObservedGeneration)
			}
		})
	}
}

// A stuck drain names at most five blocking pods, and how many more there are.
func TestWaitingMessageIsBounded(t *testing.T) {
	var blocking []*drainv1.Target
	for _, name := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		blocking = append(blocking, &drainv1.Target{PodName: name, State: drainv1.TargetDraining, Message: "m"})
	}
	msg := waitingMessage(blocking, 9)
	if !strings.HasPrefix(msg, "waiting for 7 of 9 targets: a (Draining: m)") || !strings.HasSuffix(msg, "e (Draining: m); and 2 more") {
		t.Errorf("message %q", msg)
	}
}
