package cluster

import (
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

// Run runs a pinned tool of bin/ (kubectl, helm) against the cluster, and
// returns its combined output.
func (c *Cluster) Run(tool string, args ...string) (string, error) {
	out, err := exec.Command(filepath.Join(c.Bin, tool), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w", tool, strings.Join(args, " "), err)
	}
	return string(out), nil
}

// Build builds a command of this repository (its package path, such as
// "./cmd/manager") into dir, as make does, and returns the binary's path.
func Build(dir, pkg string) (string, error) {
	bin := filepath.Join(dir, filepath.Base(pkg))
	build := exec.Command("go", "build", "-trimpath", "-o", bin, pkg)
	build.Dir = RepoRoot()
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v: %s", pkg, err, out)
	}
	return bin, nil
}

// Manager is a running operator binary.
type Manager struct {
	// Log is the file its output goes to.
	Log string
	cmd *exec.Cmd
}

// StartManager runs the operator binary bin with kubeconfig and args, its
// output in Dir/logName.log. It dies with us, even if we are killed.
func (c *Cluster) StartManager(bin, logName, kubeconfig string, args ...string) (*Manager, error) {
	m := &Manager{Log: filepath.Join(c.Dir, logName+".log")}
	logFile, err := os.Create(m.Log)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	m.cmd = exec.Command(bin, append([]string{"--metrics-bind-address=0", "--health-probe-bind-address=0"}, args...)...)
	m.cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	m.cmd.Stdout, m.cmd.Stderr = logFile, logFile
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	return m, nil
}

// RunTests runs a test package's tests while the manager runs, then stops
// it; when a test failed it prints the end of the manager's log.
func (m *Manager) RunTests(tests *testing.M) int {
	code := tests.Run()
	m.Stop()
	if code != 0 {
		log, _ := os.ReadFile(m.Log)
		fmt.Fprintf(os.Stderr, "--- manager log (last 4 KiB):\n%s\n", log[max(0, len(log)-4096):])
	}
	return code
}

// Stop asks the manager to shut down gracefully and waits for it.
func (m *Manager) Stop() {
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	_ = m.cmd.Wait()
}

// Kill kills the manager at once, as a crash or a lost node would.
func (m *Manager) Kill() {
	_ = m.cmd.Process.Kill()
	_ = m.cmd.Wait()
}

// Memory is what a manager process holds in RAM, in bytes.
type Memory struct {
	// Peak is the most it has held so far (VmHWM).
	Peak int64
	// Binary is how much of it is the executable's own pages (RssFile):
	// code and read-only data, clean and reclaimable, and about the same
	// whatever the manager does.
	Binary int64
}

// Memory reads the manager's memory from /proc.
func (m *Manager) Memory() (Memory, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", m.cmd.Process.Pid))
	if err != nil {
		return Memory{}, err
	}
	var mem Memory
	wanted := map[string]*int64{"VmHWM": &mem.Peak, "RssFile": &mem.Binary}
	for _, line := range strings.Split(string(status), "\n") {
		name, value, _ := strings.Cut(line, ":")
		if into, ok := wanted[name]; ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(value), "kB")), 10, 64)
			if err != nil {
				return mem, fmt.Errorf("%s in /proc/%d/status: %w", name, m.cmd.Process.Pid, err)
			}
			*into = kb * 1024
			delete(wanted, name)
		}
	}
	if len(wanted) > 0 {
		return mem, fmt.Errorf("/proc/%d/status lacks %v", m.cmd.Process.Pid, slices.Sorted(maps.Keys(wanted)))
	}
	return mem, nil
}

// ImpersonatingKubeconfig writes a kubeconfig that acts as the service
// account namespace/name, with exactly its RBAC: the admin user only
// impersonates it.
func (c *Cluster) ImpersonatingKubeconfig(namespace, name string) (string, error) {
	cfg, err := clientcmd.LoadFromFile(c.Kubeconfig)
	if err != nil {
		return "", err
	}
	for _, auth := range cfg.AuthInfos {
		auth.Impersonate = "system:serviceaccount:" + namespace + ":" + name
		auth.ImpersonateGroups = []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"}
	}
	path := filepath.Join(c.Dir, "kubeconfig-"+namespace+"-"+name)
	return path, clientcmd.WriteToFile(*cfg, path)
}

// ChartPath is the operator's Helm chart.
var ChartPath = filepath.Join(RepoRoot(), "charts", "hermes-drain-operator")

// OperatorRelease and OperatorNamespace are where InstallOperator installs
// the chart.
const (
	OperatorRelease   = "hdo"
	OperatorNamespace = "hermes-drain-system"
)

// InstallOperator installs the Helm chart onto the real node with `helm
// install --wait`: the operator runs as a pod from the image `make image`
// built, with the chart's RBAC only (its ServiceAccount's token). The node
// has no pod network, so the pod runs in the node's network, its servers on
// free loopback ports, and reaches the API server at its loopback address.
// set adds `--set` values.
func (c *Cluster) InstallOperator(set ...string) error {
	api, err := url.Parse(c.Config.Host)
	if err != nil {
		return err
	}
	probes, err := FreePort()
	if err != nil {
		return err
	}
	metrics, err := FreePort()
	if err != nil {
		return err
	}
	args := []string{"install", OperatorRelease, ChartPath,
		"-n", OperatorNamespace, "--create-namespace", "--wait", "--timeout", "120s",
		"--set", "image.repository=docker.io/library/hermes-drain-operator,image.tag=dev,image.pullPolicy=Never",
		"--set", fmt.Sprintf("hostNetwork=true,bindAddress=127.0.0.1,healthProbePort=%d,metrics.port=%d", probes, metrics),
		"--set", "env[0].name=KUBERNETES_SERVICE_HOST,env[1].name=KUBERNETES_SERVICE_PORT",
		"--set-string", "env[0].value=" + api.Hostname() + ",env[1].value=" + api.Port(),
	}
	for _, v := range set {
		args = append(args, "--set", v)
	}
	if out, err := c.Run("helm", args...); err != nil {
		state, _ := c.Run("kubectl", "get", "events,pods", "-A")
		return fmt.Errorf("%w: %s\n%s", err, out, state)
	}
	return nil
}

// OperatorLog is the last lines of the installed operator's log.
func (c *Cluster) OperatorLog() string {
	out, err := c.Run("kubectl", "-n", OperatorNamespace, "logs", "deploy/"+OperatorRelease+"-hermes-drain-operator", "--tail=60")
	if err != nil {
		return fmt.Sprintf("%v: %s", err, out)
	}
	return out
}
