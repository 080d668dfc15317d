package satoken_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/hermes-agent/hermes-drain-operator/internal/satoken"
	"github.com/hermes-agent/hermes-drain-operator/internal/satoken/satokentest"
)

func TestOnlyAValidTokenForTheAudienceSaysWhoseItIs(t *testing.T) {
	now := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	issuer, err := satokentest.NewIssuer()
	if err != nil {
		t.Fatal(err)
	}
	other, err := satokentest.NewIssuer()
	if err != nil {
		t.Fatal(err)
	}
	v := satoken.NewVerifier(satokentest.IssuerURL, issuer.Keys(), satoken.AgentAudience, func() time.Time { return now })
	good := satokentest.Token{Audience: satoken.AgentAudience, Namespace: "hermes-drain-system", Account: "operator",
		PodName: "operator-0", PodUID: "pod-uid", Expiry: now.Add(10 * time.Minute)}

	tok, err := issuer.Mint(good)
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Verify(context.Background(), tok)
	if err != nil || id != (satoken.Identity{ServiceAccount: "hermes-drain-system/operator", PodName: "operator-0", PodUID: "pod-uid"}) {
		t.Fatalf("a good token: %+v %v", id, err)
	}

	for name, tc := range map[string]struct {
		mutate func(*satokentest.Token)
		by     *satokentest.Issuer
		want   string
	}{
		"another audience (the API server's)": {mutate: func(t *satokentest.Token) { t.Audience = "https://kubernetes.default.svc" }, want: "audience"},
		"expired":                             {mutate: func(t *satokentest.Token) { t.Expiry = now.Add(-time.Second) }, want: "expired"},
		"another issuer":                      {mutate: func(t *satokentest.Token) { t.Issuer = "https://evil.example" }, want: "different provider"},
		"signed by another key":               {by: other, want: "signature"},
		"not a ServiceAccount's":              {mutate: func(t *satokentest.Token) { t.Subject = "admin" }, want: "not a ServiceAccount token"},
	} {
		t.Run(name, func(t *testing.T) {
			spec := good
			if tc.mutate != nil {
				tc.mutate(&spec)
			}
			by := issuer
			if tc.by != nil {
				by = tc.by
			}
			tok, err := by.Mint(spec)
			if err != nil {
				t.Fatal(err)
			}
			if id, err := v.Verify(context.Background(), tok); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("accepted as %+v, or refused for another reason: %v (want %q)", id, err, tc.want)
			}
		})
	}
	if _, err := v.Verify(context.Background(), "not.a.token"); err == nil {
		t.Error("garbage accepted")
	}
}

// A verified token is remembered, but not past its expiry nor for more
// than a minute.
func TestAVerifiedTokenIsRememberedWithinBounds(t *testing.T) {
	now := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	issuer, err := satokentest.NewIssuer()
	if err != nil {
		t.Fatal(err)
	}
	counting := &countingKeys{KeySet: issuer.Keys()}
	v := satoken.NewVerifier(satokentest.IssuerURL, counting, satoken.AgentAudience, func() time.Time { return now })
	tok, err := issuer.Mint(satokentest.Token{Audience: satoken.AgentAudience, Namespace: "ns", Account: "sa", Expiry: now.Add(90 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	verify := func() {
		t.Helper()
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	verify()
	verify()
	if counting.n != 1 {
		t.Errorf("%d signature checks for one token, want 1", counting.n)
	}
	now = now.Add(61 * time.Second) // remembered for a minute at most
	verify()
	if counting.n != 2 {
		t.Errorf("%d signature checks after a minute, want 2", counting.n)
	}
	now = now.Add(30 * time.Second) // past its expiry
	if _, err := v.Verify(context.Background(), tok); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("an expired token remembered: %v", err)
	}
}

// countingKeys counts signature checks.
type countingKeys struct {
	oidc.KeySet
	n int
}

func (k *countingKeys) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	k.n++
	return k.KeySet.VerifySignature(ctx, jwt)
}

// The agent learns its pod from its own projected token: one bound to a pod
// names it; any other token, or none, is refused with the reason.
func TestOwnPodIsTheOneTheTokenIsBoundTo(t *testing.T) {
	issuer, err := satokentest.NewIssuer()
	if err != nil {
		t.Fatal(err)
	}
	write := func(content string) satoken.File {
		path := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return satoken.File{Path: path}
	}
	expiry := time.Now().Add(time.Hour)
	bound, _ := issuer.Mint(satokentest.Token{Audience: satoken.OperatorAudience, Namespace: "team-a", Account: "gateway", PodName: "gw-0", PodUID: "uid-0", Expiry: expiry})
	if ns, uid, err := satoken.OwnPod(write(bound + "\n")); err != nil || ns != "team-a" || uid != "uid-0" {
		t.Errorf("a pod-bound token: %q %q %v", ns, uid, err)
	}
	unbound, _ := issuer.Mint(satokentest.Token{Audience: satoken.OperatorAudience, Namespace: "team-a", Account: "gateway", Expiry: expiry})
	for name, f := range map[string]satoken.File{
		"a token bound to no pod": write(unbound),
		"not a token":             write("agent-token"),
		"no file":                 {Path: filepath.Join(t.TempDir(), "missing")},
	} {
		if _, _, err := satoken.OwnPod(f); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
