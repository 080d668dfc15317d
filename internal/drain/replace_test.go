package drain

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
)

func replacing(v intstr.IntOrString) *drainv1.GatewayDrain {
	return &drainv1.GatewayDrain{Spec: drainv1.GatewayDrainSpec{Replace: &drainv1.ReplaceSpec{MaxUnavailable: &v}}}
}

// A percentage rounds down and never below 1; a number is taken as it is.
func TestMaxUnavailableRoundsDownToAtLeastOne(t *testing.T) {
	for _, tc := range []struct {
		v       intstr.IntOrString
		targets int
		want    int
	}{
		{intstr.FromInt32(1), 100, 1},
		{intstr.FromInt32(250), 100, 250},
		{intstr.FromString("10%"), 100, 10},
		{intstr.FromString("10%"), 109, 10},
		{intstr.FromString("10%"), 5, 1},
		{intstr.FromString("1%"), 3, 1},
		{intstr.FromString("100%"), 7, 7},
		{intstr.FromString("67%"), 3, 2},
	} {
		if got := MaxUnavailable(replacing(tc.v), tc.targets); got != tc.want {
			t.Errorf("%s of %d: %d, want %d", tc.v.String(), tc.targets, got, tc.want)
		}
	}
	if got := MaxUnavailable(&drainv1.GatewayDrain{Spec: drainv1.GatewayDrainSpec{Replace: &drainv1.ReplaceSpec{}}}, 50); got != 1 {
		t.Errorf("unset: %d, want the default 1", got)
	}
}

func TestOwnerOfNamesWhatReplacesAPod(t *testing.T) {
	pod := func(apiVersion, kind, name string, labels map[string]string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: labels}}
		if kind != "" {
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: name, Controller: ptr.To(true)}}
		}
		return p
	}
	for _, tc := range []struct {
		pod         *corev1.Pod
		owner, why  string
		sameName    bool
		description string
	}{
		{pod("apps/v1", "StatefulSet", "gw", nil), "StatefulSet/gw", "", true, "a StatefulSet's"},
		{pod("apps/v1", "ReplicaSet", "web-5d8f", map[string]string{"pod-template-hash": "5d8f"}), "Deployment/web", "", false, "a Deployment's"},
		{pod("apps/v1", "ReplicaSet", "web", nil), "ReplicaSet/web", "", false, "a bare ReplicaSet's"},
		{pod("apps/v1", "ReplicaSet", "web-1", map[string]string{"pod-template-hash": "other"}), "ReplicaSet/web-1", "", false, "a hash that does not end the name"},
		{pod("", "", "", nil), "", "no controller", false, "no controller"},
		{pod("apps/v1", "DaemonSet", "ds", nil), "", "owned by DaemonSet ds", false, "a DaemonSet's"},
		{pod("example.com/v1", "StatefulSet", "x", nil), "", "owned by StatefulSet x", false, "another group's StatefulSet"},
	} {
		owner, why := OwnerOf(tc.pod)
		if owner != tc.owner || !strings.Contains(why, tc.why) || (tc.why == "") != (why == "") || SameName(owner) != tc.sameName {
			t.Errorf("%s: %q, %q", tc.description, owner, why)
		}
	}
}

func TestNotServingSaysWhyAReplacementDoesNotServe(t *testing.T) {
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	pod := func(phase corev1.PodPhase, state corev1.ContainerState, ready corev1.ConditionStatus) *corev1.Pod {
		return &corev1.Pod{Status: corev1.PodStatus{
			Phase:             phase,
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "gateway", State: state, LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}}}},
		}}
	}
	deleting := pod(corev1.PodRunning, running, corev1.ConditionTrue)
	deleting.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	for _, tc := range []struct {
		pod  *corev1.Pod
		want string
	}{
		{pod(corev1.PodRunning, running, corev1.ConditionTrue), ""},
		{pod(corev1.PodRunning, running, corev1.ConditionFalse), "not Ready"},
		{pod(corev1.PodRunning, corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}, corev1.ConditionFalse), "gateway container CrashLoopBackOff (last exit code 1, Error; 0 restarts)"},
		{pod(corev1.PodRunning, corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}}, corev1.ConditionFalse), "gateway container exited (exit code 1, Error; 0 restarts)"},
		{pod(corev1.PodPending, corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}, corev1.ConditionFalse), "gateway container ImagePullBackOff"},
		{pod(corev1.PodPending, corev1.ContainerState{}, corev1.ConditionFalse), "gateway container gateway not running (phase Pending)"},
		{pod(corev1.PodFailed, running, corev1.ConditionFalse), "phase Failed"},
		{deleting, "terminating"},
	} {
		if got := NotServing(tc.pod, "gateway"); !strings.HasPrefix(got, tc.want) || (tc.want == "") != (got == "") {
			t.Errorf("NotServing = %q, want %q", got, tc.want)
		}
	}
}

