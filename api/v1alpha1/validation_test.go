//go:build !unit

package v1alpha1_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env)) }

type spec = map[string]any

var selector = spec{"matchLabels": spec{"app": "hermes-gateway"}}

// with returns a valid spec with one field set (nil removes it).
func with(field string, value any) spec {
	s := spec{"selector": selector}
	if value == nil {
		delete(s, field)
	} else {
		s[field] = value
	}
	return s
}

func gatewayDrain(ns, name string, s spec) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": s}}
	u.SetGroupVersionKind(drainv1.GroupVersion.WithKind("GatewayDrain"))
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

func TestAdmissionRefusesBadSpecs(t *testing.T) {
	ns := env.Namespace(t)
	cases := []struct {
		name string
		spec spec
		want string
	}{
		{"no selector", with("selector", nil), "spec.selector: Required value"},
		{"empty selector", with("selector", spec{}), "an empty selector would drain every pod"},
		{"empty matchLabels", with("selector", spec{"matchLabels": spec{}}), "an empty selector would drain every pod"},
		{"empty matchExpressions", with("selector", spec{"matchExpressions": []any{}}), "an empty selector would drain every pod"},
		{"unknown action", with("action", "Restart"), `spec.action: Unsupported value: "Restart"`},
		{"empty action", with("action", ""), `spec.action: Unsupported value: ""`},
		{"container not a DNS label", with("container", "Gateway"), "spec.container: Invalid value"},
		{"container too long", with("container", strings.Repeat("a", 64)), "spec.container: Too long"},
		{"relative hermesHome", with("hermesHome", "opt/data"), "hermesHome must be an absolute path"},
		{"hermesHome trailing slash", with("hermesHome", "/opt/data/"), "hermesHome must not end with '/'"},
		{"hermesHome root", with("hermesHome", "/"), "spec.hermesHome: Invalid value"},
		{"hermesHome double slash", with("hermesHome", "/opt//data"), "hermesHome must not contain '//'"},
		{"hermesHome dot-dot", with("hermesHome", "/opt/../etc"), "hermesHome must not contain '.' or '..' segments"},
		{"hermesHome trailing dot-dot", with("hermesHome", "/opt/data/.."), "hermesHome must not contain '.' or '..' segments"},
		{"hermesHome dot", with("hermesHome", "/opt/./data"), "hermesHome must not contain '.' or '..' segments"},
		{"hermesHome newline", with("hermesHome", "/opt/da\nta"), "hermesHome must not contain control characters"},
		{"hermesHome NUL", with("hermesHome", "/opt/da\x00ta"), "hermesHome must not contain control characters"},
		{"hermesHome too long", with("hermesHome", "/"+strings.Repeat("a", 512)), "spec.hermesHome: Too long"},
		{"empty principal", with("principal", ""), "spec.principal: Invalid value"},
		{"principal with a tab", with("principal", "a\tb"), "principal must not contain control characters"},
		{"principal with a C1 control", with("principal", "a\u0085b"), "principal must not contain control characters"},
		{"principal too long", with("principal", strings.Repeat("p", 257)), "spec.principal: Too long"},
		{"timeout too short", with("timeout", "30s"), "timeout must be between 1m and 24h"},
		{"timeout too long", with("timeout", "25h"), "timeout must be between 1m and 24h"},
		{"timeout not a duration", with("timeout", "soon"), "spec.timeout: Invalid value"},
		{"negative timeout", with("timeout", "-5m"), "spec.timeout: Invalid value"},
		{"suppressNotification not a bool", with("suppressNotification", "yes"), "spec.suppressNotification: Invalid value"},
		{"selector not an object", with("selector", "app=hermes"), "spec.selector: Invalid value"},
		{"matchLabels not a map of strings", with("selector", spec{"matchLabels": spec{"app": 1}}), "spec.selector.matchLabels.app: Invalid value"},
		{"action in lower case", with("action", "drain"), `spec.action: Unsupported value: "drain"`},
		{"hermesHome with a DEL", with("hermesHome", "/opt/da\x7fta"), "hermesHome must not contain control characters"},
		{"hermesHome a lone dot-dot", with("hermesHome", "/.."), "hermesHome must not contain '.' or '..' segments"},
		{"principal with a newline", with("principal", "ops\nrm -rf /"), "principal must not contain control characters"},
		{"timeout with a unit only", with("timeout", "h"), "spec.timeout: Invalid value"},
		{"timeout zero", with("timeout", "0s"), "timeout must be between 1m and 24h"},
		{"maxUnavailable 0", with("replace", spec{"maxUnavailable": 0}), "maxUnavailable must be a number of at least 1 or a percentage from 1% to 100%"},
		{"maxUnavailable negative", with("replace", spec{"maxUnavailable": -2}), "maxUnavailable must be a number of at least 1"},
		{"maxUnavailable 0%", with("replace", spec{"maxUnavailable": "0%"}), "maxUnavailable must be a number of at least 1"},
		{"maxUnavailable over 100%", with("replace", spec{"maxUnavailable": "101%"}), "maxUnavailable must be a number of at least 1"},
		{"maxUnavailable a number in a string", with("replace", spec{"maxUnavailable": "3"}), "maxUnavailable must be a number of at least 1"},
		{"maxUnavailable a fraction", with("replace", spec{"maxUnavailable": "2.5%"}), "maxUnavailable must be a number of at least 1"},
		{"servingTimeout too short", with("replace", spec{"servingTimeout": "5s"}), "servingTimeout must be between 10s and 1h"},
		{"servingTimeout too long", with("replace", spec{"servingTimeout": "2h"}), "servingTimeout must be between 10s and 1h"},
		{"servingTimeout not a duration", with("replace", spec{"servingTimeout": "soon"}), "spec.replace.servingTimeout: Invalid value"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := env.Client.Create(context.Background(), gatewayDrain(ns, fmt.Sprintf("bad-%d", i), tc.spec))
			if err == nil {
				t.Fatalf("accepted %v", tc.spec)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("refused with %q, want it to say %q", err, tc.want)
			}
		})
	}
}

