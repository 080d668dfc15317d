// Package satoken authenticates the operator and the agent to each other
// with projected ServiceAccount tokens, verified locally, as Strimzi's agent
// does: the signature against the keys the API server publishes (fetched
// once, refreshed when a token names an unknown key), the issuer, the
// audience, the expiry, and who the token speaks for. No TokenReview, no API
// call per request. Each side reads its own token from a projected volume
// the kubelet rotates.
package satoken

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"k8s.io/client-go/rest"
)

// Audiences: a token for the agent is useless against the API server or
// the operator, and the other way round.
const (
	AgentAudience    = "hermes-drain-agent"
	OperatorAudience = "hermes-drain-operator"
)

// Identity is who a verified token speaks for.
type Identity struct {
	// ServiceAccount is namespace/name.
	ServiceAccount string
	// PodName and PodUID are the pod the token is bound to ("" when it is
	// not bound to a pod).
	PodName string
	PodUID  string
}

// Verifier verifies tokens for one audience. A token it verified is
// remembered for a minute (and never past its expiry), as the API server's
// own token cache does: a signature check costs more than the rest of a
// call, and each side sends the same token until the kubelet rotates it.
type Verifier struct {
	oidc *oidc.IDTokenVerifier
	now  func() time.Time

	mu       sync.Mutex
	verified map[[sha256.Size]byte]verified
}

type verified struct {
	id    Identity
	until time.Time
}

// rememberFor bounds how long a verified token is taken on trust; a key
// the API server stops publishing stops counting within it.
const rememberFor = time.Minute

// maxRemembered bounds the verified tokens remembered (one per agent for
// the operator): when it is reached, they are forgotten and verified again.
const maxRemembered = 20000

// NewVerifier verifies tokens of issuer, for audience, signed by keys.
// now is the clock (nil: time.Now).
func NewVerifier(issuer string, keys oidc.KeySet, audience string, now func() time.Time) *Verifier {
	if now == nil {
		now = time.Now
	}
	return &Verifier{now: now, verified: map[[sha256.Size]byte]verified{}, oidc: oidc.NewVerifier(issuer, keys, &oidc.Config{
		ClientID:             audience,
		SupportedSigningAlgs: []string{oidc.RS256, oidc.ES256},
		Now:                  now,
	})}
}

// kubernetesClaims is the part of a ServiceAccount token that says whose it is.
type kubernetesClaims struct {
	Subject    string `json:"sub"`
	Kubernetes struct {
		Namespace      string `json:"namespace"`
		ServiceAccount struct {
			Name string `json:"name"`
		} `json:"serviceaccount"`
		Pod *struct {
			Name string `json:"name"`
			UID  string `json:"uid"`
		} `json:"pod"`
	} `json:"kubernetes.io"`
}

// Verify checks a token and says whose it is.
func (v *Verifier) Verify(ctx context.Context, raw string) (Identity, error) {
	key, now := sha256.Sum256([]byte(raw)), v.now()
	v.mu.Lock()
	seen, ok := v.verified[key]
	v.mu.Unlock()
	if ok && now.Before(seen.until) {
		return seen.id, nil
	}
	id, expiry, err := v.verify(ctx, raw)
	if err != nil {
		return Identity{}, err
	}
	v.mu.Lock()
	if len(v.verified) >= maxRemembered {
		clear(v.verified)
	}
	until := now.Add(rememberFor)
	if expiry.Before(until) {
		until = expiry
	}
	v.verified[key] = verified{id, until}
	v.mu.Unlock()
	return id, nil
}

// verify checks a token's signature and claims.
func (v *Verifier) verify(ctx context.Context, raw string) (Identity, time.Time, error) {
	tok, err := v.oidc.Verify(ctx, raw)
	if err != nil {
		return Identity{}, time.Time{}, err
	}
	var c kubernetesClaims
	if err := tok.Claims(&c); err != nil {
		return Identity{}, time.Time{}, fmt.Errorf("token claims: %w", err)
	}
	k := c.Kubernetes
	if k.Namespace == "" || k.ServiceAccount.Name == "" || c.Subject != "system:serviceaccount:"+k.Namespace+":"+k.ServiceAccount.Name {
		return Identity{}, time.Time{}, fmt.Errorf("not a ServiceAccount token (subject %q)", c.Subject)
	}
	id := Identity{ServiceAccount: k.Namespace + "/" + k.ServiceAccount.Name}
	if k.Pod != nil {
		id.PodName, id.PodUID = k.Pod.Name, k.Pod.UID
	}
	return id, tok.Expiry, nil
}

// FromAPIServer returns the issuer and the signing keys the API server
// publishes (its OIDC discovery document and /openid/v1/jwks), reached with
// cfg. The keys are fetched when first needed and again when a token names
// a key not yet seen.
func FromAPIServer(ctx context.Context, cfg *rest.Config) (issuer string, keys oidc.KeySet, err error) {
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return "", nil, err
	}
	host := strings.TrimSuffix(cfg.Host, "/")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, host+"/.well-known/openid-configuration", nil)
	if err != nil {
		return "", nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", nil, fmt.Errorf("the API server's OIDC discovery: %w", err)
	}
	defer resp.Body.Close()
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if resp.StatusCode != http.StatusOK {
		return "", nil, fmt.Errorf("the API server's OIDC discovery: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || doc.Issuer == "" {
		return "", nil, fmt.Errorf("the API server's OIDC discovery names no issuer (%v)", err)
	}
	// The keys come from the API server itself, whatever jwks_uri says
	// (it may point outside the cluster).
	return doc.Issuer, oidc.NewRemoteKeySet(oidc.ClientContext(context.WithoutCancel(ctx), client), host+"/openid/v1/jwks"), nil
}

// File is a token in a file the kubelet rotates: read again when it changes.
type File struct {
	Path string
}

// Token returns the file's current token.
func (f File) Token() (string, error) {
	b, err := os.ReadFile(f.Path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", errors.New(f.Path + " is empty")
	}
	return tok, nil
}
