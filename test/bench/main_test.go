// Package bench measures how fast and how cheaply the operator drains a fleet
// of gateways on the local simulated cluster, side by side in one run with
// what a user would do instead (a loop of kubectl exec, one at a time and 16
// at a time) and with the machine's limit (parallel pods/exec through
// client-go and nothing else): time until every marker is written, time until
// Drained, API server requests per target, exec calls against idle pods,
// readiness-gate flip latency and the manager's peak memory.
//
// By default it is CI's smoke run (20 pods, once). `make bench` sets
// BENCH_SIZES, BENCH_RUNS, BENCH_MEMORY_PODS, BENCH_IDLE and BENCH_OUT (see
// config) and writes docs/bench/.
package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hermes-agent/hermes-drain-operator/test/cluster"
	"github.com/hermes-agent/hermes-drain-operator/test/gatewaysim"
)

// operatorAccount is the ServiceAccount the agents allow, which requests
// the manager's token for each agent's pod.
const operatorAccount = "hermes-drain-system/operator"

var (
	lc         *cluster.Cluster
	sim        *gatewaysim.Sim
	managerBin string
	// changes records when each simulated gateway changed state.
	changes = &stateLog{}
)

// turnDuration is how long a simulated turn takes, for the drain with turns
// in flight.
const turnDuration = 3 * time.Second

func TestMain(m *testing.M) {
	cluster.ServeAgentFarmIfAsked() // a shard of the agent farm: serves, then exits
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var stop func()
	var err error
	// Upstream's gateway reads its marker once a second.
	simOpts := gatewaysim.Options{TurnDuration: turnDuration, OnChange: changes.record}
	// Pod IPs on loopback: one process serves every pod's agent on its IP
	// (127.2/16: test/agents, which may run at the same time, takes 127.1/16).
	if lc, sim, stop, err = cluster.StartWithGateways(context.Background(), cluster.Options{PodCIDR: "127.2.0.0/16"}, simOpts, time.Second); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stop()
	ns, name, _ := strings.Cut(operatorAccount, "/")
	if err = lc.OperatorAccount(context.Background(), ns, name); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if managerBin, err = cluster.Build(lc.Dir, "./cmd/manager"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// config sizes the run; every field comes from an environment variable.
type config struct {
	sizes      []int         // BENCH_SIZES: fleet sizes, comma-separated (20)
	runs       int           // BENCH_RUNS: runs per size; medians are reported (1)
	seqSample  int           // BENCH_SEQ_SAMPLE: pods the sequential loop really runs on; its time is scaled to the fleet (100)
	memoryPods int           // BENCH_MEMORY_PODS: pods in the namespace for the memory figure (0: none)
	idle       time.Duration // BENCH_IDLE: window in which idle pods must see no exec (5s)
	out        string        // BENCH_OUT: folder for results.md, results.json and the plot ("": none)
	memLimit   string        // BENCH_GOMEMLIMIT: the manager's GOMEMLIMIT ("": none, as the chart's default)
	// BENCH_BASELINES_UP_TO: the largest N for the kubectl and client-go
	// contenders, the operator's drain with turns in flight, and the
	// readiness gate flips: 1000.
	baselinesUpTo int
	// BENCH_EXEC_UP_TO: the largest N the operator drains through exec at
	// all (1000). Above both, only the operator through agents runs: at
	// 17 execs a second on this machine, 10,000 gateways through exec take
	// about 10 minutes to the last marker.
	execUpTo int
}

func configFromEnv() (config, error) {
	cfg := config{runs: 1, seqSample: 100, idle: 5 * time.Second, out: os.Getenv("BENCH_OUT"), memLimit: os.Getenv("BENCH_GOMEMLIMIT"), baselinesUpTo: 1000, execUpTo: 1000}
	sizes := os.Getenv("BENCH_SIZES")
	if sizes == "" {
		sizes = "20"
	}
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return cfg, fmt.Errorf("BENCH_SIZES: %q is not a fleet size", s)
		}
		cfg.sizes = append(cfg.sizes, n)
	}
	for name, p := range map[string]*int{"BENCH_RUNS": &cfg.runs, "BENCH_SEQ_SAMPLE": &cfg.seqSample, "BENCH_MEMORY_PODS": &cfg.memoryPods, "BENCH_BASELINES_UP_TO": &cfg.baselinesUpTo, "BENCH_EXEC_UP_TO": &cfg.execUpTo} {
		if v := os.Getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return cfg, fmt.Errorf("%s: %q is not a count", name, v)
			}
			*p = n
		}
	}
	if v := os.Getenv("BENCH_IDLE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return cfg, fmt.Errorf("BENCH_IDLE: %w", err)
		}
		cfg.idle = d
	}
	if cfg.out != "" && !filepath.IsAbs(cfg.out) {
		cfg.out = filepath.Join(cluster.RepoRoot(), cfg.out)
	}
	return cfg, nil
}

type transition struct {
	state string
	at    time.Time
}

// stateLog records when each thing (a gateway's home, a pod's gate) changed
// state, as seen now.
type stateLog struct {
	mu     sync.Mutex
	byName map[string][]transition
}

// record notes state for name, if it is a change.
func (l *stateLog) record(name, state string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byName == nil {
		l.byName = map[string][]transition{}
	}
	if seen := l.byName[name]; len(seen) == 0 || seen[len(seen)-1].state != state {
		l.byName[name] = append(seen, transition{state, time.Now()})
	}
}

// firstSince is when name first entered state at or after t0.
func (l *stateLog) firstSince(name, state string, t0 time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, tr := range l.byName[name] {
		if tr.state == state && !tr.at.Before(t0) {
			return tr.at, true
		}
	}
	return time.Time{}, false
}