// A GatewayDrain's name labels its TargetSlices: longer than a label value
// may be, it is refused.
func TestAdmissionRefusesALongName(t *testing.T) {
	err := env.Client.Create(context.Background(), gatewayDrain(env.Namespace(t), strings.Repeat("n", 64), with("selector", selector)))
	if err == nil || !strings.Contains(err.Error(), "the name must be at most 63 characters") {
		t.Fatalf("a 64-character name: %v, want it refused", err)
	}
}

// A TargetSlice holds at most MaxTargetsPerSlice targets.
func TestAdmissionBoundsATargetSlice(t *testing.T) {
	ns := env.Namespace(t)
	slice := func(n int) *drainv1.TargetSlice {
		s := &drainv1.TargetSlice{Targets: []drainv1.Target{}}
		s.Namespace, s.Name, s.Count = ns, fmt.Sprintf("s-%d", n), int32(n)
		for i := range n {
			s.Targets = append(s.Targets, drainv1.Target{PodName: fmt.Sprintf("gw-%d", i), PodUID: "u", Container: "gateway", State: drainv1.TargetPending})
		}
		return s
	}
	if err := env.Client.Create(context.Background(), slice(drainv1.MaxTargetsPerSlice)); err != nil {
		t.Errorf("a full slice refused: %v", err)
	}
	if err := env.Client.Create(context.Background(), slice(drainv1.MaxTargetsPerSlice+1)); err == nil || !strings.Contains(err.Error(), "must have at most 500 items") {
		t.Errorf("a slice of %d targets: %v, want it refused", drainv1.MaxTargetsPerSlice+1, err)
	}
}

// What a gateway reports is bounded in the API too (issue 23, item 8): a
// target with an over-long epoch, gateway state or updated_at is refused,
// so no TargetSlice grows with what a hostile gateway sends.
func TestAdmissionBoundsWhatAGatewayReports(t *testing.T) {
	ns := env.Namespace(t)
	for _, tc := range []struct {
		field string
		max   int
		set   func(*drainv1.Target, string)
	}{
		{"epoch", 128, func(t *drainv1.Target, s string) { t.Epoch = s }},
		{"gatewayState", 32, func(t *drainv1.Target, s string) { t.GatewayState = s }},
		{"stateUpdatedAt", 64, func(t *drainv1.Target, s string) { t.StateUpdatedAt = s }},
	} {
		for _, n := range []int{tc.max, tc.max + 1} {
			target := drainv1.Target{PodName: "gw-0", PodUID: "u", Container: "gateway", State: drainv1.TargetDraining}
			tc.set(&target, strings.Repeat("x", n))
			slice := &drainv1.TargetSlice{Count: 1, Targets: []drainv1.Target{target}}
			slice.Namespace, slice.Name = ns, fmt.Sprintf("%s-%d", strings.ToLower(tc.field), n)
			err := env.Client.Create(context.Background(), slice)
			want := fmt.Sprintf("targets[0].%s: Too long", tc.field)
			switch {
			case n <= tc.max && err != nil:
				t.Errorf("%s of %d bytes refused: %v", tc.field, n, err)
			case n > tc.max && (err == nil || !strings.Contains(err.Error(), want)):
				t.Errorf("%s of %d bytes: %v, want %q", tc.field, n, err, want)
			}
		}
	}
}

