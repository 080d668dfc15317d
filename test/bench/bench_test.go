package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod/gatewaypodtest"
	"github.com/hermes-agent/hermes-drain-operator/test/cluster"
	"github.com/hermes-agent/hermes-drain-operator/test/gatewaysim"
)

// The contenders for time to all markers.
const (
	kubectlSequential = "kubectl exec loop"
	kubectlParallel   = "kubectl exec, xargs -P 16"
	clientGo          = "client-go parallel exec"
	theOperator       = "operator"
	throughAgents     = "operator, through agents"
)

var contenders = []string{kubectlSequential, kubectlParallel, clientGo, theOperator, throughAgents}

// sizeResult is everything measured for one fleet size.
type sizeResult struct {
	N int
	// Markers is the time until every marker was written, per contender, one per run.
	Markers map[string][]time.Duration
	// SeqSample is how many pods the sequential loop ran on (its times are scaled to N).
	SeqSample int
	// ClientGoConcurrency is the best concurrency Baseline B found.
	ClientGoConcurrency int
	// Drained and DrainedWithTurns are the operator's times to Drained,
	// without and with turns in flight.
	Drained, DrainedWithTurns []time.Duration
	// RequestsPerTarget and ExecsPerTarget count the API server's requests
	// from the drain's creation to Drained, one per run; Requests is the
	// breakdown of the last run.
	RequestsPerTarget, ExecsPerTarget []float64
	Requests                          string
	// CPUClientGo and CPUOperator say where the CPU went in the last run's
	// client-go pass and operator drain, per exec.
	CPUClientGo, CPUOperator string
	// IdleExecsPerMinute is the exec rate against idle pods.
	IdleExecsPerMinute float64
	// GateDown and GateUp are per-pod gate flip latencies.
	GateDown, GateUp []time.Duration
	// ProbeDown and ProbeUp are per-pod latencies of the agents' /readyz:
	// from the gateway's change of state to the agent's answer following it.
	ProbeDown, ProbeUp []time.Duration
	// Memory is the manager's through this size's runs.
	Memory cluster.Memory
	// DrainedAgents, RequestsPerTargetAgents and MemoryAgents are the same
	// for the operator with no pods/exec, through the pods' agents.
	DrainedAgents           []time.Duration
	RequestsPerTargetAgents []float64
	MemoryAgents            cluster.Memory
	// MemoryPods is how many pods the namespace held for the next two
	// figures, each a fresh manager's, from its start to the end of a drain
	// of the N gateways: caching every pod, and with --pod-selector.
	MemoryPods                    int
	MemoryAllPods, MemorySelected cluster.Memory
}

func TestFleetDrain(t *testing.T) {
	cfg, err := configFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	kube, err := kubernetes.NewForConfig(lc.Config)
	if err != nil {
		t.Fatal(err)
	}
	var results []*sizeResult
	for _, n := range cfg.sizes {
		r, err := benchSize(t, cfg, kube, n)
		if err != nil {
			t.Fatalf("N=%d: %v", n, err)
		}
		results = append(results, r)
	}
	if err := report(t, cfg, results); err != nil {
		t.Fatal(err)
	}
}

