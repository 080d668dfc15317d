// Command manager runs the hermes-drain-operator: the GatewayDrain reconciler,
// which drains Hermes gateway pods through their HERMES_HOME drain marker.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/controllers/gatewaydrain"
	"github.com/hermes-agent/hermes-drain-operator/controllers/orphans"
	"github.com/hermes-agent/hermes-drain-operator/controllers/podreadiness"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod"
	"github.com/hermes-agent/hermes-drain-operator/internal/options"
	"github.com/hermes-agent/hermes-drain-operator/internal/satoken"
	"github.com/hermes-agent/hermes-drain-operator/internal/transport"
)

type flags struct {
	metricsAddr, probeAddr  string
	pprofAddr               string
	metricsSecure           bool
	leaderElect             bool
	leaderElectionNamespace string
	leaseDuration           time.Duration
	renewDeadline           time.Duration
	retryPeriod             time.Duration
	watchNamespaces         string
	podSelector             labels.Selector
	maxConcurrentReconciles int
	execTimeout             time.Duration
	exec                    bool
	agentAccount            string
	agentTokenLifetime      time.Duration
	drain                   gatewaydrain.Options
	readiness               podreadiness.Options
	orphans                 orphans.Options
	gracefulShutdownTimeout time.Duration
}

func parseFlags(args []string) (flags, zap.Options, error) {
	f := flags{drain: gatewaydrain.DefaultOptions(), readiness: podreadiness.DefaultOptions(), orphans: orphans.DefaultOptions()}
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.StringVar(&f.metricsAddr, "metrics-bind-address", ":8443", `where metrics are served; "0" turns them off`)
	fs.BoolVar(&f.metricsSecure, "metrics-secure", true, "serve metrics over HTTPS with Kubernetes authentication and authorization (false: plain HTTP)")
	fs.StringVar(&f.probeAddr, "health-probe-bind-address", ":8081", "where /healthz and /readyz are served")
	fs.StringVar(&f.pprofAddr, "pprof-bind-address", "", `where Go's /debug/pprof profiles are served, unauthenticated ("": off)`)
	fs.BoolVar(&f.leaderElect, "leader-elect", false, "elect a leader, so that only one replica acts")
	fs.StringVar(&f.leaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader election lease (default: the pod's)")
	fs.DurationVar(&f.leaseDuration, "leader-elect-lease-duration", 15*time.Second, "how long a lost leader's lease holds before another replica takes over")
	fs.DurationVar(&f.renewDeadline, "leader-elect-renew-deadline", 10*time.Second, "how long the leader keeps trying to renew before it steps down")
	fs.DurationVar(&f.retryPeriod, "leader-elect-retry-period", 2*time.Second, "how often replicas try to acquire or renew the lease")
	fs.StringVar(&f.watchNamespaces, "watch-namespaces", "", "comma-separated namespaces to watch (default: all)")
	fs.Func("pod-selector", "label selector of the pods the operator caches (default: all); a pod outside it can be neither drained nor gated", func(v string) (err error) {
		f.podSelector, err = labels.Parse(v)
		return err
	})
	fs.IntVar(&f.maxConcurrentReconciles, "max-concurrent-reconciles", 4, "GatewayDrains reconciled at once")
	fs.DurationVar(&f.execTimeout, "exec-timeout", 30*time.Second, "bound on one call into a gateway container")
	fs.BoolVar(&f.exec, "exec", true, "reach gateways without an agent through pods/exec (false: only pods that declare a hermes-drain-agent are reached)")
	fs.StringVar(&f.agentAccount, "agent-account", "", `the operator's own ServiceAccount (namespace/name), which agents allow and which requests a token for each agent's pod alone; "": pods' agents are not called`)
	fs.DurationVar(&f.agentTokenLifetime, "agent-token-lifetime", time.Hour, "how long each token for an agent is valid (at least 10m); it is renewed after 80% of that")
	f.drain.BindFlags(fs)
	f.readiness.BindFlags(fs)
	f.orphans.BindFlags(fs)
	fs.DurationVar(&f.gracefulShutdownTimeout, "graceful-shutdown-timeout", 30*time.Second, "how long in-flight reconciles may finish on shutdown")
	opts := zap.Options{}
	opts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return f, opts, err
	}
	var leaseOrder error // client-go's leader election refuses other orders, at start
	if f.leaseDuration <= f.renewDeadline || float64(f.renewDeadline) <= 1.2*float64(f.retryPeriod) {
		leaseOrder = fmt.Errorf("--leader-elect-lease-duration %s must exceed --leader-elect-renew-deadline %s, which must exceed 1.2 × --leader-elect-retry-period %s",
			f.leaseDuration, f.renewDeadline, f.retryPeriod)
	}
	return f, opts, errors.Join(
		options.AtLeastOne("--max-concurrent-reconciles", f.maxConcurrentReconciles),
		options.PositiveDuration("--exec-timeout", f.execTimeout),
		options.PositiveDuration("--graceful-shutdown-timeout", f.gracefulShutdownTimeout),
		options.AtLeastDuration("--agent-token-lifetime", f.agentTokenLifetime, transport.MinTokenLifetime),
		options.ServiceAccount("--agent-account", f.agentAccount),
		options.PositiveDuration("--leader-elect-lease-duration", f.leaseDuration),
		options.PositiveDuration("--leader-elect-renew-deadline", f.renewDeadline),
		options.PositiveDuration("--leader-elect-retry-period", f.retryPeriod),
		leaseOrder,
		f.drain.Validate(), f.readiness.Validate(), f.orphans.Validate())
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "uninstall" {
		f, err := parseUninstallFlags(os.Args[2:])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		ctrl.SetLogger(zap.New())
		if err := uninstall(ctrl.SetupSignalHandler(), f); err != nil {
			ctrl.Log.Error(err, "uninstall")
			os.Exit(1)
		}
		return
	}
	f, zapOpts, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	if err := run(ctrl.SetupSignalHandler(), f); err != nil {
		ctrl.Log.Error(err, "manager stopped")
		os.Exit(1)
	}
}

// newScheme knows the API's and Kubernetes' own types.
func newScheme() (*runtime.Scheme, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return scheme, drainv1.AddToScheme(scheme)
}

func run(ctx context.Context, f flags) error {
	scheme, err := newScheme()
	if err != nil {
		return err
	}
	cfg := ctrl.GetConfigOrDie()

	metrics := metricsserver.Options{BindAddress: f.metricsAddr, SecureServing: f.metricsSecure}
	if f.metricsSecure {
		metrics.FilterProvider = filters.WithAuthenticationAndAuthorization
		// HTTP/2 is off: it exposes the server to the rapid-reset and stream
		// cancellation attacks (CVE-2023-44487, CVE-2023-39325).
		metrics.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metrics,
		HealthProbeBindAddress:        f.probeAddr,
		PprofBindAddress:              f.pprofAddr,
		LeaderElection:                f.leaderElect,
		LeaderElectionID:              "hermes-drain-operator.drain.hermes.dev",
		LeaderElectionNamespace:       f.leaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &f.leaseDuration,
		RenewDeadline:                 &f.renewDeadline,
		RetryPeriod:                   &f.retryPeriod,
		GracefulShutdownTimeout:       &f.gracefulShutdownTimeout,
		Cache:                         cacheOptions(f),
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	tr, err := newTransport(ctx, cfg, mgr.GetClient(), f)
	if err != nil {
		return err
	}
	recorder := mgr.GetEventRecorder("hermes-drain-operator")
	if err := drain.SetupIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return fmt.Errorf("setting up the cache indexes: %w", err)
	}
	orphaned := &orphans.Remover{Cache: mgr.GetClient(), API: mgr.GetAPIReader(), Transport: tr, Recorder: recorder, Options: f.orphans}
	if err := mgr.Add(orphaned); err != nil {
		return fmt.Errorf("setting up the orphaned marker sweep: %w", err)
	}
	drains := &gatewaydrain.Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Transport: tr, Recorder: recorder, Options: f.drain, Clock: clock.RealClock{}, Orphans: orphaned}
	if err := drains.SetupWithManager(mgr, f.maxConcurrentReconciles); err != nil {
		return fmt.Errorf("setting up the GatewayDrain controller: %w", err)
	}
	gates := &podreadiness.Reconciler{Client: mgr.GetClient(), Transport: tr, Recorder: recorder, Options: f.readiness, Clock: clock.RealClock{}, Orphans: orphaned}
	if err := gates.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the readiness gate controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	ctrl.Log.Info("starting", "watchNamespaces", f.watchNamespaces, "podSelector", f.podSelector, "leaderElection", f.leaderElect)
	return mgr.Start(ctx)
}

