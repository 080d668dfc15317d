package transport_test

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/agent"
	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/internal/satoken"
	"github.com/hermes-agent/hermes-drain-operator/internal/satoken/satokentest"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
	"github.com/hermes-agent/hermes-drain-operator/internal/transport"
)

// sharedProc is a /proc as a sidecar sees it in a pod that shares its PID
// namespace: PID 1 is the pause process, and this process's container was
// started from outside the namespace.
func sharedProc(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	stat := func(pid int, start string) string {
		return fmt.Sprintf("%d (p) S 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 %s 0 0\n", pid, start)
	}
	for path, content := range map[string]string{
		"sys/kernel/random/boot_id":         "boot\n",
		"1/stat":                            stat(1, "42"),
		strconv.Itoa(os.Getpid()) + "/stat": stat(os.Getpid(), "99"),
	} {
		p := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// agentPod is the gateway pod team-a/name whose agent listens at addr.
func agentPod(name, uid, addr string) *corev1.Pod {
	host, port, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(port)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: name, UID: types.UID(uid)},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "agent", Ports: []corev1.ContainerPort{{Name: drainv1.AgentPortName, ContainerPort: int32(n)}}}},
			Containers:     []corev1.Container{{Name: "gateway"}},
		},
		Status: corev1.PodStatus{PodIP: host},
	}
}

type agentFixture struct {
	home     string
	issuer   *satokentest.Issuer
	agentTok string // the agent's token file
	agent    *agent.Server
	agentURL string
	router   *transport.Router
	fallback *recording
	operator *podTokens
}

// podTokens mints the operator's tokens for each pod's agent as
// satoken.PodTokens has the API server do: audience AgentAudienceOf the
// pod. It remembers the last it gave.
type podTokens struct {
	issuer  *satokentest.Issuer
	account satokentest.Token
	last    string
}

func (p *podTokens) Token(_ context.Context, namespace, podUID string) (string, error) {
	tok := p.account
	tok.Audience, tok.Expiry = satoken.AgentAudienceOf(namespace, podUID), time.Now().Add(10*time.Minute)
	raw, err := p.issuer.Mint(tok)
	p.last = raw
	return raw, err
}

// recording is an exec Transport that only records that it was called.
type recording struct{ calls []string }

func (r *recording) Project(context.Context, calls.Pod, string, calls.ProjectRequest) (calls.Observation, error) {
	r.calls = append(r.calls, "project")
	return calls.Observation{GatewayHome: calls.GatewayHome{Outcome: calls.Written}}, nil
}
func (r *recording) Clear(context.Context, calls.Pod, string, string) (calls.Observation, error) {
	r.calls = append(r.calls, "clear")
	return calls.Observation{GatewayHome: calls.GatewayHome{Outcome: calls.Cleared}}, nil
}
func (r *recording) Read(context.Context, calls.Pod, string) (calls.Observation, error) {
	r.calls = append(r.calls, "read")
	return calls.Observation{GatewayHome: calls.GatewayHome{Outcome: calls.Read}}, nil
}

func mint(t *testing.T, issuer *satokentest.Issuer, path string, tok satokentest.Token) {
	t.Helper()
	tok.Expiry = time.Now().Add(10 * time.Minute)
	raw, err := issuer.Mint(tok)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
}

