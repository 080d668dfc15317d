// Package agent is the sidecar beside a gateway: it serves the operator's
// three calls on the gateway's HERMES_HOME in this process
// (calls.InProcess, the contract program.sh keeps over exec),
// authenticated both ways with projected ServiceAccount tokens; it refuses
// to stamp a marker with an epoch that is not the gateway's; it removes its
// marker the instant the gateway container it was written for ends (guard);
// and it serves the gateway's readiness to the kubelet, watched from
// gateway_state.json (readiness).
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-logr/logr"
	"golang.org/x/time/rate"

	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/internal/options"
	"github.com/hermes-agent/hermes-drain-operator/internal/satoken"
)

// Options configure the agent's server.
type Options struct {
	// Home is the gateway's HERMES_HOME, mounted at the same path here.
	Home string
	// Listen is where the operator's calls are served (HTTPS).
	Listen string
	// ProbeListen is where the kubelet's probes are served (HTTP).
	ProbeListen string
	// Operators are the ServiceAccounts (namespace/name) allowed to call.
	Operators []string
	// TokenFile is the agent's own projected token (audience
	// hermes-drain-operator), sent with every reply so the operator knows
	// it speaks to the agent of the pod it means. The pod it names is the
	// one the operator's tokens for this agent must name.
	TokenFile string
	// Window is how far a request's time may be from the agent's clock.
	Window time.Duration
	// ProcRoot is where /proc is ("/proc" except in tests).
	ProcRoot string
	// SettleTime is how long /readyz reports the pod not ready, when a
	// drain asks to take it out of traffic first, before the marker is
	// written: at least the readinessProbe's periodSeconds ×
	// failureThreshold, plus the time EndpointSlices and kube-proxy take.
	SettleTime time.Duration
}

// DefaultOptions are the agent's defaults.
func DefaultOptions() Options {
	return Options{Home: marker.OwnHome(), Listen: ":9443", ProbeListen: ":9444", Window: time.Minute, ProcRoot: "/proc",
		TokenFile: "/var/run/secrets/hermes-drain/token", SettleTime: 5 * time.Second}
}

// BindFlags binds the options to flags.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Home, "home", o.Home, "the gateway's HERMES_HOME, mounted at the same path as in the gateway's container (default $HERMES_HOME, else /opt/data)")
	fs.StringVar(&o.Listen, "listen", o.Listen, "where the operator's calls are served (HTTPS)")
	fs.StringVar(&o.ProbeListen, "probe-listen", o.ProbeListen, "where /readyz (the gateway accepts turns) and /healthz are served (HTTP)")
	fs.Func("operator", "ServiceAccount (namespace/name) allowed to call; repeat for more", func(v string) error {
		o.Operators = append(o.Operators, v)
		return nil
	})
	fs.StringVar(&o.TokenFile, "token-file", o.TokenFile, "the agent's projected ServiceAccount token, audience "+satoken.OperatorAudience)
	fs.DurationVar(&o.Window, "request-window", o.Window, "how far a request's time may be from the agent's clock")
	fs.DurationVar(&o.SettleTime, "settle-time", o.SettleTime, "how long /readyz reports the pod not ready before a marker is written, when the drain takes the pod out of traffic first: at least the readinessProbe's periodSeconds x failureThreshold plus kube-proxy's lag (0: write at once)")
}

// Validate refuses options the agent cannot run with.
func (o Options) Validate() error {
	if !strings.HasPrefix(o.Home, "/") {
		return fmt.Errorf("--home %q must be an absolute path", o.Home)
	}
	if len(o.Operators) == 0 {
		return errors.New("--operator: name the operator's ServiceAccount (namespace/name), or no one may call")
	}
	errs := []error{options.PositiveDuration("--request-window", o.Window), options.NotNegativeDuration("--settle-time", o.SettleTime)}
	for _, op := range o.Operators {
		errs = append(errs, options.ServiceAccount("--operator", op))
	}
	return errors.Join(errs...)
}

// Server is a running agent.
type Server struct {
	opts  Options
	local calls.InProcess
	// audience is what the operator's tokens for this agent name: this
	// pod, and no other.
	audience string
	// verifier checks callers' tokens; nil until the API server's keys
	// are known (Trust), and calls are answered 503 meanwhile.
	verifier atomic.Pointer[satoken.Verifier]
	fresh    *freshness
	// refusals are logged at most once per refusalLogEvery: anyone may
	// call.
	refusals rate.Sometimes
	limits   limits
	guard    *guard
	ready    *readiness
	log      logr.Logger
	// shared says whether this process shares the pod's PID namespace
	// (sharesPIDNamespace), and why not when it does not.
	shared    bool
	notShared string
}