// newTransport reaches each gateway through its pod's agent when the pod
// declares one, else through pods/exec (unless --exec=false).
func newTransport(ctx context.Context, cfg *rest.Config, pods client.Reader, f flags) (*transport.Router, error) {
	router := &transport.Router{Pods: pods}
	if f.exec {
		runner, err := transport.NewExecRunner(cfg, f.execTimeout)
		if err != nil {
			return nil, err
		}
		router.Exec = transport.NewProgram(runner, "/proc")
	}
	if f.agentAccount != "" {
		issuer, keys, err := satoken.Discover(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("agents prove who they are with tokens the API server's keys verify: %w", err)
		}
		cs, err := kubernetes.NewForConfig(transport.TokenClientConfig(rest.CopyConfig(cfg)))
		if err != nil {
			return nil, err
		}
		tokens, err := transport.NewPodTokens(cs.CoreV1(), f.agentAccount, f.agentTokenLifetime, nil)
		if err != nil {
			return nil, fmt.Errorf("--agent-account: %w", err)
		}
		router.Agent = transport.NewAgent(tokens, satoken.NewVerifier(issuer, keys, satoken.OperatorAudience, nil), f.execTimeout)
	}
	if router.Exec == nil && router.Agent == nil {
		return nil, errors.New("--exec=false needs --agent-account: no gateway could be reached")
	}
	return router, nil
}

// cacheOptions keeps in memory only what the reconcilers read: pods trimmed
// to a few fields, only those of podSelector, and EndpointSlices trimmed to
// which pods they list as ready, only in watchNamespaces.
func cacheOptions(f flags) cache.Options {
	opts := cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:                {Label: f.podSelector, Transform: gatewaypod.Trim},
			&discoveryv1.EndpointSlice{}: {Transform: gatewaypod.TrimEndpointSlice},
		},
	}
	if namespaces := splitNamespaces(f.watchNamespaces); len(namespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts
}

// splitNamespaces reads a comma-separated list of namespaces.
func splitNamespaces(v string) []string {
	var namespaces []string
	for _, ns := range strings.Split(v, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			namespaces = append(namespaces, ns)
		}
	}
	return namespaces
}
