package transport_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/satoken"
	"github.com/hermes-agent/hermes-drain-operator/internal/satoken/satokentest"
)

// hostileAgent is a TLS server a pod runs to pose as its agent.
func hostileAgent(t *testing.T, handler http.HandlerFunc) (addr string) {
	t.Helper()
	srv := httptest.NewTLSServer(handler)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "https://")
}

var evil = calls.Pod{Namespace: "team-a", Name: "evil", Container: "gateway"}

// A pod that declares itself a gateway with an agent receives the
// operator's token for it: that token opens no other pod's agent.
func TestATokenCapturedByOnePodOpensNoOther(t *testing.T) {
	var captured atomic.Value
	addr := hostileAgent(t, func(w http.ResponseWriter, r *http.Request) {
		captured.Store(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		w.WriteHeader(http.StatusOK)
	})
	f := newAgentFixture(t, agentPod("evil", "evil-uid", addr))
	if _, err := f.router.Read(context.Background(), evil, ""); err == nil {
		t.Fatal("a server without the pod's token was believed")
	}
	token, _ := captured.Load().(string)
	if token == "" {
		t.Fatal("the operator sent no token to the pod it called")
	}

	// The captured token, replayed at once with a fresh nonce, against
	// gw-0's real agent.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // a test agent's certificate
	for _, op := range []string{"read", "project", "clear"} {
		req, _ := http.NewRequest(http.MethodPost, f.agentURL+calls.AgentPathPrefix+op, strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set(calls.HeaderNonce, calls.NewNonce())
		req.Header.Set(calls.HeaderTime, time.Now().UTC().Format(time.RFC3339Nano))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s with the token evil's agent was given: %s, want 401", op, resp.Status)
		}
	}
	// And the operator's own token for gw-0 still opens it.
	if _, err := f.router.Read(context.Background(), gw0, ""); err != nil {
		t.Errorf("the operator's read of gw-0: %v", err)
	}
}

// Whatever a pod posing as an agent sends back is bounded before it is
// held: its headers, its error text; and it cannot send the operator
// elsewhere with a redirect.
func TestAHostileAgentsReplyIsBounded(t *testing.T) {
	var redirected atomic.Bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { redirected.Store(true) }))
	t.Cleanup(elsewhere.Close)
	type hostile func(w http.ResponseWriter, r *http.Request, podToken string)
	for name, tc := range map[string]struct {
		handler hostile
		want    string
		maxLen  int
	}{
		"a megabyte of headers": {func(w http.ResponseWriter, _ *http.Request, _ string) {
			for i := range 16 {
				w.Header().Add("X-Pad", strings.Repeat("a", 64<<10)+string(rune('a'+i%26)))
			}
			w.WriteHeader(http.StatusOK)
		}, "header", 400},
		"a megabyte of error": {func(w http.ResponseWriter, _ *http.Request, podToken string) {
			w.Header().Set(calls.HeaderAgentToken, podToken)
			_, _ = w.Write([]byte(`{"error":"` + strings.Repeat("x", 1<<20-100) + `"}`))
		}, "xxx", 600},
		"a megabyte of refusal": {func(w http.ResponseWriter, _ *http.Request, _ string) {
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(strings.Repeat("y", 1<<20)))
		}, "refused the call", 600},
		"a redirect elsewhere": {func(w http.ResponseWriter, r *http.Request, _ string) {
			http.Redirect(w, r, elsewhere.URL, http.StatusTemporaryRedirect)
		}, "307", 600},
		"a token too long to be one": {func(w http.ResponseWriter, _ *http.Request, _ string) {
			w.Header().Set(calls.HeaderAgentToken, strings.Repeat("t", 20<<10))
			_, _ = w.Write([]byte(`{}`))
		}, "token was refused", 600},
	} {
		t.Run(name, func(t *testing.T) {
			var f *agentFixture
			addr := hostileAgent(t, func(w http.ResponseWriter, r *http.Request) {
				// A token the kubelet would give the hostile pod: valid,
				// bound to it.
				tok, err := f.issuer.Mint(satokentest.Token{Audience: satoken.OperatorAudience, Namespace: "team-a", Account: "gateway",
					PodName: "evil", PodUID: "evil-uid", Expiry: time.Now().Add(10 * time.Minute)})
				if err != nil {
					panic(err)
				}
				tc.handler(w, r, tok)
			})
			f = newAgentFixture(t, agentPod("evil", "evil-uid", addr))
			_, err := f.router.Read(context.Background(), evil, "")
			if err == nil || !strings.Contains(err.Error(), tc.want) || len(err.Error()) > tc.maxLen {
				t.Errorf("read: %.300v (%d bytes), want an error naming %q within %d bytes", err, len(errText(err)), tc.want, tc.maxLen)
			}
		})
	}
	if redirected.Load() {
		t.Error("the operator followed a hostile agent's redirect")
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
