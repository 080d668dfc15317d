// Package recipes tests what docs/rollout.md tells Flux and Argo CD users
// to rely on, without a cluster: how each reads a GatewayDrain's health.
package recipes

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/test/cluster"
)

// A drain-and-replace's status, as the operator computes it, through each
// phase of its wave: Flux's kstatus and docs/rollout.md's Argo CD health
// check read it as in progress while the wave runs, failed when it halts,
// and healthy once every gateway is replaced; a plain drain as before.
func TestFluxAndArgoCDReadADrainAndReplace(t *testing.T) {
	script := argoHealthCheck(t)
	now := time.Date(2026, 12, 7, 16, 0, 0, 0, time.UTC)
	targets := func(states ...drainv1.TargetState) []drainv1.Target {
		var ts []drainv1.Target
		for i, s := range states {
			ts = append(ts, drainv1.Target{PodName: "gw-" + string(rune('0'+i)), State: s})
		}
		return ts
	}
	for _, tc := range []struct {
		name      string
		replaces  bool
		halted    bool
		targets   []drainv1.Target
		flux      status.Status
		argo      string
		stalledOf string
	}{
		{"a wave that runs", true, false, targets(drainv1.TargetReplaced, drainv1.TargetReplacing, drainv1.TargetWaiting), status.InProgressStatus, "Progressing", ""},
		{"a wave that halted", true, true, targets(drainv1.TargetReplaced, drainv1.TargetReplacing, drainv1.TargetWaiting), status.FailedStatus, "Degraded", "gw-1 was not replaced"},
		{"every gateway replaced", true, false, targets(drainv1.TargetReplaced, drainv1.TargetReplaced, drainv1.TargetRestarted), status.CurrentStatus, "Healthy", ""},
		{"a drain that drains", false, false, targets(drainv1.TargetDrained, drainv1.TargetDraining), status.InProgressStatus, "Progressing", ""},
		{"a drain that is Drained", false, false, targets(drainv1.TargetDrained, drainv1.TargetDrained), status.CurrentStatus, "Healthy", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gwd := &drainv1.GatewayDrain{ObjectMeta: metav1.ObjectMeta{Namespace: "hermes", Name: "upgrade-v2", Generation: 2}}
			started := metav1.NewTime(now.Add(-time.Minute))
			gwd.Status.StartedAt = &started
			if tc.replaces {
				gwd.Spec.Replace = &drainv1.ReplaceSpec{MaxUnavailable: ptr.To(intstr.FromInt32(1))}
			}
			if tc.halted {
				halted := metav1.NewTime(now)
				gwd.Status.HaltedAt, gwd.Status.HaltedBecause = &halted, "gw-1 was not replaced by a pod that serves within 5m0s of its eviction (replacement gw-1: gateway container CrashLoopBackOff)"
			}
			drain.ComputeStatus(gwd, tc.targets, "", now, nil)
			raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(gwd)
			if err != nil {
				t.Fatal(err)
			}
			u := &unstructured.Unstructured{Object: raw}
			u.SetGroupVersionKind(drainv1.GroupVersion.WithKind("GatewayDrain"))

			res, err := status.Compute(u)
			if err != nil || res.Status != tc.flux {
				t.Errorf("kstatus: %v (%v), want %s", res, err, tc.flux)
			}
			health, message := runHealthCheck(t, script, raw)
			if health != tc.argo || !strings.Contains(message, tc.stalledOf) {
				t.Errorf("Argo CD: %s %q, want %s", health, message, tc.argo)
			}
		})
	}
}

// argoHealthCheck is the Lua health check docs/rollout.md gives Argo CD.
func argoHealthCheck(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(cluster.RepoRoot(), "docs", "rollout.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```lua\n")
	script, _, closed := strings.Cut(rest, "```")
	if !ok || !closed {
		t.Fatal("docs/rollout.md has no Lua health check")
	}
	var lines []string
	for _, l := range strings.Split(script, "\n") {
		lines = append(lines, strings.TrimPrefix(l, "  ")) // the block is indented in its list item
	}
	return strings.Join(lines, "\n")
}

// runHealthCheck runs the health check on obj as Argo CD does: obj is a
// global table, and the script returns {status, message}.
func runHealthCheck(t *testing.T, script string, obj map[string]any) (health, message string) {
	t.Helper()
	L := lua.NewState()
	defer L.Close()
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(script); err != nil {
		t.Fatalf("the health check fails: %v", err)
	}
	hs, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("the health check returned %v", L.Get(-1))
	}
	return lua.LVAsString(hs.RawGetString("status")), lua.LVAsString(hs.RawGetString("message"))
}

// toLua converts what JSON decodes to into Lua values, as Argo CD does.
func toLua(L *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case map[string]any:
		tb := L.NewTable()
		for k, e := range v {
			tb.RawSetString(k, toLua(L, e))
		}
		return tb
	case []any:
		tb := L.NewTable()
		for _, e := range v {
			tb.Append(toLua(L, e))
		}
		return tb
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	}
	return lua.LNil
}