func TestAdmissionAcceptsEdgeCasesAndDefaults(t *testing.T) {
	ns := env.Namespace(t)
	cases := map[string]spec{
		"minimal":             with("selector", selector),
		"matchExpressions":    with("selector", spec{"matchExpressions": []any{spec{"key": "app", "operator": "Exists"}}}),
		"unusual hermesHome":  with("hermesHome", "/opt/my data/$HOME/`x`/'q\"/.hidden/..x"),
		"unicode principal":   with("principal", "ünïcode 🚀 $(rm -rf /) `id`"),
		"shortest timeout":    with("timeout", "1m"),
		"longest timeout":     with("timeout", "24h"),
		"compound timeout":    with("timeout", "1h30m"),
		"cancel at creation":  with("action", "Cancel"),
		"replace one by one":  with("replace", spec{"maxUnavailable": 1}),
		"replace ten percent": with("replace", spec{"maxUnavailable": "10%"}),
		"replace all at once": with("replace", spec{"maxUnavailable": "100%", "servingTimeout": "10s"}),
		"replace defaults":    with("replace", spec{}),
	}
	t.Run("a name of 63 characters", func(t *testing.T) {
		if err := env.Client.Create(context.Background(), gatewayDrain(ns, strings.Repeat("n", 63), with("selector", selector))); err != nil {
			t.Fatalf("refused: %v", err)
		}
	})
	for name, s := range cases {
		t.Run(name, func(t *testing.T) {
			u := gatewayDrain(ns, strings.ToLower(strings.ReplaceAll(name, " ", "-")), s)
			if err := env.Client.Create(context.Background(), u); err != nil {
				t.Fatalf("refused: %v", err)
			}
			if name == "minimal" {
				got, _, _ := unstructured.NestedString(u.Object, "spec", "action")
				timeout, _, _ := unstructured.NestedString(u.Object, "spec", "timeout")
				if got != "Drain" || timeout != "2h" {
					t.Errorf("defaults: action %q timeout %q, want Drain and 2h", got, timeout)
				}
			}
			if name == "replace defaults" {
				maxUnavailable, _, _ := unstructured.NestedInt64(u.Object, "spec", "replace", "maxUnavailable")
				serving, _, _ := unstructured.NestedString(u.Object, "spec", "replace", "servingTimeout")
				if maxUnavailable != 1 || serving != "5m" {
					t.Errorf("replace defaults: maxUnavailable %d servingTimeout %q, want 1 and 5m", maxUnavailable, serving)
				}
			}
		})
	}
}

func TestAdmissionGuardsUpdates(t *testing.T) {
	ns := env.Namespace(t)
	ctx := context.Background()
	cases := []struct {
		name         string
		create, edit spec
		want         string // "" when the edit must be accepted
	}{
		{"drain to cancel", with("action", "Drain"), with("action", "Cancel"), ""},
		{"timeout raised", with("timeout", "1h"), with("timeout", "3h"), ""},
		{"cancel to drain", with("action", "Cancel"), with("action", "Drain"), "a cancelled GatewayDrain cannot drain again"},
		{"selector changed", with("selector", selector), with("selector", spec{"matchLabels": spec{"app": "other"}}), "selector is immutable"},
		{"container set later", with("container", nil), with("container", "gateway"), "container is immutable"},
		{"container changed", with("container", "a"), with("container", "b"), "container is immutable"},
		{"hermesHome changed", with("hermesHome", "/opt/data"), with("hermesHome", "/srv/data"), "hermesHome is immutable"},
		{"hermesHome removed", with("hermesHome", "/opt/data"), with("hermesHome", nil), "hermesHome is immutable"},
		{"principal changed", with("principal", "me"), with("principal", "you"), "principal is immutable"},
		{"maxUnavailable raised mid-wave", with("replace", spec{"maxUnavailable": 1}), with("replace", spec{"maxUnavailable": "20%"}), ""},
		{"replace set later", with("replace", nil), with("replace", spec{}), "replace cannot be set or unset"},
		{"replace unset", with("replace", spec{}), with("replace", nil), "replace cannot be set or unset"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := gatewayDrain(ns, fmt.Sprintf("upd-%d", i), tc.create)
			if err := env.Client.Create(ctx, u); err != nil {
				t.Fatalf("create: %v", err)
			}
			u.Object["spec"] = tc.edit
			err := env.Client.Update(ctx, u)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("edit refused: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("edit accepted, want %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("refused with %q, want it to say %q", err, tc.want)
			}
		})
	}
}

// The operator validates a pod's HERMES_HOME env value with the same rules
// the API server applies to spec.hermesHome: both must agree.
func TestHermesHomeRulesAgreeWithTheAPIServer(t *testing.T) {
	ns := env.Namespace(t)
	for i, home := range []string{
		"/opt/data", "/opt/my data", "/a", "/opt/data/", "/", "opt", "/opt//data", "/opt/./x",
		"/opt/../x", "/opt/..x", "/opt/.x", "/x\x7f", "/x\ty", "/" + strings.Repeat("h", 511), "/" + strings.Repeat("h", 512),
	} {
		apiErr := env.Client.Create(context.Background(), gatewayDrain(ns, fmt.Sprintf("home-%d", i), with("hermesHome", home)))
		goErr := marker.ValidateHome(home)
		if (apiErr == nil) != (goErr == nil) {
			t.Errorf("%q: API server says %v, marker.ValidateHome says %v", home, apiErr, goErr)
		}
	}
}
