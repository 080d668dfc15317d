package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/test/gatewaysim"
)

// hermesDrain runs `kubectl hermes-drain ARGS` as a user does: kubectl
// finds the plugin on PATH by its krew-style name. It returns stdout,
// stderr and the exit code.
func hermesDrain(t *testing.T, ns string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(lc.Bin, "kubectl"), append([]string{"hermes-drain", "--kubeconfig", lc.Kubeconfig, "-n", ns}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(pluginBin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("kubectl hermes-drain %s: %v", strings.Join(args, " "), err)
	}
	t.Logf("kubectl hermes-drain %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
	return out.String(), errOut.String(), code
}

// The plugin end to end, through kubectl: preview writes nothing and says
// what a drain would take; drain, wait, status and cancel --wait do what
// they say; exit codes tell a wait that gave up, a stalled drain and bad input.
func TestPluginPreviewDrainStatusCancel(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	gws := gateways(t, ns, 3, 1)
	notGateway := lc.Gateway(ns, "not-a-gateway", gatewayLabels)
	if err := notGateway.Create(context.Background(), func(p *corev1.Pod) { delete(p.Labels, drainv1.GatewayLabel) }); err != nil {
		t.Fatal(err)
	}
	for _, g := range gws {
		waitSim(t, g, marker.StateRunning)
	}

	// preview: what a drain would take now, read through pods/exec, writing nothing.
	out, _, code := hermesDrain(t, ns, "preview", "-l", "app=hermes-gateway", "-o", "json")
	var preview struct {
		Targets int  `json:"targets"`
		Read    bool `json:"read"`
		Pods    []struct {
			Name    string            `json:"name"`
			Target  bool              `json:"target"`
			Skipped string            `json:"skipped"`
			HeldBy  string            `json:"heldBy"`
			Home    *calls.HomeStatus `json:"home"`
		} `json:"pods"`
	}
	if err := json.Unmarshal([]byte(out), &preview); code != 0 || err != nil {
		t.Fatalf("preview -o json: exit %d, %v", code, err)
	}
	if preview.Targets != 3 || !preview.Read || len(preview.Pods) != 4 {
		t.Fatalf("preview: %+v", preview)
	}
	for _, p := range preview.Pods {
		switch {
		case p.Name == "not-a-gateway":
			if p.Target || !strings.Contains(p.Skipped, "not a gateway") {
				t.Errorf("not-a-gateway: %+v", p)
			}
		case !p.Target || p.Home == nil || p.Home.Gateway.State != marker.StateRunning || p.Home.Gateway.ActiveAgents != 1 || p.Home.Marker.State != calls.FileAbsent:
			t.Errorf("%s: %+v (home %+v)", p.Name, p, p.Home)
		}
	}
	if out, _, _ := hermesDrain(t, ns, "preview", "-l", "app=hermes-gateway"); !strings.Contains(out, "would take 3 of 4 matching pods") {
		t.Errorf("preview's table:\n%s", out)
	}
	var drains drainv1.GatewayDrainList
	if err := k8s.List(context.Background(), &drains, client.InNamespace(ns)); err != nil || len(drains.Items) != 0 {
		t.Errorf("preview created a GatewayDrain: %v %v", drains.Items, err)
	}
	for _, g := range gws {
		if m := g.Marker(); m != nil {
			t.Errorf("%s: preview wrote a marker: %s", g.Name, m)
		}
	}

	// A user who may read but not exec gets the same preview without the
	// gateways' own state, told why; and may not drain.
	viewer := readOnlyUser(t, ns)
	out, _, code = hermesDrain(t, ns, "preview", "-l", "app=hermes-gateway", "--as", viewer, "-o", "json")
	var notRead struct {
		Targets int    `json:"targets"`
		Read    bool   `json:"read"`
		NotRead string `json:"notRead"`
	}
	if err := json.Unmarshal([]byte(out), &notRead); code != 0 || err != nil || notRead.Targets != 3 || notRead.Read || !strings.Contains(notRead.NotRead, "pods/exec") {
		t.Errorf("preview as %s: exit %d, %v, %+v", viewer, code, err, notRead)
	}
	if _, stderr, code := hermesDrain(t, ns, "drain", "-l", "app=hermes-gateway", "--as", viewer); code != 1 || !strings.Contains(stderr, "forbidden") {
		t.Errorf("drain as %s: exit %d, %q", viewer, code, stderr)
	}

	// drain, then wait until it is Drained.
	if out, _, code := hermesDrain(t, ns, "drain", "-l", "app=hermes-gateway", "--name", "upgrade"); code != 0 || !strings.Contains(out, "gatewaydrain.drain.hermes.dev/upgrade created") {
		t.Fatalf("drain: exit %d: %s", code, out)
	}
	if out, _, code := hermesDrain(t, ns, "wait", "upgrade"); code != 0 || !strings.Contains(out, "Drained=True Drained") || !strings.Contains(out, "upgrade drained") {
		t.Errorf("wait: exit %d:\n%s", code, out)
	}
	for _, g := range gws {
		if st, err := gatewaysim.ReadState(g.Home); err != nil || !st.DrainComplete() {
			t.Errorf("%s: the plugin said drained while the gateway reports %+v (%v)", g.Name, st, err)
		}
	}

	// status: the table, the data, the summary.
	out, _, _ = hermesDrain(t, ns, "status", "upgrade")
	if !strings.Contains(out, "3/3 drained") || strings.Count(out, " Drained ") < 3 {
		t.Errorf("status table:\n%s", out)
	}
	out, _, _ = hermesDrain(t, ns, "status", "upgrade", "-o", "json")
	var data struct {
		GatewayDrain drainv1.GatewayDrain `json:"gatewayDrain"`
		Targets      []drainv1.Target     `json:"targets"`
	}
	if err := json.Unmarshal([]byte(out), &data); err != nil || data.GatewayDrain.Kind != "GatewayDrain" || len(data.Targets) != 3 {
		t.Errorf("status -o json: %v %+v", err, data)
	}
	for _, tg := range data.Targets {
		if tg.State != drainv1.TargetDrained {
			t.Errorf("status -o json: target %+v", tg)
		}
	}
	if out, _, _ := hermesDrain(t, ns, "status"); !strings.Contains(out, "upgrade") || !strings.Contains(out, "3/3") {
		t.Errorf("status summary:\n%s", out)
	}

	// preview now sees the drain holding the gateways.
	out, _, _ = hermesDrain(t, ns, "preview", "-l", "app=hermes-gateway", "-o", "yaml")
	if strings.Count(out, "heldBy: upgrade") != 3 || !strings.Contains(out, "honoured: true") {
		t.Errorf("preview of held gateways:\n%s", out)
	}

	// cancel --wait returns once every marker is removed.
	if out, _, code := hermesDrain(t, ns, "cancel", "upgrade", "--wait"); code != 0 || !strings.Contains(out, "upgrade released") {
		t.Errorf("cancel --wait: exit %d:\n%s", code, out)
	}
	waitReleased(t, gws, "kubectl hermes-drain cancel --wait")

	// A gateway the dashboard drains: preview shows its marker, and a drain
	// that waits for it gives up (exit 3) naming it.
	dashboard := `{"action": "drain", "requested_at": "` + time.Now().UTC().Format(marker.TimeLayout) + `", "principal": "ops@dashboard", "epoch": "` + sim.Epoch() + `"}`
	if err := os.WriteFile(filepath.Join(gws[0].Home, marker.Filename), []byte(dashboard), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _, _ := hermesDrain(t, ns, "preview", "-l", "app=hermes-gateway"); !strings.Contains(out, `honoured: a drain by principal "ops@dashboard"`) {
		t.Errorf("preview of a gateway the dashboard drains:\n%s", out)
	}
	if _, stderr, code := hermesDrain(t, ns, "drain", "-l", "app=hermes-gateway", "--name", "held", "--wait", "--wait-timeout", "15s"); code != 3 ||
		!strings.Contains(stderr, "gave up waiting after 15s") || !strings.Contains(stderr, "gw-0 (Conflict") {
		t.Errorf("drain --wait of a gateway held by the dashboard: exit %d, %q", code, stderr)
	}
	if _, _, code := hermesDrain(t, ns, "cancel", "held", "--wait"); code != 0 {
		t.Errorf("cancel held: exit %d", code)
	}

	// A drain that can never be Drained exits 2 and says why.
	if _, stderr, code := hermesDrain(t, ns, "drain", "-l", "app=nothing-here", "--name", "empty", "--wait"); code != 2 || !strings.Contains(stderr, "stalled (NoTargets)") {
		t.Errorf("drain --wait with no targets: exit %d, %q", code, stderr)
	}
	// Bad input is refused before anything is created.
	if _, stderr, code := hermesDrain(t, ns, "drain", "-l", "", "--name", "everything"); code != 1 || !strings.Contains(stderr, "selects every pod") {
		t.Errorf("drain with an empty selector: exit %d, %q", code, stderr)
	}
}

// readOnlyUser is a service account of ns that may read pods, GatewayDrains
// and TargetSlices, and nothing more (no pods/exec, no create): the name to
// impersonate with --as.
func readOnlyUser(t *testing.T, ns string) string {
	t.Helper()
	ctx := context.Background()
	objs := []client.Object{
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "viewer"}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "viewer"}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{drainv1.GroupVersion.Group}, Resources: []string{"gatewaydrains", "targetslices"}, Verbs: []string{"get", "list", "watch"}},
		}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "viewer"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "viewer"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "viewer"}}},
	}
	for _, o := range objs {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	return "system:serviceaccount:" + ns + ":viewer"
}