func benchSize(t *testing.T, cfg config, kube kubernetes.Interface, n int) (*sizeResult, error) {
	ctx := context.Background()
	r := &sizeResult{N: n, Markers: map[string][]time.Duration{}, SeqSample: min(n, cfg.seqSample)}
	ns := fmt.Sprintf("bench-%d", n)
	created := time.Now()
	gws, err := fleet(ctx, ns, n, cluster.WithAgent)
	if err != nil {
		return nil, err
	}
	defer removeFleet(ctx, ns)
	baselines := n <= cfg.baselinesUpTo
	// The agents serve no readiness until it is measured: most would read
	// their home every second (no inotify instance left), which would cost
	// the contenders the machine.
	farm := &agentFarm{gws: gws}
	if err := farm.serve(ctx, cluster.FarmOptions{}); err != nil {
		return nil, err
	}
	defer func() { farm.stop() }() // the farm serve last started
	t.Logf("N=%d: fleet running after %s", n, time.Since(created).Round(time.Millisecond))
	if cfg.memLimit != "" {
		t.Setenv("GOMEMLIMIT", cfg.memLimit) // for the processes started from here on: the manager, kubectl
	}
	m, err := lc.StartManager(managerBin, fmt.Sprintf("manager-%d", n), lc.Kubeconfig)
	if err != nil {
		return nil, err
	}
	defer m.Stop()

	// Idle: the manager runs, nothing is targeted or gated. This window is
	// the measurement, not a wait.
	before, err := scrapeAPIRequests(ctx, kube)
	if err != nil {
		return nil, err
	}
	time.Sleep(cfg.idle)
	after, err := scrapeAPIRequests(ctx, kube)
	if err != nil {
		return nil, err
	}
	r.IdleExecsPerMinute = after.since(before).of("pods/exec") / cfg.idle.Minutes()
	if r.IdleExecsPerMinute != 0 {
		t.Errorf("N=%d: %.1f execs per minute against idle pods, want none", n, r.IdleExecsPerMinute)
	}

	names := make([]string, n)
	for i, g := range gws {
		names[i] = g.Name
	}
	for run := range cfg.runs {
		// The contenders take turns within a run, so that they share the
		// machine's moods.
		record := func(who string, d time.Duration, err error) error {
			if err == nil && markersPresent(gws) < len(gws) && who != kubectlSequential {
				err = fmt.Errorf("only %d of %d markers", markersPresent(gws), len(gws))
			}
			if err != nil {
				return fmt.Errorf("%s: %w", who, err)
			}
			r.Markers[who] = append(r.Markers[who], d)
			t.Logf("N=%d run %d: %-26s %s", n, run+1, who, d.Round(time.Millisecond))
			return clearMarkers(gws)
		}
		if n > cfg.execUpTo {
			continue
		}
		if baselines {
			if err := runBaselines(t, ctx, r, gws, names, run == 0, record); err != nil {
				return nil, err
			}
		}

		op, err := operatorDrain(ctx, kube, gws)
		if err != nil {
			return nil, fmt.Errorf("operator: %w", err)
		}
		r.Markers[theOperator] = append(r.Markers[theOperator], op.markers)
		r.Drained = append(r.Drained, op.drained)
		r.RequestsPerTarget = append(r.RequestsPerTarget, op.requests.total()/float64(n))
		r.ExecsPerTarget = append(r.ExecsPerTarget, op.requests.of("pods/exec")/float64(n))
		r.Requests = op.requests.perTarget(n)
		r.CPUOperator = op.cpu.perCall(int(op.requests.of("pods/exec")))
		t.Logf("N=%d run %d: %-26s %s, Drained after %s; per target: %s", n, run+1, theOperator,
			op.markers.Round(time.Millisecond), op.drained.Round(time.Millisecond), r.Requests)

		if !baselines {
			continue
		}
		if err := handTurns(ctx, gws, 2); err != nil {
			return nil, err
		}
		op, err = operatorDrain(ctx, kube, gws)
		if err != nil {
			return nil, fmt.Errorf("operator, turns in flight: %w", err)
		}
		r.DrainedWithTurns = append(r.DrainedWithTurns, op.drained)
		t.Logf("N=%d run %d: operator with 2 turns of %s in flight per gateway: Drained after %s", n, run+1, turnDuration, op.drained.Round(time.Millisecond))
	}
	if r.Memory, err = m.Memory(); err != nil {
		return nil, err
	}

	if baselines {
		if r.GateDown, r.GateUp, err = gateFlips(ctx, n); err != nil {
			return nil, fmt.Errorf("readiness: %w", err)
		}
		t.Logf("N=%d: gate to False p50 %s p99 %s; to True p50 %s p99 %s", n,
			percentile(r.GateDown, 50), percentile(r.GateDown, 99), percentile(r.GateUp, 50), percentile(r.GateUp, 99))
	}

	m.Stop() // one manager at a time
	if err := drainThroughAgents(t, cfg, kube, r, farm); err != nil {
		return nil, fmt.Errorf("through agents: %w", err)
	}

	if cfg.memoryPods > n {
		if err := parkPods(ctx, ns, cfg.memoryPods-n); err != nil {
			return nil, err
		}
		r.MemoryPods = cfg.memoryPods
		if r.MemoryAllPods, err = drainMemory(ctx, kube, gws, "manager-all-pods"); err != nil {
			return nil, err
		}
		selector := "--pod-selector=" + labels.SelectorFromSet(gatewayLabels).String()
		if r.MemorySelected, err = drainMemory(ctx, kube, gws, "manager-selected-pods", selector); err != nil {
			return nil, err
		}
		t.Logf("N=%d among %d pods: manager peak RSS %s caching every pod, %s with %s", n, cfg.memoryPods,
			mib(r.MemoryAllPods.Peak), mib(r.MemorySelected.Peak), selector)
	}
	return r, nil
}

