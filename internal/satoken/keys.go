package satoken

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"k8s.io/client-go/rest"
)

// Keys are the API server's token signing keys, held in memory. Anyone who
// can reach an agent can send it tokens, so nothing a caller sends decides
// how often the keys are fetched: a token naming a key not held causes a
// fetch at most once per refetchAfter, and the keys are fetched again when
// older than refreshAfter, so that a key the API server no longer publishes
// stops counting. A fetch that fails keeps the keys held (an API server
// outage must not stop the calls of a drain already under way).
type Keys struct {
	fetch func(context.Context) ([]jose.JSONWebKey, error)
	now   func() time.Time

	mu        sync.Mutex
	keys      []jose.JSONWebKey
	fetched   time.Time // the last fetch that succeeded
	attempted time.Time // the last fetch tried
	fetching  bool
}

const (
	// refetchAfter bounds how often any caller can make the keys be
	// fetched.
	refetchAfter = time.Minute
	// refreshAfter is the age at which the keys are fetched again.
	refreshAfter = 10 * time.Minute
	// fetchTimeout bounds one fetch.
	fetchTimeout = 10 * time.Second
	// maxKeySet bounds the key set read (a cluster publishes a few keys).
	maxKeySet = 1 << 20
)

// NewKeys holds the keys fetch returns. now is the clock (nil: time.Now).
func NewKeys(fetch func(context.Context) ([]jose.JSONWebKey, error), now func() time.Time) *Keys {
	if now == nil {
		now = time.Now
	}
	return &Keys{fetch: fetch, now: now}
}

// signingAlgorithms are those of ServiceAccount tokens.
var signingAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256}

// VerifySignature implements oidc.KeySet: it returns the token's payload if
// one of the keys signed it.
func (k *Keys) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSigned(raw, signingAlgorithms)
	if err != nil {
		return nil, fmt.Errorf("malformed token: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("malformed token: not one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	for _, key := range k.current(ctx, kid) {
		if kid != "" && key.KeyID != kid {
			continue
		}
		if payload, err := jws.Verify(key.Key); err == nil {
			return payload, nil
		}
	}
	return nil, errors.New("failed to verify signature: no key of the API server's signed the token")
}

// current returns the keys, fetched first when they are old or do not hold
// kid, and no fetch was tried within refetchAfter.
func (k *Keys) current(ctx context.Context, kid string) []jose.JSONWebKey {
	k.mu.Lock()
	now := k.now()
	stale := now.Sub(k.fetched) >= refreshAfter
	unknown := kid != "" && !slices.ContainsFunc(k.keys, func(key jose.JSONWebKey) bool { return key.KeyID == kid })
	if (!stale && !unknown) || k.fetching || now.Sub(k.attempted) < refetchAfter {
		defer k.mu.Unlock()
		return k.keys
	}
	k.attempted, k.fetching = now, true
	k.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	keys, err := k.fetch(ctx)
	cancel()

	k.mu.Lock()
	defer k.mu.Unlock()
	k.fetching = false
	if err == nil {
		k.keys, k.fetched = keys, k.now()
	}
	return k.keys
}

// Discover returns the issuer the API server names in its OIDC discovery
// document and its signing keys, reached with cfg. The keys come from the
// API server itself (/openid/v1/jwks), whatever jwks_uri says: it may point
// outside the cluster. It makes one request, bounded by fetchTimeout; the
// keys are fetched when first needed.
func Discover(ctx context.Context, cfg *rest.Config) (issuer string, keys *Keys, err error) {
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return "", nil, err
	}
	host := strings.TrimSuffix(cfg.Host, "/")
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if err := getJSON(ctx, client, host+"/.well-known/openid-configuration", &doc); err != nil {
		return "", nil, fmt.Errorf("the API server's OIDC discovery: %w", err)
	}
	if doc.Issuer == "" {
		return "", nil, errors.New("the API server's OIDC discovery names no issuer")
	}
	return doc.Issuer, NewKeys(func(ctx context.Context) ([]jose.JSONWebKey, error) {
		var set jose.JSONWebKeySet
		err := getJSON(ctx, client, host+"/openid/v1/jwks", &set)
		return set.Keys, err
	}, nil), nil
}

// getJSON decodes what url answers, bounded in time and size.
func getJSON(ctx context.Context, client *http.Client, url string, into any) error {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, maxKeySet)).Decode(into)
}
