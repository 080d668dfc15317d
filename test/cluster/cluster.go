// Package cluster runs a local simulated Kubernetes cluster on loopback: the
// pinned etcd and kube-apiserver (through controller-runtime's envtest) and
// kwok, whose node "runs" pods at once and whose Exec rules make pods/exec
// through the API server run a real command on this host, in a folder per
// pod. A gateway pod's folder is its HERMES_HOME. Everything comes from bin/;
// nothing is downloaded.
package cluster

import (
	"cmp"
	"context"
	_ "embed"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
	"github.com/hermes-agent/hermes-drain-operator/internal/transport"
)

//go:embed kwok-stages.yaml
var kwokStages []byte

// NodeName is the simulated node every gateway pod is bound to.
const NodeName = "kwok-node"

// Cluster is a running local cluster.
type Cluster struct {
	Config *rest.Config
	Client client.Client
	// Kubeconfig is an admin kubeconfig file, for kubectl and the manager.
	Kubeconfig string
	// Dir holds the kubeconfig, kwok's config and log, and the pods' folders.
	Dir string
	// Bin is the folder with the pinned binaries (kubectl among them).
	Bin string

	env   *envtest.Environment
	procs []*child
	kwok  *child
	// anchor holds the real node's mount namespace; ctr runs ctr against
	// its containerd (nil without a real node).
	anchor int
	ctr    func(args ...string) (string, error)
	// apiLog is the API server's output, across restarts.
	apiLog *os.File
	// podCIDR is Options.PodCIDR.
	podCIDR string
	// exec runs commands in pods through pods/exec, as the operator does.
	exec *transport.ExecRunner
}

// child is a process of the cluster's (kwok, kube-controller-manager).
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// RepoRoot is the repository's root, found from this file's location.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Options change how the cluster starts.
type Options struct {
	// WithoutOperatorCRDs leaves the GatewayDrain CRD to be installed later
	// (by the Helm chart).
	WithoutOperatorCRDs bool
	// RealNode runs a real kubelet with containerd and runc (node
	// RealNodeName) instead of kwok: `make node-tools image` first.
	RealNode bool
	// PodCIDR is where kwok gives pods their IPs (default 10.0.0.0/24, as
	// kwok's own default). One inside 127.0.0.0/8 lets one process serve every
	// pod's agent on the pod's own IP without leaving loopback; but the API
	// server refuses loopback addresses in EndpointSlices, so Services then
	// list no endpoints.
	PodCIDR string
}

// Start brings the cluster up with its state in dir (which must exist) and
// returns once kwok is warm.
func Start(ctx context.Context, dir string, opts Options) (c *Cluster, err error) {
	bin := filepath.Join(RepoRoot(), "bin")
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return nil, fmt.Errorf("no %s in %s: run `make cluster-tools`", b, bin)
		}
	}
	c = &Cluster{Dir: dir, Bin: bin, podCIDR: cmp.Or(opts.PodCIDR, "10.0.0.0/24")}
	crds := []string{filepath.Join(RepoRoot(), "test", "cluster", "crds")}
	if !opts.WithoutOperatorCRDs {
		crds = append(crds, testenv.OperatorCRDs())
	}
	env, scheme, err := testenv.NewEnvironment(crds...)
	if err != nil {
		return nil, err
	}
	c.env = env
	// The API server reaches kwok's kubelet endpoint (pods/exec) at the
	// node's InternalIP, 127.0.0.1.
	api := c.env.ControlPlane.GetAPIServer()
	api.Configure().Set("kubelet-preferred-address-types", "InternalIP")
	if opts.RealNode {
		// Real pods get a ServiceAccount token as in any cluster (envtest
		// turns the admission plugin off): the operator runs as a pod there.
		api.Configure().Disable("disable-admission-plugins")
	}
	// Certificates in a folder of ours, which envtest does not remove on
	// stop, so that RestartAPIServer brings back the same serving and client
	// CAs and every kubeconfig stays valid.
	api.CertDir = filepath.Join(dir, "apiserver")
	if err := os.MkdirAll(api.CertDir, 0o700); err != nil {
		return nil, err
	}
	if c.apiLog, err = os.Create(filepath.Join(dir, "kube-apiserver.log")); err != nil {
		return nil, err
	}
	api.Out, api.Err = c.apiLog, c.apiLog
	// The API server's graceful shutdown waits up to a minute for open
	// watch connections to end; after 5 s it is killed instead, as a
	// kubelet would after a short grace period.
	c.env.ControlPlaneStopTimeout = 5 * time.Second
	if c.Config, err = c.env.Start(); err != nil {
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if c.Client, err = client.New(c.Config, client.Options{Scheme: scheme}); err != nil {
		return nil, err
	}
	if c.exec, err = transport.NewExecRunner(c.Config, 10*time.Second); err != nil {
		return nil, err
	}
	admin, err := c.env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, err
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return nil, err
	}
	c.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, kubeconfig, 0o600); err != nil {
		return nil, err
	}
	// The controllers the tests need: EndpointSlices (Services show which
	// gateways are ready), Deployments and StatefulSets (the Helm chart,
	// rollouts), Jobs (the chart's uninstall hook), and the garbage
	// collector; and a scheduler. On the real
	// node also each namespace's default ServiceAccount and the
	// kube-root-ca.crt ConfigMap, which a pod's token volume needs.
	controllers := []string{"endpointslice", "deployment", "replicaset", "statefulset", "job", "garbagecollector"}
	kcmArgs := []string{"--kubeconfig", c.Kubeconfig, "--leader-elect=false", "--secure-port=0"}
	if opts.RealNode {
		rootCA := filepath.Join(dir, "apiserver", "serving-ca.crt")
		if err := os.WriteFile(rootCA, c.Config.CAData, 0o644); err != nil {
			return nil, err
		}
		controllers = append(controllers, "serviceaccount-controller", "root-ca-certificate-publisher-controller")
		kcmArgs = append(kcmArgs, "--root-ca-file", rootCA)
	}
	kcmArgs = append(kcmArgs, "--controllers="+strings.Join(controllers, ","))
	if _, err := c.start("kube-controller-manager", "kube-controller-manager", kcmArgs...); err != nil {
		return nil, err
	}
	if _, err := c.start("kube-scheduler", "kube-scheduler", "--kubeconfig", c.Kubeconfig,
		"--leader-elect=false", "--secure-port=0"); err != nil {
		return nil, err
	}
	if opts.RealNode {
		return c, c.startRealNode(ctx)
	}
	return c, c.startKwok(ctx)
}

