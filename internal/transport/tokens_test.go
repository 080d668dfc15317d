package transport_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/hermes-agent/hermes-drain-operator/internal/transport"
)

// tokenAPI plays the API server's TokenRequest: it counts requests, and
// answers with the audience and a serial number.
type tokenAPI struct {
	mu       sync.Mutex
	requests int
	fail     bool
	now      func() time.Time
}

func (a *tokenAPI) react(action k8stesting.Action) (bool, runtime.Object, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requests++
	if a.fail {
		return true, nil, errors.New("the API server is down")
	}
	req := action.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenRequest)
	if action.GetNamespace() != "hermes-drain-system" || action.(k8stesting.CreateAction).GetSubresource() != "token" {
		return true, nil, fmt.Errorf("a token of %s", action.GetNamespace())
	}
	life := time.Duration(*req.Spec.ExpirationSeconds) * time.Second
	req.Status = authenticationv1.TokenRequestStatus{
		Token:               fmt.Sprintf("%s#%d", req.Spec.Audiences[0], a.requests),
		ExpirationTimestamp: metav1.NewTime(a.now().Add(life)),
	}
	return true, req, nil
}

// Each pod gets a token whose audience names it; a token is kept for 80%
// of its life, then renewed; one renewal serves callers that ask at once;
// a failed renewal leaves the held token in use until it expires.
func TestEachPodGetsItsOwnTokenRequestedOncePerLife(t *testing.T) {
	now := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	api := &tokenAPI{now: clock}
	cs := fake.NewClientset()
	cs.PrependReactor("create", "serviceaccounts", api.react)
	tokens, err := transport.NewPodTokens(cs.CoreV1(), "hermes-drain-system/operator", time.Hour, clock)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	token := func(ns, uid string) string {
		t.Helper()
		tok, err := tokens.Token(ctx, ns, uid)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	a, b := token("team-a", "uid-a"), token("team-a", "uid-b")
	if a != "hermes-drain-agent/team-a/uid-a#1" || b != "hermes-drain-agent/team-a/uid-b#2" {
		t.Fatalf("tokens %q and %q: want one for each pod's audience", a, b)
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() { token("team-a", "uid-a") })
	}
	wg.Wait()
	if api.requests != 2 {
		t.Errorf("%d TokenRequests for two pods within a token's life, want 2", api.requests)
	}

	now = now.Add(47 * time.Minute)
	if tok := token("team-a", "uid-a"); tok != a {
		t.Errorf("renewed before 80%% of its life: %q", tok)
	}
	now = now.Add(2 * time.Minute)
	api.fail = true
	if tok := token("team-a", "uid-a"); tok != a {
		t.Errorf("a failed renewal: %q, want the held token while it is valid", tok)
	}
	api.fail = false
	if tok := token("team-a", "uid-a"); tok == a {
		t.Error("not renewed past 80% of its life")
	}
	now = now.Add(time.Hour)
	api.fail = true
	if _, err := tokens.Token(ctx, "team-a", "uid-b"); err == nil {
		t.Error("an expired token was given")
	}
}

func TestPodTokensRefuseBadSettings(t *testing.T) {
	for account, lifetime := range map[string]time.Duration{"operator": time.Hour, "ns/": time.Hour, "ns/sa": 5 * time.Minute} {
		if _, err := transport.NewPodTokens(fake.NewClientset().CoreV1(), account, lifetime, nil); err == nil {
			t.Errorf("%q for %s accepted", account, lifetime)
		}
	}
}
