package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr/testr"

	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/internal/satoken"
	"github.com/hermes-agent/hermes-drain-operator/internal/satoken/satokentest"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
)

const operatorSA = "hermes-drain-system/operator"

// fixture is an agent serving a fresh home, and an issuer of the tokens it
// trusts.
type fixture struct {
	t      *testing.T
	home   string
	issuer *satokentest.Issuer
	server *Server
	http   *httptest.Server
	// ownToken is the agent's own token (its pod's), sent in replies.
	ownToken string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	issuer, err := satokentest.NewIssuer()
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	tokenFile := filepath.Join(t.TempDir(), "token")
	own, err := issuer.Mint(satokentest.Token{Audience: satoken.OperatorAudience, Namespace: "team-a", Account: "gateway",
		PodName: "gw-0", PodUID: "gw-0-uid", Expiry: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte(own+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := DefaultOptions()
	opts.Home, opts.Operators, opts.TokenFile = home, []string{operatorSA}, tokenFile
	s, err := New(opts, testr.New(t))
	if err != nil {
		t.Fatal(err)
	}
	s.Trust(satokentest.IssuerURL, issuer.Keys())
	f := &fixture{t: t, home: home, issuer: issuer, server: s, http: httptest.NewServer(s.Handler()), ownToken: own}
	t.Cleanup(f.http.Close)
	return f
}

func (f *fixture) token(mutate func(*satokentest.Token)) string {
	f.t.Helper()
	spec := satokentest.Token{Audience: satoken.AgentAudienceOf("team-a", "gw-0-uid"), Namespace: "hermes-drain-system", Account: "operator",
		PodName: "operator-0", PodUID: "op-uid", Expiry: time.Now().Add(10 * time.Minute)}
	if mutate != nil {
		mutate(&spec)
	}
	tok, err := f.issuer.Mint(spec)
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

// post sends a call as the operator's client does, with the given token,
// nonce and time.
func (f *fixture) post(op, token, nonce string, at time.Time, call calls.AgentCall) (int, calls.AgentReply, http.Header) {
	f.t.Helper()
	body, _ := json.Marshal(call)
	req, _ := http.NewRequest(http.MethodPost, f.http.URL+calls.AgentPathPrefix+op, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set(calls.HeaderNonce, nonce)
	req.Header.Set(calls.HeaderTime, at.UTC().Format(time.RFC3339Nano))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var reply calls.AgentReply
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
			f.t.Fatal(err)
		}
	}
	return resp.StatusCode, reply, resp.Header
}

var nonces int

func nonce() string {
	nonces++
	return fmt.Sprintf("nonce-%016d", nonces)
}

func projectCall(owner string) calls.AgentCall {
	return calls.AgentCall{Marker: &marker.Request{Principal: "operator",
		Origin: marker.Origin{GatewayDrainUID: owner, GatewayDrain: "ns/d", Pod: "ns/gw-0", Container: "gateway"}}}
}

// Only the operator, with a valid token for the agent and a fresh request,
// is served.
func TestOnlyTheOperatorIsServed(t *testing.T) {
	f := newFixture(t)
	f.server.shared = true
	replayed := nonce()
	if code, reply, hdr := f.post("read", f.token(nil), replayed, time.Now(), calls.AgentCall{}); code != http.StatusOK || reply.Error != "" || reply.Observation.Home != f.home || hdr.Get(calls.HeaderAgentToken) != f.ownToken {
		t.Fatalf("the operator's read: %d %+v, agent token %q", code, reply, hdr.Get(calls.HeaderAgentToken))
	}
	for name, tc := range map[string]struct {
		token string
		nonce string
		at    time.Time
		want  int
	}{
		"no token":         {"", nonce(), time.Now(), http.StatusUnauthorized},
		"another audience": {f.token(func(t *satokentest.Token) { t.Audience = satoken.OperatorAudience }), nonce(), time.Now(), http.StatusUnauthorized},
		"for every agent":  {f.token(func(t *satokentest.Token) { t.Audience = satoken.AgentAudience }), nonce(), time.Now(), http.StatusUnauthorized},
		"for another pod":  {f.token(func(t *satokentest.Token) { t.Audience = satoken.AgentAudienceOf("team-a", "gw-1-uid") }), nonce(), time.Now(), http.StatusUnauthorized},
		"for that pod's name in another namespace": {f.token(func(t *satokentest.Token) { t.Audience = satoken.AgentAudienceOf("team-b", "gw-0-uid") }), nonce(), time.Now(), http.StatusUnauthorized},
		"expired":              {f.token(func(t *satokentest.Token) { t.Expiry = time.Now().Add(-time.Minute) }), nonce(), time.Now(), http.StatusUnauthorized},
		"another identity":     {f.token(func(t *satokentest.Token) { t.Namespace = "team-a" }), nonce(), time.Now(), http.StatusUnauthorized},
		"replayed":             {f.token(nil), replayed, time.Now(), http.StatusUnauthorized},
		"sent two minutes ago": {f.token(nil), nonce(), time.Now().Add(-2 * time.Minute), http.StatusUnauthorized},
		"no nonce":             {f.token(nil), "", time.Now(), http.StatusUnauthorized},
	} {
		for _, op := range []string{"project", "clear", "read"} {
			n := tc.nonce
			if name != "replayed" {
				n = fmt.Sprintf("%s-%s", op, tc.nonce)
				if tc.nonce == "" {
					n = ""
				}
			}
			if code, _, _ := f.post(op, tc.token, n, tc.at, projectCall("uid-1")); code != tc.want {
				t.Errorf("%s: %s answered %d, want %d", name, op, code, tc.want)
			}
		}
	}
	if _, err := os.Lstat(filepath.Join(f.home, marker.Filename)); !os.IsNotExist(err) {
		t.Errorf("a refused call wrote a marker: %v", err)
	}
}

// Without a shared PID namespace the agent's /proc/1 is its own container's:
// it refuses to stamp a marker with that epoch, and says why.
func TestNoMarkerWithAnEpochThatIsNotTheGateways(t *testing.T) {
	f := newFixture(t)
	if f.server.shared {
		t.Skip("this test process shares a pod's PID namespace")
	}
	_, reply, _ := f.post("project", f.token(nil), nonce(), time.Now(), projectCall("uid-1"))
	if !strings.Contains(reply.Error, "shareProcessNamespace: true") || reply.Observation.Marker.State != calls.FileAbsent {
		t.Fatalf("project: %+v", reply)
	}
	if _, reply, _ = f.post("clear", f.token(nil), nonce(), time.Now(), calls.AgentCall{OwnerUID: "uid-1"}); reply.Error != "" || reply.Observation.Outcome != calls.Absent {
		t.Errorf("clear must still work: %+v", reply)
	}
}

func TestAHomeOtherThanTheAgentsIsRefused(t *testing.T) {
	f := newFixture(t)
	f.server.shared = true
	call := projectCall("uid-1")
	call.Home = "/data/hermes"
	if _, reply, _ := f.post("project", f.token(nil), nonce(), time.Now(), call); !strings.Contains(reply.Error, "mount the gateway's HERMES_HOME at the same path") {
		t.Fatalf("project: %+v", reply)
	}
	call.Home = f.home
	if _, reply, _ := f.post("project", f.token(nil), nonce(), time.Now(), call); reply.Error != "" || reply.Observation.Outcome != calls.Written {
		t.Fatalf("project naming the agent's own home: %+v", reply)
	}
}

// startGateway starts a process that plays the gateway and writes its
// state file naming itself, as upstream's gateway does.
func startGateway(t *testing.T, home, state string) *exec.Cmd {
	t.Helper()
	gw := exec.Command("sleep", "600")
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.Process.Kill(); _ = gw.Wait() })
	p, _, err := readProc("/proc", gw.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	content := fmt.Sprintf(`{"gateway_state": %q, "active_agents": 0, "pid": %d, "start_time": %s}`, state, p.PID, p.Start)
	if err := os.WriteFile(filepath.Join(home, marker.StateFilename), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return gw
}

// The marker goes the instant the gateway it was written for ends, with no
// operator in the path (NS-570 under a shared PID namespace).
func TestTheMarkerGoesWithTheGatewayItWasWrittenFor(t *testing.T) {
	f := newFixture(t)
	f.server.shared = true
	gw := startGateway(t, f.home, marker.StateRunning)
	if _, reply, _ := f.post("project", f.token(nil), nonce(), time.Now(), projectCall("uid-1")); reply.Error != "" || reply.Observation.Outcome != calls.Written {
		t.Fatalf("project: %+v", reply)
	}
	if err := gw.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = gw.Wait()
	testenv.Eventually(t, 5*time.Second, func() (bool, string) {
		_, err := os.Lstat(filepath.Join(f.home, marker.Filename))
		return os.IsNotExist(err), fmt.Sprintf("marker still there after its gateway ended: %v", err)
	})
}

// A marker written before the gateway ran (or found when the agent starts)
// is guarded once a gateway writes its state; someone else's marker is
// never removed.
func TestAMarkerWrittenBeforeTheGatewayIsGuardedOnceItRuns(t *testing.T) {
	f := newFixture(t)
	f.server.shared = true
	if _, reply, _ := f.post("project", f.token(nil), nonce(), time.Now(), projectCall("uid-1")); reply.Observation.Outcome != calls.Written {
		t.Fatalf("project: %+v", reply)
	}
	gw := startGateway(t, f.home, marker.StateDraining)
	f.server.ready.refresh(context.Background()) // as the watch does on the new state file
	_ = gw.Process.Kill()
	_ = gw.Wait()
	testenv.Eventually(t, 5*time.Second, func() (bool, string) {
		_, err := os.Lstat(filepath.Join(f.home, marker.Filename))
		return os.IsNotExist(err), fmt.Sprintf("marker still there after its gateway ended: %v", err)
	})

	dashboard := `{"action": "drain", "principal": "dashboard", "epoch": "x:1"}`
	if err := os.WriteFile(filepath.Join(f.home, marker.Filename), []byte(dashboard), 0o644); err != nil {
		t.Fatal(err)
	}
	gw = startGateway(t, f.home, marker.StateDraining)
	f.server.ready.refresh(context.Background())
	_ = gw.Process.Kill()
	_ = gw.Wait()
	f.server.ready.refresh(context.Background())
	if b, err := os.ReadFile(filepath.Join(f.home, marker.Filename)); err != nil || string(b) != dashboard {
		t.Errorf("someone else's marker: %q %v", b, err)
	}
}

// The probe follows gateway_state.json as it changes, with no request
// reading the file, and says since when its answer holds; with no inotify
// instance left it reads the home every second instead.
func TestTheProbeFollowsTheGatewaysState(t *testing.T) {
	for _, tc := range []struct {
		name       string
		newWatcher func() (*fsnotify.Watcher, error)
	}{
		{"watched", fsnotify.NewWatcher},
		{"no inotify instance left", func() (*fsnotify.Watcher, error) { return nil, syscall.EMFILE }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.server.ready.newWatcher = tc.newWatcher
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() { _ = f.server.WatchGateway(ctx) }()
			probe := httptest.NewServer(f.server.ProbeHandler())
			defer probe.Close()
			var since time.Time
			waitCode := func(want int) {
				t.Helper()
				testenv.Eventually(t, 5*time.Second, func() (bool, string) {
					resp, err := http.Get(probe.URL + "/readyz")
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					b, _ := io.ReadAll(resp.Body)
					if resp.StatusCode != want {
						return false, fmt.Sprintf("/readyz %d %q, want %d", resp.StatusCode, b, want)
					}
					at, err := SinceOf(string(b))
					if err != nil || !at.After(since) {
						t.Fatalf("/readyz %q: since %s (%v), want a time after %s", b, at, err, since)
					}
					since = at
					return true, ""
				})
			}
			waitCode(http.StatusServiceUnavailable) // no state file yet
			gw := startGateway(t, f.home, marker.StateRunning)
			waitCode(http.StatusOK)
			startGateway(t, f.home, marker.StateDraining)
			waitCode(http.StatusServiceUnavailable)
			startGateway(t, f.home, marker.StateRunning)
			waitCode(http.StatusOK)
			_ = gw // the state names the last one started
		})
	}
}

// Asked to take the pod out of traffic first, the agent reports it not
// ready at once and writes nothing; a call after its settle time writes the
// marker, and the pod stays out until the gateway drains; removing the
// marker ends the hold.
func TestOutOfTrafficBeforeTheMarker(t *testing.T) {
	f := newFixture(t)
	f.server.shared = true
	f.server.opts.SettleTime = 300 * time.Millisecond
	startGateway(t, f.home, marker.StateRunning)
	f.server.ready.refresh(context.Background())
	probe := httptest.NewServer(f.server.ProbeHandler())
	defer probe.Close()
	readyz := func() int {
		t.Helper()
		resp, err := http.Get(probe.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := readyz(); code != http.StatusOK {
		t.Fatalf("/readyz %d for a running gateway", code)
	}
	call := projectCall("uid-1")
	call.LeaveTraffic = true
	if _, reply, _ := f.post("project", f.token(nil), nonce(), time.Now(), call); reply.Error != "" || reply.Observation.Outcome != calls.LeavingTraffic || reply.Observation.Marker.State != calls.FileAbsent {
		t.Fatalf("project, out of traffic first: %+v", reply)
	}
	if code := readyz(); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz %d while leaving traffic, want 503", code)
	}
	testenv.Eventually(t, 5*time.Second, func() (bool, string) {
		_, reply, _ := f.post("project", f.token(nil), nonce(), time.Now(), call)
		return reply.Observation.Outcome == calls.Written, fmt.Sprintf("project after the settle time: %+v", reply)
	})
	f.server.ready.refresh(context.Background()) // the gateway has not noticed the marker yet
	if code := readyz(); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz %d with the marker written and the gateway still running, want 503", code)
	}
	if _, reply, _ := f.post("clear", f.token(nil), nonce(), time.Now(), calls.AgentCall{OwnerUID: "uid-1"}); reply.Observation.Outcome != calls.Cleared {
		t.Fatalf("clear: %+v", reply)
	}
	if code := readyz(); code != http.StatusOK {
		t.Errorf("/readyz %d after the marker was removed, want 200", code)
	}
}