// A drain-and-replace is never Drained as a whole: Replaced says when it is
// done, the message says where the wave stands and names those at work
// before those waiting, and a halt stalls it until resumed.
func TestTheStatusOfADrainAndReplace(t *testing.T) {
	gwd := replacing(intstr.FromInt32(2))
	started := metav1.Now()
	gwd.Status.StartedAt = &started
	targets := []drainv1.Target{
		{PodName: "a", State: drainv1.TargetWaiting},
		{PodName: "b", State: drainv1.TargetReplaced},
		{PodName: "c", State: drainv1.TargetDrained, Message: "drained; eviction refused by a PodDisruptionBudget (pdb)"},
		{PodName: "d", State: drainv1.TargetReplacing, Message: "evicted"},
	}
	ComputeStatus(gwd, targets, "", time.Now(), nil)
	st := gwd.Status
	if st.Unavailable != 2 || st.MaxUnavailable != 2 || st.Progress != "1/4" || st.Counts.Waiting != 1 || st.Counts.Replacing != 1 {
		t.Fatalf("status %+v", st)
	}
	replaced := meta.FindStatusCondition(st.Conditions, drainv1.ConditionReplaced)
	if replaced.Status != metav1.ConditionFalse || !strings.HasPrefix(replaced.Message, "replaced 1 of 4; 2 out at once (at most 2); 1 waiting their turn; waiting for 3 of 4 targets: c (Drained") ||
		!strings.Contains(replaced.Message, "d (Replacing: evicted); a (Waiting") {
		t.Errorf("Replaced %+v", replaced)
	}
	if meta.IsStatusConditionTrue(st.Conditions, drainv1.ConditionDrained) {
		t.Error("Drained True during a drain-and-replace")
	}

	halted := metav1.Now()
	gwd.Status.HaltedAt, gwd.Status.HaltedBecause = &halted, "d was not replaced"
	ComputeStatus(gwd, targets, "", time.Now(), nil)
	if c := meta.FindStatusCondition(gwd.Status.Conditions, drainv1.ConditionStalled); c.Status != metav1.ConditionTrue || c.Reason != drainv1.ReasonReplacementNotServing || !strings.Contains(c.Message, "d was not replaced") {
		t.Errorf("halted: Stalled %+v", c)
	}
	gwd.Annotations = map[string]string{drainv1.ResumeAnnotation: halted.Add(time.Second).UTC().Format(time.RFC3339)}
	if Halted(gwd) || !Resumed(gwd) {
		t.Error("the resume annotation after the halt does not resume")
	}

	for i := range targets {
		targets[i].State = drainv1.TargetReplaced
	}
	gwd.Status.HaltedAt = nil
	ComputeStatus(gwd, targets, "", time.Now(), nil)
	if !meta.IsStatusConditionTrue(gwd.Status.Conditions, drainv1.ConditionReplaced) || !meta.IsStatusConditionTrue(gwd.Status.Conditions, drainv1.ConditionReady) ||
		meta.IsStatusConditionTrue(gwd.Status.Conditions, drainv1.ConditionDrained) || gwd.Status.Progress != "4/4" {
		t.Errorf("done: %+v", gwd.Status)
	}
}

// The wave takes the idle first, the unread last, each in their order.
func TestTakeInTakesTheIdleFirst(t *testing.T) {
	agents := func(n int32) *int32 { return &n }
	targets := []drainv1.Target{
		{PodName: "busy", State: drainv1.TargetWaiting, ActiveAgents: agents(3)},
		{PodName: "unread", State: drainv1.TargetWaiting},
		{PodName: "out", State: drainv1.TargetDraining},
		{PodName: "idle", State: drainv1.TargetWaiting, ActiveAgents: agents(0)},
		{PodName: "unreachable", State: drainv1.TargetWaiting, ActiveAgents: agents(0), Unreachable: "bad home"},
		{PodName: "one", State: drainv1.TargetWaiting, ActiveAgents: agents(1)},
	}
	var got []string
	for _, i := range TakeIn(targets, 10) {
		got = append(got, targets[i].PodName)
	}
	if strings.Join(got, ",") != "idle,one,busy,unread" {
		t.Errorf("took %v", got)
	}
	for _, room := range []int{0, -2} { // -2: maxUnavailable lowered mid-wave
		if n := len(TakeIn(targets, room)); n != 0 {
			t.Errorf("took %d with room %d", n, room)
		}
	}
}