// refusalLogEvery bounds how often a refused call is logged.
const refusalLogEvery = 10 * time.Second

// New makes the agent of the pod its token file names. It serves no call
// until it is told how to verify callers' tokens (Trust).
func New(opts Options, log logr.Logger) (*Server, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	ns, uid, err := satoken.OwnPod(satoken.File{Path: opts.TokenFile})
	if err != nil {
		return nil, fmt.Errorf("--token-file: the agent learns its pod from its token: %w", err)
	}
	s := &Server{opts: opts, local: calls.InProcess{ProcRoot: opts.ProcRoot}, audience: satoken.AgentAudienceOf(ns, uid),
		fresh: newFreshness(opts.Window, time.Now), refusals: rate.Sometimes{First: 1, Interval: refusalLogEvery}, limits: defaultLimits, log: log}
	s.guard = &guard{procRoot: opts.ProcRoot, log: log, clear: s.clearStale}
	s.ready = newReadiness(s.local, opts.Home, log, s.adopt)
	shared, err := sharesPIDNamespace(opts.ProcRoot, os.Getpid())
	switch {
	case err != nil:
		s.notShared = fmt.Sprintf("cannot tell whether the pod shares its PID namespace (%v)", err)
	case !shared:
		s.notShared = "the pod does not share its PID namespace (PID 1 is the agent's own container's first process): set shareProcessNamespace: true, or the marker's epoch would not be the gateway's"
	}
	s.shared = shared && err == nil
	if !s.shared {
		log.Info("marker writes refused", "why", s.notShared)
	}
	return s, nil
}

// Trust verifies callers' tokens as tokens of issuer signed by keys, for
// this pod's audience, of the operators' ServiceAccounts.
func (s *Server) Trust(issuer string, keys oidc.KeySet) {
	s.verifier.Store(satoken.NewVerifier(issuer, keys, s.audience, nil, s.opts.Operators...))
}

// Audience is what the operator's tokens for this agent must name.
func (s *Server) Audience() string { return s.audience }

// Handler serves the operator's three calls.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, op := range []calls.Op{calls.OpProject, calls.OpClear, calls.OpRead} {
		mux.HandleFunc("POST "+calls.AgentPathPrefix+string(op), func(w http.ResponseWriter, r *http.Request) { s.serveCall(w, r, op) })
	}
	return mux
}

// ProbeHandler serves the kubelet's probes: /readyz while the gateway
// accepts turns, /healthz while the agent runs.
func (s *Server) ProbeHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", s.ready.serve)
	return mux
}

// maxCall bounds a call's body: a marker request is a few hundred bytes,
// a replaceable marker at most 64 KiB (as read), JSON-escaped.
const maxCall = 1 << 20

