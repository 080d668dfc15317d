// Package satoken authenticates the operator and the agent to each other
// with ServiceAccount tokens, verified locally, as Strimzi's agent does: the
// signature against the keys the API server publishes (Keys), the issuer,
// the audience, the expiry, and who the token speaks for. No TokenReview, no
// API call per request. An agent proves itself with its pod's projected
// token, which the kubelet rotates; the operator proves itself to each
// agent with a token whose audience names that agent's pod alone
// (transport.PodTokens), so that a pod that poses as an agent learns
// nothing that opens another.
package satoken

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
)

// Audiences: a token for an agent is useless against the API server or
// the operator, and the other way round.
const (
	// AgentAudience prefixes the audience of the operator's tokens for
	// agents: AgentAudienceOf names one pod.
	AgentAudience    = "hermes-drain-agent"
	OperatorAudience = "hermes-drain-operator"
)

// AgentAudienceOf is the audience of the operator's tokens for the agent of
// the pod with uid in namespace: the agent of any other pod refuses them.
func AgentAudienceOf(namespace, podUID string) string {
	return AgentAudience + "/" + namespace + "/" + podUID
}

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
	// accounts are the only ServiceAccounts whose tokens are verified
	// (nil: any).
	accounts map[string]bool

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

// maxToken bounds a token's length: a ServiceAccount token is one or two
// KiB, and anyone may send one.
const maxToken = 16 << 10

// NewVerifier verifies tokens of issuer, for audience, signed by keys, of
// the ServiceAccounts accounts (namespace/name; none: of any). now is the
// clock (nil: time.Now).
func NewVerifier(issuer string, keys oidc.KeySet, audience string, now func() time.Time, accounts ...string) *Verifier {
	if now == nil {
		now = time.Now
	}
	var allowed map[string]bool
	for _, a := range accounts {
		if allowed == nil {
			allowed = map[string]bool{}
		}
		allowed[a] = true
	}
	return &Verifier{now: now, accounts: allowed, verified: map[[sha256.Size]byte]verified{}, oidc: oidc.NewVerifier(issuer, keys, &oidc.Config{
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

// Verify checks a token and says whose it is. A token too long to be a
// ServiceAccount's, or of an account not allowed, is refused before any
// signature check or key fetch.
func (v *Verifier) Verify(ctx context.Context, raw string) (Identity, error) {
	if len(raw) > maxToken {
		return Identity{}, fmt.Errorf("a token of %d bytes: more than a ServiceAccount token's %d", len(raw), maxToken)
	}
	if v.accounts != nil {
		claims, err := unverifiedClaims(raw)
		if err != nil {
			return Identity{}, err
		}
		if !v.accounts[claims.account()] {
			return Identity{}, fmt.Errorf("a token of %q, not of an allowed ServiceAccount", claims.Subject)
		}
	}
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
	id, err := c.identity()
	return id, tok.Expiry, err
}

// account is the ServiceAccount (namespace/name) the claims' subject
// names, or "".
func (c kubernetesClaims) account() string {
	rest, ok := strings.CutPrefix(c.Subject, "system:serviceaccount:")
	ns, name, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 {
		return ""
	}
	return ns + "/" + name
}

// identity is whose the claims say the token is.
func (c kubernetesClaims) identity() (Identity, error) {
	k := c.Kubernetes
	if k.Namespace == "" || k.ServiceAccount.Name == "" || c.Subject != "system:serviceaccount:"+k.Namespace+":"+k.ServiceAccount.Name {
		return Identity{}, fmt.Errorf("not a ServiceAccount token (subject %q)", c.Subject)
	}
	id := Identity{ServiceAccount: k.Namespace + "/" + k.ServiceAccount.Name}
	if k.Pod != nil {
		id.PodName, id.PodUID = k.Pod.Name, k.Pod.UID
	}
	return id, nil
}

// unverifiedClaims reads a token's claims without checking its signature.
func unverifiedClaims(raw string) (kubernetesClaims, error) {
	var c kubernetesClaims
	jws, err := jose.ParseSigned(raw, signingAlgorithms)
	if err != nil {
		return c, fmt.Errorf("malformed token: %w", err)
	}
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &c); err != nil {
		return c, fmt.Errorf("malformed token claims: %w", err)
	}
	return c, nil
}

// OwnPod is the pod a token the kubelet projected into this container
// speaks for: the agent's own, read from its token file to know the
// audience the operator's tokens for it carry. The file is the kubelet's,
// so its signature is not checked.
func OwnPod(f File) (namespace, podUID string, err error) {
	raw, err := f.Token()
	if err != nil {
		return "", "", err
	}
	if len(raw) > maxToken {
		return "", "", fmt.Errorf("%s holds %d bytes: not a ServiceAccount token", f.Path, len(raw))
	}
	c, err := unverifiedClaims(raw)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", f.Path, err)
	}
	id, err := c.identity()
	if err != nil || id.PodUID == "" {
		return "", "", fmt.Errorf("%s is not a token bound to a pod (a projected serviceAccountToken volume): %v", f.Path, err)
	}
	return c.Kubernetes.Namespace, id.PodUID, nil
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