// startKwok starts kwok and warms it up. kwok v0.8.0 builds each stage's CEL
// environment on first use and records types in an unsynchronised global
// map: two first uses at once can crash it ("concurrent map writes"). So the
// node and one warm-up pod take every stage through its first use, one at a
// time, before anything else runs; a kwok that dies meanwhile is restarted.
func (c *Cluster) startKwok(ctx context.Context) error {
	if err := c.createNode(ctx); err != nil {
		return err
	}
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		if err = c.runKwok(attempt); err != nil {
			return err
		}
		if err = c.warmUp(ctx); err == nil {
			return nil
		}
		select {
		case <-c.kwok.done: // crashed while warming up: try again
		default:
			return err
		}
	}
	return err
}

func (c *Cluster) createNode(ctx context.Context) error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:        NodeName,
		Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
		Labels:      map[string]string{"kubernetes.io/hostname": NodeName, "type": "kwok"},
	}}
	return c.Client.Create(ctx, node)
}

func (c *Cluster) runKwok(attempt int) error {
	port, err := FreePort()
	if err != nil {
		return err
	}
	stages := filepath.Join(c.Dir, "kwok-stages.yaml")
	if err := os.WriteFile(stages, kwokStages, 0o644); err != nil {
		return err
	}
	kwok, err := c.start(fmt.Sprintf("kwok-%d", attempt), "kwok",
		"--kubeconfig", c.Kubeconfig,
		"--config", stages,
		"--manage-nodes-with-annotation-selector", "kwok.x-k8s.io/node=fake",
		"--node-ip", "127.0.0.1",
		"--node-port", fmt.Sprint(port),
		"--server-address", fmt.Sprintf("127.0.0.1:%d", port),
		"--enable-crds", "Exec",
		"--cidr", c.podCIDR,
	)
	c.kwok = kwok
	return err
}

// start starts bin/binary with its output in logName.log; it dies with us,
// even if we are killed.
func (c *Cluster) start(logName, binary string, args ...string) (*child, error) {
	return c.startCommand(logName, exec.Command(filepath.Join(c.Bin, binary), args...))
}