// runBaselines runs the kubectl and client-go contenders on gws once;
// the first time, it finds client-go's best concurrency.
func runBaselines(t *testing.T, ctx context.Context, r *sizeResult, gws []*cluster.Gateway, names []string, first bool, record func(string, time.Duration, error) error) error {
	d, err := kubectlLoop(ctx, gws[0].Namespace, names[:r.SeqSample], 1)
	if err := record(kubectlSequential, d*time.Duration(r.N)/time.Duration(r.SeqSample), err); err != nil {
		return err
	}
	d, err = kubectlLoop(ctx, gws[0].Namespace, names, 16)
	if err := record(kubectlParallel, d, err); err != nil {
		return err
	}
	if first {
		if r.ClientGoConcurrency, err = bestConcurrency(t, ctx, gws); err != nil {
			return err
		}
	}
	cpu := sampleCPU()
	d, err = clientGoExec(ctx, gws, r.ClientGoConcurrency)
	r.CPUClientGo = sampleCPU().since(cpu).perCall(r.N)
	return record(clientGo, d, err)
}

// drainThroughAgents has a manager with no pods/exec drain gws through
// their agents, cfg.runs times.
func drainThroughAgents(t *testing.T, cfg config, kube kubernetes.Interface, r *sizeResult, farm *agentFarm) error {
	ctx := context.Background()
	gws := farm.gws
	m, err := lc.StartManager(managerBin, fmt.Sprintf("manager-agents-%d", r.N), lc.Kubeconfig, "--exec=false", "--agent-account="+operatorAccount)
	if err != nil {
		return err
	}
	defer m.Stop()
	for run := range cfg.runs {
		op, err := operatorDrain(ctx, kube, gws)
		if err != nil {
			return err
		}
		r.Markers[throughAgents] = append(r.Markers[throughAgents], op.markers)
		r.DrainedAgents = append(r.DrainedAgents, op.drained)
		r.RequestsPerTargetAgents = append(r.RequestsPerTargetAgents, op.requests.total()/float64(r.N))
		t.Logf("N=%d run %d: %-26s %s, Drained after %s; per target: %s", r.N, run+1, throughAgents,
			op.markers.Round(time.Millisecond), op.drained.Round(time.Millisecond), op.requests.perTarget(r.N))
	}
	if r.N <= cfg.baselinesUpTo {
		if err := farm.serve(ctx, cluster.FarmOptions{Readiness: true}); err != nil {
			return err
		}
		if r.ProbeDown, r.ProbeUp, err = probeFlips(ctx, gws); err != nil {
			return fmt.Errorf("the agents' readiness: %w", err)
		}
		t.Logf("N=%d: agent's /readyz to not ready p50 %s p99 %s; to ready p50 %s p99 %s", r.N,
			percentile(r.ProbeDown, 50), percentile(r.ProbeDown, 99), percentile(r.ProbeUp, 50), percentile(r.ProbeUp, 99))
	}
	r.MemoryAgents, err = m.Memory()
	return err
}

