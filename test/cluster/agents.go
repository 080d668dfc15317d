package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/satoken"
)

// AgentPort is the port every simulated agent listens on, on its pod's IP,
// and AgentProbePort where it serves /readyz.
const (
	AgentPort      = 9443
	AgentProbePort = 9444
)

// FarmOptions say what the simulated agents do besides the operator's calls.
type FarmOptions struct {
	// Readiness: each agent watches its gateway and serves /readyz.
	Readiness bool
}

// GatewayAccount is the ServiceAccount simulated agent pods run as.
const GatewayAccount = "gateway"

// WithAgent makes a gateway pod declare its agent (the hermes-drain port)
// and run as GatewayAccount, whose pod-bound tokens the farm's agents send.
func WithAgent(p *corev1.Pod) {
	p.Spec.ServiceAccountName = GatewayAccount
	p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{Name: drainv1.AgentPortName, ContainerPort: AgentPort})
}

// OperatorAccount makes the ServiceAccount namespace/name for a manager's
// --agent-account: the manager, with the cluster's admin credentials,
// requests its tokens for each agent's pod.
func (c *Cluster) OperatorAccount(ctx context.Context, namespace, name string) error {
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	return c.ensureAccount(ctx, cs, namespace, name)
}

func (c *Cluster) ensureAccount(ctx context.Context, cs kubernetes.Interface, namespace, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	if _, err := cs.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// ServeAgents plays the hermes-drain-agent sidecar of every gateway in gws
// (created WithAgent): for each, the agent's own server code serves the
// operator's calls on the pod's IP (kwok's, inside 127.0.0.0/8: see
// Options.PodCIDR), on the pod's HERMES_HOME folder, allowing the operator
// ServiceAccount namespace/name, and answering with a token bound to that
// pod. The agents run in shards of at most farmShard per child process
// (agentfarm.go) until stop is called (it waits for them to exit, so that
// their addresses are free again) or ctx ends. With opts.Readiness each also
// watches its gateway and serves /readyz on the pod's IP, port
// AgentProbePort (most of them read their home every second: a user gets 128
// inotify instances, and those reads cost the machine, so a measurement
// that does not need readiness leaves it off).
func (c *Cluster) ServeAgents(ctx context.Context, operator string, gws []*Gateway, opts FarmOptions) (stop func(), err error) {
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return nil, err
	}
	proc, err := c.sharedProc()
	if err != nil {
		return nil, err
	}
	for ns := range namespacesOf(gws) {
		if err := c.ensureAccount(ctx, cs, ns, GatewayAccount); err != nil {
			return nil, err
		}
	}
	agents := make([]farmAgent, len(gws))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, gw := range gws {
		g.Go(func() (err error) {
			agents[i], err = c.farmAgent(gctx, cs, gw)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var shards []*child
	stop = func() {
		cancel()
		for _, p := range shards {
			<-p.done
		}
	}
	for shard := range slices.Chunk(agents, farmShard) {
		spec := farmSpec{Kubeconfig: c.Kubeconfig, Operator: operator, ProcRoot: proc, Readiness: opts.Readiness, Agents: shard}
		p, err := c.startFarmShard(ctx, spec)
		if p != nil {
			shards = append(shards, p)
		}
		if err != nil {
			stop()
			return nil, err
		}
	}
	return stop, nil
}

func namespacesOf(gws []*Gateway) map[string]bool {
	seen := map[string]bool{}
	for _, g := range gws {
		seen[g.Namespace] = true
	}
	return seen
}

// farmAgent prepares one gateway's agent: its address on the pod's IP and
// a token bound to its pod.
func (c *Cluster) farmAgent(ctx context.Context, cs kubernetes.Interface, g *Gateway) (farmAgent, error) {
	pod, err := g.Pod(ctx)
	if err != nil {
		return farmAgent{}, err
	}
	if ip := net.ParseIP(pod.Status.PodIP); ip == nil || !ip.IsLoopback() {
		return farmAgent{}, fmt.Errorf("pod %s/%s has IP %q: an agent may only listen on loopback (start the cluster with a PodCIDR inside 127.0.0.0/8)", g.Namespace, g.Name, pod.Status.PodIP)
	}
	tok, err := cs.CoreV1().ServiceAccounts(g.Namespace).CreateToken(ctx, GatewayAccount, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences: []string{satoken.OperatorAudience}, ExpirationSeconds: ptr.To(int64(3600)),
		BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}, metav1.CreateOptions{})
	if err != nil {
		return farmAgent{}, fmt.Errorf("a token bound to %s/%s: %w", g.Namespace, g.Name, err)
	}
	tokenFile := filepath.Join(c.Dir, "agent-token-"+g.Namespace+"-"+g.Name)
	if err := os.WriteFile(tokenFile, []byte(tok.Status.Token), 0o600); err != nil {
		return farmAgent{}, err
	}
	return farmAgent{Home: g.Home, Listen: net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(AgentPort)), TokenFile: tokenFile}, nil
}

// sharedProc is a /proc for the farm's agents as a sidecar sees it in a pod
// that shares its PID namespace: this host's boot id and PID 1 (so the
// epoch is the one the gateway simulators, in this process, compute), and
// this process, which plays every gateway, as a container's first process.
// Each farm shard adds itself the same way (it plays the agents' container).
func (c *Cluster) sharedProc() (string, error) {
	root := filepath.Join(c.Dir, "agent-proc")
	for _, name := range []string{"sys/kernel/random/boot_id", "1/stat"} {
		b, err := os.ReadFile("/proc/" + name)
		if err != nil {
			return "", err
		}
		if err := writeProcFile(root, name, string(b)); err != nil {
			return "", err
		}
	}
	return root, addContainerProcess(root)
}

// addContainerProcess writes this process into the /proc at root as a
// container's first process: its parent (field 4, the first after the
// state, after the last ')') outside the namespace.
func addContainerProcess(root string) error {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return err
	}
	line := string(stat)
	i := strings.LastIndexByte(line, ')')
	fields := strings.Fields(line[i+1:])
	if i < 0 || len(fields) < 2 {
		return errors.New("/proc/self/stat: unexpected " + line)
	}
	fields[1] = "0"
	return writeProcFile(root, strconv.Itoa(os.Getpid())+"/stat", line[:i+1]+" "+strings.Join(fields, " ")+"\n")
}

func writeProcFile(root, name, content string) error {
	path := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o644)
}
