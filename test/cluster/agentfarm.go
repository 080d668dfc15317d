package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hermes-agent/hermes-drain-operator/internal/agent"
	"github.com/hermes-agent/hermes-drain-operator/internal/satoken"
)

// The agent farm runs the simulated gateways' agents in child processes of
// the test binary, farmShard agents each: one process cannot hold 10,000
// agents (a listener each, the guards' pidfds and eventfds, connections)
// under this machine's limit of 20,000 descriptors per process. A child is
// the test binary run again with farmEnv naming its shard's spec; its
// TestMain hands it to ServeAgentFarmIfAsked before anything else.

// farmShard is how many agents one child process serves.
const farmShard = 2000

// farmEnv names the spec file of the shard a child serves.
const farmEnv = "HERMES_AGENT_FARM_SPEC"

// farmSpec is what a shard serves.
type farmSpec struct {
	Kubeconfig string
	// Operator is the ServiceAccount namespace/name the agents allow.
	Operator string
	// ProcRoot is the /proc the agents see (sharedProc).
	ProcRoot string
	// Readiness: each agent also serves /readyz on AgentProbePort.
	Readiness bool
	Agents    []farmAgent
}

// farmAgent is one gateway's agent.
type farmAgent struct{ Home, Listen, TokenFile string }

// farmReady is the line a shard prints once every agent listens.
const farmReady = "agent farm shard serving"

// startFarmShard starts a child serving spec's agents and waits until they
// listen. ctx ends it; it dies with this process too.
func (c *Cluster) startFarmShard(ctx context.Context, spec farmSpec) (*child, error) {
	f, err := os.CreateTemp(c.Dir, "agent-farm-*.json")
	if err != nil {
		return nil, err
	}
	if err := json.NewEncoder(f).Encode(spec); err != nil {
		f.Close()
		return nil, err
	}
	f.Close()
	name := strings.TrimSuffix(filepath.Base(f.Name()), ".json")
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), farmEnv+"="+f.Name())
	p, err := c.startCommand(name, cmd)
	if err != nil {
		return nil, err
	}
	return p, c.waitFor(ctx, fmt.Sprintf("%d agents listening", len(spec.Agents)), 5*time.Minute, p, func() bool {
		log, _ := os.ReadFile(filepath.Join(c.Dir, name+".log"))
		return strings.Contains(string(log), farmReady)
	})
}

// ServeAgentFarmIfAsked serves a shard of the agent farm and exits when
// this process was started as one; otherwise it returns at once. A TestMain
// whose tests call ServeAgents calls it first.
func ServeAgentFarmIfAsked() {
	specFile := os.Getenv(farmEnv)
	if specFile == "" {
		return
	}
	if err := serveFarmShard(specFile); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serveFarmShard serves the agents of a spec until it is told to stop.
func serveFarmShard(specFile string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var spec farmSpec
	b, err := os.ReadFile(specFile)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		return err
	}
	config, err := clientcmd.BuildConfigFromFlags("", spec.Kubeconfig)
	if err != nil {
		return err
	}
	issuer, keys, err := satoken.Discover(ctx, config)
	if err != nil {
		return err
	}
	if err := addContainerProcess(spec.ProcRoot); err != nil {
		return err
	}
	for _, a := range spec.Agents {
		opts := agent.DefaultOptions()
		opts.Home, opts.Operators, opts.TokenFile, opts.ProcRoot, opts.Listen = a.Home, []string{spec.Operator}, a.TokenFile, spec.ProcRoot, a.Listen
		// No kubelet probes a farm's agents: there is no traffic to take
		// away before a marker, so they write at once.
		opts.SettleTime = 0
		s, err := agent.New(opts, logr.Discard())
		if err != nil {
			return fmt.Errorf("agent for %s: %w", filepath.Base(a.Home), err)
		}
		s.Trust(issuer, keys)
		l, err := net.Listen("tcp", a.Listen)
		if err != nil {
			return err
		}
		go func() { _ = s.ServeCalls(ctx, l) }()
		if spec.Readiness {
			host, _, _ := net.SplitHostPort(a.Listen)
			probes, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(AgentProbePort)))
			if err != nil {
				return err
			}
			go func() { _ = s.WatchGateway(ctx) }()
			go func() { _ = http.Serve(probes, s.ProbeHandler()) }()
		}
	}
	fmt.Println(farmReady)
	<-ctx.Done()
	return nil
}
