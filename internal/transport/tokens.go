package transport

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"

	"github.com/hermes-agent/hermes-drain-operator/internal/options"
	"github.com/hermes-agent/hermes-drain-operator/internal/satoken"
)

// PodTokens gives the operator a token for the agent of each pod: a token
// of the operator's ServiceAccount (a TokenRequest) whose audience names
// that pod alone (satoken.AgentAudienceOf). Whoever declares a pod an agent's
// receives the token for that pod, and it opens no other agent. A token is
// kept until renewAt of its life has passed, so a pod called every few
// seconds costs one TokenRequest per lifetime × renewAt; a token whose
// renewal fails is used until it expires.
type PodTokens struct {
	accounts corev1client.ServiceAccountInterface
	name     string
	lifetime time.Duration
	now      func() time.Time

	requests singleflight.Group

	mu     sync.Mutex
	tokens map[string]podToken // by audience
	swept  time.Time
}

type podToken struct {
	token         string
	renew, expiry time.Time
}

const (
	// renewAt is the part of a token's life after which it is renewed.
	renewAt = 0.8
	// MinTokenLifetime is the shortest the API server issues.
	MinTokenLifetime = 10 * time.Minute
)

// TokenClientConfig sets cfg's rate limit for the client PodTokens request
// with. When the operator starts, every agent pod needs a token at once:
// the manager's client (20 requests a second, shared with everything else)
// would keep 10,000 pods' calls waiting for over eight minutes. The API
// server's priority and fairness bounds what the burst costs it.
func TokenClientConfig(cfg *rest.Config) *rest.Config {
	cfg.QPS, cfg.Burst = 200, 400
	return cfg
}

// NewPodTokens requests tokens of account (namespace/name), which may
// create tokens of itself only, valid for lifetime (at least
// MinTokenLifetime; the API server may shorten it). now is the clock (nil:
// time.Now).
func NewPodTokens(client corev1client.ServiceAccountsGetter, account string, lifetime time.Duration, now func() time.Time) (*PodTokens, error) {
	ns, name, _ := strings.Cut(account, "/")
	if err := options.ServiceAccount("the operator's ServiceAccount", account); err != nil || account == "" {
		return nil, fmt.Errorf("the operator's ServiceAccount %q must be namespace/name", account)
	}
	if lifetime < MinTokenLifetime {
		return nil, fmt.Errorf("a token lifetime of %s: the API server issues none shorter than %s", lifetime, MinTokenLifetime)
	}
	if now == nil {
		now = time.Now
	}
	return &PodTokens{accounts: client.ServiceAccounts(ns), name: name, lifetime: lifetime, now: now, tokens: map[string]podToken{}}, nil
}

// Token returns a token for the agent of the pod with uid in namespace.
func (p *PodTokens) Token(ctx context.Context, namespace, podUID string) (string, error) {
	audience := satoken.AgentAudienceOf(namespace, podUID)
	now := p.now()
	p.mu.Lock()
	held, ok := p.tokens[audience]
	p.mu.Unlock()
	if ok && now.Before(held.renew) {
		return held.token, nil
	}
	tok, err, _ := p.requests.Do(audience, func() (any, error) { return p.request(ctx, audience) })
	if err != nil {
		if ok && now.Before(held.expiry) {
			return held.token, nil
		}
		return "", fmt.Errorf("a token for the agent of pod uid %s: %w", podUID, err)
	}
	return tok.(string), nil
}

// request asks the API server for a token for audience and keeps it.
func (p *PodTokens) request(ctx context.Context, audience string) (string, error) {
	seconds := int64(p.lifetime / time.Second)
	requested := p.now()
	tr, err := p.accounts.CreateToken(ctx, p.name, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences: []string{audience}, ExpirationSeconds: &seconds,
	}}, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	expiry := tr.Status.ExpirationTimestamp.Time
	held := podToken{token: tr.Status.Token, expiry: expiry, renew: requested.Add(time.Duration(renewAt * float64(expiry.Sub(requested))))}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tokens[audience] = held
	p.sweep(requested)
	return held.token, nil
}

// sweep forgets expired tokens (those of pods gone), at most once a
// minute. It runs under p.mu.
func (p *PodTokens) sweep(now time.Time) {
	if now.Sub(p.swept) < time.Minute {
		return
	}
	p.swept = now
	for audience, t := range p.tokens {
		if !now.Before(t.expiry) {
			delete(p.tokens, audience)
		}
	}
}