// newAgentFixture runs a real agent (TLS, as served) beside a home, and a
// Router that knows its pod.
func newAgentFixture(t *testing.T, pods ...*corev1.Pod) *agentFixture {
	t.Helper()
	issuer, err := satokentest.NewIssuer()
	if err != nil {
		t.Fatal(err)
	}
	f := &agentFixture{home: t.TempDir(), issuer: issuer, fallback: &recording{}, agentTok: filepath.Join(t.TempDir(), "agent-token"),
		operator: &podTokens{issuer: issuer, account: satokentest.Token{Namespace: "hermes-drain-system", Account: "operator"}}}
	mint(t, issuer, f.agentTok, satokentest.Token{Audience: satoken.OperatorAudience, Namespace: "team-a", Account: "gateway", PodName: "gw-0", PodUID: "pod-uid"})

	opts := agent.DefaultOptions()
	opts.Home, opts.Operators, opts.TokenFile, opts.ProcRoot = f.home, []string{"hermes-drain-system/operator"}, f.agentTok, sharedProc(t)
	a, err := agent.New(opts, testr.New(t))
	if err != nil {
		t.Fatal(err)
	}
	a.Trust(satokentest.IssuerURL, issuer.Keys())
	f.agent = a
	srv := httptest.NewTLSServer(a.Handler())
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "https://")
	f.agentURL = srv.URL
	objs := []*corev1.Pod{agentPod("gw-0", "pod-uid", addr)}
	objs = append(objs, pods...)
	builder := fake.NewClientBuilder()
	for _, p := range objs {
		builder = builder.WithObjects(p)
	}
	f.router = &transport.Router{Pods: builder.Build(), Exec: f.fallback,
		Agent: transport.NewAgent(f.operator, satoken.NewVerifier(satokentest.IssuerURL, issuer.Keys(), satoken.OperatorAudience, nil), 5*time.Second)}
	return f
}

var gw0 = calls.Pod{Namespace: "team-a", Name: "gw-0", Container: "gateway"}

func projectRequest() calls.ProjectRequest {
	return calls.ProjectRequest{Marker: marker.Request{Principal: "op", Origin: marker.Origin{GatewayDrainUID: "uid-1"}}}
}

// A pod that declares its agent is reached through it, with no exec: the
// marker lands with the gateway's epoch (the pause process's), and clears.
func TestAPodWithAnAgentIsReachedThroughIt(t *testing.T) {
	f := newAgentFixture(t)
	ctx := context.Background()
	obs, err := f.router.Project(ctx, gw0, "", projectRequest())
	if err != nil || obs.Outcome != calls.Written || obs.Epoch != "boot:42" || obs.Home != f.home {
		t.Fatalf("project: %+v %v", obs, err)
	}
	raw, _ := os.ReadFile(filepath.Join(f.home, marker.Filename))
	if !marker.Parse(raw).Honoured("boot:42", time.Now()) {
		t.Errorf("marker %s", raw)
	}
	if obs, err := f.router.Read(ctx, gw0, ""); err != nil || obs.Outcome != calls.Read || obs.Marker.State != calls.FilePresent {
		t.Errorf("read: %+v %v", obs, err)
	}
	if obs, err := f.router.Clear(ctx, gw0, "", "uid-1"); err != nil || obs.Outcome != calls.Cleared {
		t.Errorf("clear: %+v %v", obs, err)
	}
	if len(f.fallback.calls) != 0 {
		t.Errorf("exec was used: %v", f.fallback.calls)
	}
}

// The reply must come from the agent of the very pod meant: a server at a
// stale address (the pod's IP now someone else's) is not believed.
func TestOnlyThePodsOwnAgentIsBelieved(t *testing.T) {
	for name, tc := range map[string]struct {
		token satokentest.Token
		want  string
	}{
		"another pod's agent":     {satokentest.Token{Audience: satoken.OperatorAudience, Namespace: "team-a", Account: "gateway", PodName: "gw-0", PodUID: "old-uid"}, "not for team-a/gw-0 (uid pod-uid)"},
		"another namespace":       {satokentest.Token{Audience: satoken.OperatorAudience, Namespace: "team-b", Account: "gateway", PodName: "gw-0", PodUID: "pod-uid"}, "speaks for pod team-b/gw-0"},
		"a token for the agent's": {satokentest.Token{Audience: satoken.AgentAudience, Namespace: "team-a", Account: "gateway", PodName: "gw-0", PodUID: "pod-uid"}, "token was refused"},
	} {
		t.Run(name, func(t *testing.T) {
			f := newAgentFixture(t)
			mint(t, f.issuer, f.agentTok, tc.token)
			if _, err := f.router.Read(context.Background(), gw0, ""); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("read: %v, want %q", err, tc.want)
			}
		})
	}
}