func (s *Server) serveCall(w http.ResponseWriter, r *http.Request, op calls.Op) {
	who, status, err := s.authenticate(r)
	if err != nil {
		s.refusals.Do(func() {
			s.log.Info("call refused (more within 10s are not logged)", "op", op, "from", r.RemoteAddr, "why", err.Error())
		})
		// The caller learns nothing of why: not the issuer, the audience
		// or the accounts allowed. The connection is closed at once.
		w.Header().Set("Connection", "close")
		http.Error(w, http.StatusText(status), status)
		return
	}
	var call calls.AgentCall
	if err := json.NewDecoder(io.LimitReader(r.Body, maxCall)).Decode(&call); err != nil {
		http.Error(w, "the call is not valid JSON: "+err.Error(), http.StatusBadRequest)
		return
	}
	obs, err := s.call(r.Context(), op, call)
	reply := calls.AgentReply{Observation: obs}
	if err != nil {
		reply.Error = err.Error()
	}
	s.log.V(1).Info("call", "op", op, "by", who, "outcome", obs.Outcome, "error", reply.Error)
	if tok, err := (satoken.File{Path: s.opts.TokenFile}).Token(); err == nil {
		w.Header().Set(calls.HeaderAgentToken, tok)
	} else {
		s.log.Error(err, "no token to show the operator; it will refuse this agent's replies")
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(reply)
}

// authenticate allows the operator only: a valid token for this pod's
// audience from an allowed ServiceAccount, on a fresh request.
func (s *Server) authenticate(r *http.Request) (who string, status int, err error) {
	verifier := s.verifier.Load()
	if verifier == nil {
		return "", http.StatusServiceUnavailable, errors.New("the API server's keys are not known yet")
	}
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || raw == "" {
		return "", http.StatusUnauthorized, errors.New("no bearer token")
	}
	id, err := verifier.Verify(r.Context(), raw)
	if err != nil {
		return "", http.StatusUnauthorized, fmt.Errorf("token refused: %v", err)
	}
	if err := s.fresh.check(r.Header.Get(calls.HeaderNonce), r.Header.Get(calls.HeaderTime)); err != nil {
		return id.ServiceAccount, http.StatusUnauthorized, err
	}
	return id.ServiceAccount, 0, nil
}

// call runs one call on the home this agent serves.
func (s *Server) call(ctx context.Context, op calls.Op, c calls.AgentCall) (calls.Observation, error) {
	if c.Home != "" && c.Home != s.opts.Home {
		return calls.Observation{}, fmt.Errorf("this agent serves HERMES_HOME %s, not %s: mount the gateway's HERMES_HOME at the same path in the agent", s.opts.Home, c.Home)
	}
	switch op {
	case calls.OpProject:
		if c.Marker == nil {
			return calls.Observation{}, errors.New("project needs a marker")
		}
		if !s.shared {
			obs, _ := s.local.Read(ctx, calls.Pod{}, s.opts.Home)
			return obs, errors.New("refusing to write a marker: " + s.notShared)
		}
		if c.LeaveTraffic && s.opts.SettleTime > 0 {
			// Out of traffic first: /readyz says not ready from the
			// first such call, and a call after the settle time writes.
			writeAt := s.ready.leaveTraffic(c.Marker.Origin.GatewayDrainUID, c.Marker.Origin.GatewayDrain, s.opts.SettleTime)
			if time.Now().Before(writeAt) {
				obs, err := s.local.Read(ctx, calls.Pod{}, s.opts.Home)
				if err == nil {
					obs.Outcome = calls.LeavingTraffic
				}
				return obs, err
			}
		}
		obs, err := s.local.Project(ctx, calls.Pod{}, s.opts.Home, calls.ProjectRequest{Marker: *c.Marker, Replaceable: c.Replaceable, Profiles: c.Profiles})
		if err == nil && obs.Outcome != calls.Foreign {
			s.guard.bind(c.Marker.Origin.GatewayDrainUID, liveWriter(obs))
		}
		return obs, err
	case calls.OpClear:
		obs, err := s.local.Clear(ctx, calls.Pod{}, s.opts.Home, c.OwnerUID)
		if err == nil && (obs.Outcome == calls.Cleared || obs.Outcome == calls.Absent) {
			s.guard.unbind(c.OwnerUID)
			s.ready.stopLeaving(c.OwnerUID)
		}
		return obs, err
	default:
		return s.local.Read(ctx, calls.Pod{}, s.opts.Home)
	}
}

// liveWriter is the PID of the running process gateway_state.json names as
// its writer, or 0.
func liveWriter(obs calls.Observation) int {
	st, problem := obs.GatewayStateNow()
	if problem != nil || st.PID <= 0 || obs.GatewayProcess.PID != st.PID || obs.GatewayProcess.Stat == "" {
		return 0
	}
	return int(st.PID)
}

// adopt is called with each fresh read of the home: a marker whose
// gateway was not known when it was written (or that the agent finds on
// start, written before it restarted) is guarded as soon as a live gateway
// writes its state.
func (s *Server) adopt(obs calls.Observation) {
	writer := liveWriter(obs)
	if writer == 0 || obs.Marker.State != calls.FilePresent {
		return
	}
	origin, ok := marker.Parse(obs.Marker.Data).Origin()
	if !ok {
		return
	}
	if pending := s.guard.pendingOwner(); pending == origin.GatewayDrainUID || !s.guard.guarding() {
		s.guard.bind(origin.GatewayDrainUID, writer)
	}
}

// clearStale removes owner's marker once its gateway container has ended.
func (s *Server) clearStale(owner string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	obs, err := s.local.Clear(ctx, calls.Pod{}, s.opts.Home, owner)
	if err != nil {
		s.log.Error(err, "removing the marker of an ended gateway container")
		return
	}
	s.log.Info("marker of an ended gateway container", "owner", owner, "outcome", obs.Outcome)
}
