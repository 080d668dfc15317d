package satoken_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/hermes-agent/hermes-drain-operator/internal/satoken"
	"github.com/hermes-agent/hermes-drain-operator/internal/satoken/satokentest"
)

// publisher plays the API server's /openid/v1/jwks: it counts fetches and
// serves what it is told.
type publisher struct {
	keys    []jose.JSONWebKey
	fail    bool
	fetches int
	bounded bool // every fetch had a deadline
}

func (p *publisher) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	p.fetches++
	_, p.bounded = ctx.Deadline()
	if p.fail {
		return nil, errors.New("the API server is down")
	}
	return p.keys, nil
}

func newIssuer(t *testing.T) *satokentest.Issuer {
	t.Helper()
	i, err := satokentest.NewIssuer()
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func mint(t *testing.T, i *satokentest.Issuer, now time.Time) string {
	t.Helper()
	tok, err := i.Mint(satokentest.Token{Audience: satoken.AgentAudience, Namespace: "ns", Account: "sa", Expiry: now.Add(5 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Nothing a caller sends decides how often the keys are fetched: a token
// naming an unknown key causes a fetch at most once a minute, a known key
// none until the keys are ten minutes old; every fetch is bounded in time.
func TestCallersCannotDriveKeyFetches(t *testing.T) {
	now := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	api, stranger := newIssuer(t), newIssuer(t)
	pub := &publisher{keys: []jose.JSONWebKey{api.JWK()}}
	keys := satoken.NewKeys(pub.fetch, clock)
	ctx := context.Background()

	good := mint(t, api, now)
	if _, err := keys.VerifySignature(ctx, good); err != nil || pub.fetches != 1 || !pub.bounded {
		t.Fatalf("the first token: %v, %d fetches (bounded: %v), want 1 bounded", err, pub.fetches, pub.bounded)
	}
	forged := mint(t, stranger, now)
	for range 100 {
		if _, err := keys.VerifySignature(ctx, forged); err == nil {
			t.Fatal("a token of another key was verified")
		}
		if _, err := keys.VerifySignature(ctx, good); err != nil {
			t.Fatal(err)
		}
	}
	if pub.fetches != 1 {
		t.Errorf("%d fetches after 100 forged tokens within a minute, want 1", pub.fetches)
	}
	now = now.Add(61 * time.Second)
	_, _ = keys.VerifySignature(ctx, forged)
	if pub.fetches != 2 {
		t.Errorf("%d fetches a minute later, want 2", pub.fetches)
	}
}

// A key the API server stops publishing stops counting once the keys are
// refreshed; a refresh that fails keeps the keys held.
func TestARetiredKeyExpires(t *testing.T) {
	now := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	old, current := newIssuer(t), newIssuer(t)
	pub := &publisher{keys: []jose.JSONWebKey{old.JWK(), current.JWK()}}
	keys := satoken.NewKeys(pub.fetch, clock)
	ctx := context.Background()
	byOld := mint(t, old, now)
	if _, err := keys.VerifySignature(ctx, byOld); err != nil {
		t.Fatal(err)
	}

	pub.keys, pub.fail = []jose.JSONWebKey{current.JWK()}, true
	now = now.Add(11 * time.Minute)
	if _, err := keys.VerifySignature(ctx, byOld); err != nil {
		t.Errorf("the keys were dropped when a refresh failed: %v", err)
	}
	pub.fail = false
	now = now.Add(time.Minute)
	if _, err := keys.VerifySignature(ctx, byOld); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Errorf("a retired key still verifies: %v", err)
	}
	if _, err := keys.VerifySignature(ctx, mint(t, current, now)); err != nil {
		t.Errorf("the current key: %v", err)
	}
}

// A verifier for given ServiceAccounts refuses a token of any other, or a
// token too long to be one, before any signature check or key fetch.
func TestOtherAccountsAreRefusedBeforeAnyCrypto(t *testing.T) {
	now := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	api, stranger := newIssuer(t), newIssuer(t)
	pub := &publisher{keys: []jose.JSONWebKey{api.JWK()}}
	v := satoken.NewVerifier(satokentest.IssuerURL, satoken.NewKeys(pub.fetch, func() time.Time { return now }), satoken.AgentAudience,
		func() time.Time { return now }, "hermes-drain-system/operator")
	for name, raw := range map[string]string{
		"another account's": mint(t, stranger, now),
		"a megabyte":        strings.Repeat("a", 1<<20),
		"not a token":       "x.y.z",
	} {
		if _, err := v.Verify(context.Background(), raw); err == nil {
			t.Errorf("%s token accepted", name)
		}
	}
	if pub.fetches != 0 {
		t.Errorf("%d key fetches for tokens of no allowed account", pub.fetches)
	}
	op, err := api.Mint(satokentest.Token{Audience: satoken.AgentAudience, Namespace: "hermes-drain-system", Account: "operator", Expiry: now.Add(5 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if id, err := v.Verify(context.Background(), op); err != nil || id.ServiceAccount != "hermes-drain-system/operator" {
		t.Errorf("the operator's token: %+v %v", id, err)
	}
}