// startCommand starts cmd with its output in logName.log; it dies with us.
func (c *Cluster) startCommand(logName string, cmd *exec.Cmd) (*child, error) {
	logFile, err := os.Create(filepath.Join(c.Dir, logName+".log"))
	if err != nil {
		return nil, err
	}
	binary := filepath.Base(cmd.Path)
	p := &child{name: logName, cmd: cmd, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", binary, err)
	}
	go func() {
		_ = p.cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	c.procs = append(c.procs, p)
	return p, nil
}

// untaint lifts the not-ready taint the API server puts on a new node,
// doing the part of the node lifecycle controller (which this cluster does
// not run) once the node is Ready, so that the scheduler places pods.
func (c *Cluster) untaint(ctx context.Context, name string) error {
	var node corev1.Node
	if err := c.Client.Get(ctx, client.ObjectKey{Name: name}, &node); err != nil {
		return err
	}
	if len(node.Spec.Taints) == 0 {
		return nil
	}
	patch := client.MergeFrom(node.DeepCopy())
	node.Spec.Taints = nil
	return c.Client.Patch(ctx, &node, patch)
}

// warmUp waits for the node to be Ready, then runs one pod through its
// whole life (created, running, deleted).
func (c *Cluster) warmUp(ctx context.Context) error {
	if err := c.waitKwok(ctx, "node Ready", func() bool { return c.nodeReady(ctx, NodeName) }); err != nil {
		return err
	}
	if err := c.untaint(ctx, NodeName); err != nil {
		return err
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "kwok-warm-up"},
		Spec:       corev1.PodSpec{NodeName: NodeName, Containers: []corev1.Container{{Name: "c", Image: "warm-up"}}},
	}
	if err := c.Client.Create(ctx, pod); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	if err := c.waitKwok(ctx, "warm-up pod running", func() bool {
		err := c.Client.Get(ctx, client.ObjectKeyFromObject(pod), pod)
		return err == nil && pod.Status.Phase == corev1.PodRunning
	}); err != nil {
		return err
	}
	if err := c.Client.Delete(ctx, pod); err != nil {
		return err
	}
	return c.waitKwok(ctx, "warm-up pod deleted", func() bool {
		return apierrors.IsNotFound(c.Client.Get(ctx, client.ObjectKeyFromObject(pod), &corev1.Pod{}))
	})
}

// waitKwok polls done until it holds, kwok exits, or a minute passes.
func (c *Cluster) waitKwok(ctx context.Context, what string, done func() bool) error {
	return c.waitFor(ctx, what, time.Minute, c.kwok, done)
}

// waitFor polls done every 100 ms until it holds, or gives up after
// timeout, or at once if the process p (when not nil) exits, quoting its log.
func (c *Cluster) waitFor(ctx context.Context, what string, timeout time.Duration, p *child, done func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var exited chan struct{}
	if p != nil {
		exited = p.done
	}
	for !done() {
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(c.Dir, p.name+".log"))
			return fmt.Errorf("%s exited waiting for %s: %s", p.name, what, head(log, 3000))
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// nodeReady reports whether the node of this name is Ready.
func (c *Cluster) nodeReady(ctx context.Context, name string) bool {
	var node corev1.Node
	if err := c.Client.Get(ctx, client.ObjectKey{Name: name}, &node); err != nil {
		return false
	}
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// Stop tears everything down: kwok and kube-controller-manager, then the
// API server and etcd.
func (c *Cluster) Stop() {
	if c.anchor != 0 {
		c.stopRealNode()
	}
	for _, p := range c.procs {
		stop(p)
	}
	if c.env != nil {
		_ = c.env.Stop()
	}
	if c.apiLog != nil {
		c.apiLog.Close()
	}
}

// stop ends a child: SIGTERM, then SIGKILL after 5 s.
func stop(p *child) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// stopChild stops the child of this name, if it runs.
func (c *Cluster) stopChild(name string) {
	for _, p := range c.procs {
		if p.name == name {
			stop(p)
		}
	}
}

// envtestUser is an identity for a cluster component. The test API server
// authorizes with RBAC alone (no Node authorizer), so the kubelet is an
// administrator here.
func envtestUser(name string) envtest.User {
	return envtest.User{Name: name, Groups: []string{"system:masters"}}
}

// RestartAPIServer stops the API server (SIGTERM, then SIGKILL after
// StopTimeout) and starts it again on the same port, certificates and etcd,
// as a control-plane upgrade or crash would, and returns how long it was
// away.
func (c *Cluster) RestartAPIServer() (time.Duration, error) {
	api := c.env.ControlPlane.GetAPIServer()
	start := time.Now()
	// Stop's only errors say that the shutdown took longer than StopTimeout
	// and the process was killed, or that it was gone already: either way
	// it no longer runs.
	_ = api.Stop()
	if err := api.Start(); err != nil {
		return 0, fmt.Errorf("starting the API server again: %w", err)
	}
	return time.Since(start), nil
}

// FreePort is a TCP port free on loopback now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func head(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}
