package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/internal/satoken"
)

// Agent calls the hermes-drain-agent beside a gateway over HTTPS on the
// pod's IP: no pods/exec, no API server in the path. The operator proves
// who it is with a token whose audience names the pod called
// (PodTokens): anything listening at the pod's address, the agent
// or a pod posing as one, receives a token that opens that pod's agent
// alone. The agent proves it is the agent of the pod meant with its own
// pod-bound token in every reply, checked here against the pod's name and
// UID. The agent's certificate is made at its start and is not checked
// against a CA (there is none to check it against); the reply's token is
// what authenticates it (docs/agent.md: what this stops and what it does
// not). Whatever comes back is bounded before it is read.
type Agent struct {
	tokens   TokenSource
	verifier *satoken.Verifier
	client   *http.Client
}

// TokenSource gives the operator's token for the agent of one pod.
type TokenSource interface {
	Token(ctx context.Context, namespace, podUID string) (string, error)
}

// NewAgent returns a client that sends tokens from tokens, accepts replies
// whose token verifier accepts (audience hermes-drain-operator), and bounds
// each call by timeout.
func NewAgent(tokens TokenSource, verifier *satoken.Verifier, timeout time.Duration) *Agent {
	return &Agent{tokens: tokens, verifier: verifier, client: &http.Client{
		Timeout: timeout,
		// A redirect would make the operator call whatever URL an agent
		// names, from the operator's network position.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{
			// The agent is authenticated by its token, not its certificate.
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}, //nolint:gosec // see above
			// A reply's headers are a few lines and a token; Go's default
			// allows 10 MiB per reply, from every agent at once.
			MaxResponseHeaderBytes: maxReplyHeaders,
			// Idle connections are kept for the agents called most
			// recently only: one kept per agent would be most of the
			// operator's memory at 10,000 agents (docs/benchmarks.md).
			MaxIdleConns:        maxIdleAgentConns,
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     time.Minute,
		},
	}}
}

// maxIdleAgentConns bounds the idle connections kept to agents, all agents
// together.
const maxIdleAgentConns = 128

// AgentEndpoint is where a pod's agent listens, and which pod it must prove
// to be.
type AgentEndpoint struct {
	Pod  calls.Pod
	UID  string
	Addr string // host:port
}

// maxReply bounds a reply: an observation holds at most 1.3 MiB of files
// (program.go's maxOutput says which), base64-encoded, and a few fields.
const maxReply = 2 << 20

// maxReplyHeaders bounds a reply's headers: the agent's token (at most 16
// KiB, satoken's bound) and a few short ones.
const maxReplyHeaders = 32 << 10

// Call makes one of the three calls.
func (a *Agent) Call(ctx context.Context, ep AgentEndpoint, op calls.Op, call calls.AgentCall) (obs calls.Observation, err error) {
	defer countCall("agent", op, time.Now(), &obs, &err)
	unreachable := func(format string, args ...any) (calls.Observation, error) {
		return calls.Observation{}, calls.Failure(calls.Unreachable, fmt.Errorf(format, args...))
	}
	token, err := a.tokens.Token(ctx, ep.Pod.Namespace, ep.UID)
	if err != nil {
		return unreachable("the operator's token for the agent of %s: %w", ep.Pod, err)
	}
	body, err := json.Marshal(call)
	if err != nil {
		return unreachable("%w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+ep.Addr+calls.AgentPathPrefix+string(op), bytes.NewReader(body))
	if err != nil {
		return unreachable("%w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set(calls.HeaderNonce, calls.NewNonce())
	req.Header.Set(calls.HeaderTime, time.Now().UTC().Format(time.RFC3339Nano))
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return unreachable("agent of %s at %s: %w", ep.Pod, ep.Addr, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReply+1))
	if err != nil {
		return unreachable("agent of %s at %s: %w", ep.Pod, ep.Addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		return unreachable("agent of %s at %s refused the call: %s: %s", ep.Pod, ep.Addr, marker.Excerpt(resp.Status, 100), marker.Excerpt(strings.TrimSpace(string(data)), 300))
	}
	if err := a.isAgentOf(ctx, ep, resp.Header.Get(calls.HeaderAgentToken)); err != nil {
		return calls.Observation{}, calls.Failure(calls.Unauthenticated, err)
	}
	var reply calls.AgentReply
	if len(data) > maxReply || json.Unmarshal(data, &reply) != nil {
		return calls.Observation{}, calls.Failure(calls.BadOutput, fmt.Errorf("agent of %s at %s: unexpected reply %q", ep.Pod, ep.Addr, marker.Excerpt(string(data), 200)))
	}
	if reply.Error != "" {
		return reply.Observation, calls.Failure(calls.Refused, errors.New(marker.Printable(marker.Elide(reply.Error, maxErrorLength))))
	}
	return reply.Observation, nil
}

// isAgentOf checks that the reply came from the agent of ep's pod: its
// token is valid for the operator and bound to that very pod.
func (a *Agent) isAgentOf(ctx context.Context, ep AgentEndpoint, token string) error {
	if token == "" {
		return fmt.Errorf("the agent at %s sent no token: it cannot be told from another server at that address", ep.Addr)
	}
	id, err := a.verifier.Verify(ctx, token)
	if err != nil {
		return fmt.Errorf("the agent at %s: its token was refused: %w", ep.Addr, err)
	}
	ns, _, _ := strings.Cut(id.ServiceAccount, "/")
	if ns != ep.Pod.Namespace || id.PodName != ep.Pod.Name || id.PodUID != ep.UID {
		return fmt.Errorf("the server at %s speaks for pod %s/%s (uid %s), not for %s/%s (uid %s): a stale address?", ep.Addr, ns, id.PodName, id.PodUID, ep.Pod.Namespace, ep.Pod.Name, ep.UID)
	}
	return nil
}