func TestTheAgentRefusesAnOperatorItDoesNotKnow(t *testing.T) {
	f := newAgentFixture(t)
	f.operator.account = satokentest.Token{Namespace: "team-a", Account: "intruder"}
	if _, err := f.router.Project(context.Background(), gw0, "", projectRequest()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("project: %v, want a refusal", err)
	}
	if _, err := os.Lstat(filepath.Join(f.home, marker.Filename)); !os.IsNotExist(err) {
		t.Errorf("a marker was written: %v", err)
	}
}

// A pod without an agent goes through exec, or, with exec off, fails with
// a message that says why.
func TestAPodWithoutAnAgentGoesThroughExecIfAllowed(t *testing.T) {
	plain := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "gw-1", UID: "u1"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "gateway"}}}}
	f := newAgentFixture(t, plain)
	gw1 := calls.Pod{Namespace: "team-a", Name: "gw-1", Container: "gateway"}
	if obs, err := f.router.Read(context.Background(), gw1, ""); err != nil || obs.Outcome != calls.Read || len(f.fallback.calls) != 1 {
		t.Errorf("read through exec: %+v %v %v", obs, err, f.fallback.calls)
	}
	f.router.Exec = nil
	if _, err := f.router.Read(context.Background(), gw1, ""); err == nil || !strings.Contains(err.Error(), "runs without pods/exec") {
		t.Errorf("read with exec off: %v", err)
	}
	if _, err := f.router.Read(context.Background(), calls.Pod{Namespace: "team-a", Name: "gone"}, ""); err == nil {
		t.Error("a pod that is not there was reached")
	}
}

// An operator with no token for agents reaches a pod with an agent through
// exec, when it may.
func TestWithoutATokenForAgentsExecServes(t *testing.T) {
	f := newAgentFixture(t)
	f.router.Agent = nil
	if obs, err := f.router.Read(context.Background(), gw0, ""); err != nil || obs.Outcome != calls.Read || len(f.fallback.calls) != 1 {
		t.Errorf("read through exec: %+v %v %v", obs, err, f.fallback.calls)
	}
	f.router.Exec = nil
	if _, err := f.router.Read(context.Background(), gw0, ""); err == nil || !strings.Contains(err.Error(), "does not call agents") {
		t.Errorf("read with neither: %v", err)
	}
}

// Each call is counted, and timed, under the transport the router sent it
// through: the agent for a pod that declares one, exec for one that does
// not.
func TestCallsAreCountedByTheirTransport(t *testing.T) {
	plain := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "gw-1", UID: "u1"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "gateway"}}}}
	f := newAgentFixture(t, plain)
	f.router.Exec = transport.NewProgram(transport.LocalRunner{}, "/proc")
	counted := func(tr string) (calls, timed float64) {
		calls, _ = testenv.Metric(t, "hermes_drain_transport_calls_total", map[string]string{"transport": tr, "op": "read", "result": "read"})
		timed, _ = testenv.Metric(t, "hermes_drain_transport_call_seconds", map[string]string{"transport": tr, "op": "read"})
		return calls, timed
	}
	agentCalls, agentTimed := counted("agent")
	execCalls, execTimed := counted("exec")

	ctx := context.Background()
	if _, err := f.router.Read(ctx, gw0, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.router.Read(ctx, calls.Pod{Namespace: "team-a", Name: "gw-1", Container: "gateway"}, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if c, s := counted("agent"); c != agentCalls+1 || s != agentTimed+1 {
		t.Errorf("through the agent: %v calls, %v timed; want %v, %v", c, s, agentCalls+1, agentTimed+1)
	}
	if c, s := counted("exec"); c != execCalls+1 || s != execTimed+1 {
		t.Errorf("through exec: %v calls, %v timed; want %v, %v", c, s, execCalls+1, execTimed+1)
	}
}