// agentFarm serves the agents of gws, and serves them again with other
// options.
type agentFarm struct {
	gws  []*cluster.Gateway
	stop func()
}

func (f *agentFarm) serve(ctx context.Context, opts cluster.FarmOptions) error {
	if f.stop != nil {
		f.stop()
	}
	stop, err := lc.ServeAgents(ctx, operatorAccount, f.gws, opts)
	f.stop = stop
	if stop == nil {
		f.stop = func() {}
	}
	return err
}

// drainMemory starts a manager with args, has it drain gws and returns its
// memory: the peak includes its start, when it lists every pod it caches.
func drainMemory(ctx context.Context, kube kubernetes.Interface, gws []*cluster.Gateway, logName string, args ...string) (cluster.Memory, error) {
	m, err := lc.StartManager(managerBin, logName, lc.Kubeconfig, args...)
	if err != nil {
		return cluster.Memory{}, err
	}
	defer m.Stop()
	if _, err := operatorDrain(ctx, kube, gws); err != nil {
		return cluster.Memory{}, fmt.Errorf("%s: %w", logName, err)
	}
	return m.Memory()
}

// bestConcurrency finds the concurrency at which Baseline B writes every
// marker fastest.
func bestConcurrency(t *testing.T, ctx context.Context, gws []*cluster.Gateway) (int, error) {
	best, bestTime := 0, time.Duration(0)
	for _, c := range []int{8, 16, 32, 64, 128} {
		d, err := clientGoExec(ctx, gws, c)
		if err != nil {
			return 0, fmt.Errorf("client-go at concurrency %d: %w", c, err)
		}
		if err := clearMarkers(gws); err != nil {
			return 0, err
		}
		t.Logf("N=%d: client-go at concurrency %d: %s", len(gws), c, d.Round(time.Millisecond))
		if best == 0 || d < bestTime {
			best, bestTime = c, d
		}
	}
	return best, nil
}

// fleet creates namespace ns with n running gateways.
func fleet(ctx context.Context, ns string, n int, mutate ...func(*corev1.Pod)) ([]*cluster.Gateway, error) {
	if err := lc.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	return lc.CreateGateways(ctx, ns, n, gatewayLabels, mutate...)
}

// removeFleet deletes the pods of ns and their folders, so that later sizes
// run on a machine as quiet as this one was.
func removeFleet(ctx context.Context, ns string) {
	_ = lc.Client.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(ns), client.GracePeriodSeconds(0))
	_ = os.RemoveAll(filepath.Join(lc.Dir, "homes", ns))
}

// handTurns gives every gateway n turns and waits until each has taken them.
func handTurns(ctx context.Context, gws []*cluster.Gateway, n int) error {
	for _, g := range gws {
		if err := gatewaysim.AddTurns(g.Home, n); err != nil {
			return err
		}
	}
	return poll(ctx, time.Minute, "the gateways to take their turns", func() bool {
		for _, g := range gws {
			if _, err := os.Stat(filepath.Join(g.Home, gatewaysim.TurnsFile)); err == nil {
				return false
			}
		}
		return true
	})
}

// parkPods adds n pods to ns that no drain selects and no node runs: they
// only weigh on the manager's cache, as the rest of a busy namespace does.
func parkPods(ctx context.Context, ns string, n int) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range n {
		pod := gatewaypodtest.Pod(gatewaypodtest.Spec{Namespace: ns, Name: fmt.Sprintf("parked-%d", i), Image: "hermes-gateway:simulated",
			Home: "/opt/data", Labels: map[string]string{"app": "parked"}, NodeName: "parking"}) // no such node: the pod stays Pending
		g.Go(func() error { return lc.Client.Create(ctx, pod) })
	}
	return g.Wait()
}
