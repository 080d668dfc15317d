package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// RealNodeName is the real node's name and InternalIP: the API server
// reaches its kubelet on loopback.
const RealNodeName = "127.0.0.1"

// The settings this machine needs, each an obstacle met
// (../shared/docs/real-node-facts.md has why):
//   - containerd and the kubelet run in a private mount namespace, held by
//     an anchor process, where /run, /var/lib, /var/log and /opt are
//     overlays with their upper layers in the cluster's folder (their
//     hard-coded paths never touch the host), and the kernel settings the
//     kubelet insists on writing are bind-mounted copies (it never changes
//     this shared machine's);
//   - cgroup v1 with the cgroupfs driver, runc (Debian's; crun rejects
//     containerd 2.4's runtime spec), restrict_oom_score_adj (no
//     CAP_SYS_RESOURCE here);
//   - the node is named 127.0.0.1 so that its InternalIP is loopback; pods
//     use hostNetwork, with only the loopback CNI plugin: nothing leaves
//     loopback.
var kernelSettings = map[string]string{
	"vm/overcommit_memory": "1", "vm/panic_on_oom": "0", "kernel/panic": "10", "kernel/panic_on_oops": "1",
	"kernel/keys/root_maxkeys": "1000000", "kernel/keys/root_maxbytes": "25000000",
}

const containerdConfig = `version = 3
root = "%[1]s/root"
state = "%[1]s/state"

[grpc]
  address = "%[1]s/containerd.sock"

[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = "docker.io/library/pause:dev"

[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "%[2]s"
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "%[1]s/cni"

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
`

// The kubelet authenticates nobody and allows everything: it listens on
// loopback only, for this test node, and the test API server presents no
// client certificate to it.
const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: %[2]d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %[3]d
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%[1]s/containerd/containerd.sock
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
volumePluginDir: %[1]s/kubelet/volume-plugins
podLogsDir: %[1]s/kubelet/pod-logs
makeIPTablesUtilChains: false
resolvConf: ""
evictionHard: {}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
enforceNodeAllocatable: []
localStorageCapacityIsolation: false
`

// startRealNode brings up containerd and a kubelet on this machine, imports
// the images `make image` wrote, and waits for the node to be Ready.
func (c *Cluster) startRealNode(ctx context.Context) error {
	runc, err := exec.LookPath("runc")
	if err != nil {
		return fmt.Errorf("no runc: run `make node-tools`: %w", err)
	}
	dir := filepath.Join(c.Dir, "node")
	anchor, err := c.startAnchor(dir)
	if err != nil {
		return err
	}
	cd := filepath.Join(dir, "containerd")
	for _, d := range []string{filepath.Join(cd, "cni"), filepath.Join(dir, "kubelet", "root"), filepath.Join(dir, "kubelet", "certs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(cd, "cni", "10-loopback.conflist"), []byte(`{"cniVersion": "1.0.0", "name": "loopback", "plugins": [{"type": "loopback"}]}`), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cd, "config.toml"), []byte(fmt.Sprintf(containerdConfig, cd, runc)), 0o644); err != nil {
		return err
	}
	containerd, err := c.startIn(anchor, "containerd", "containerd", "--config", filepath.Join(cd, "config.toml"))
	if err != nil {
		return err
	}
	c.ctr = func(args ...string) (string, error) {
		out, err := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(anchor), "-m", "--", filepath.Join(c.Bin, "ctr"), "-a", filepath.Join(cd, "containerd.sock"), "-n", "k8s.io"}, args...)...).CombinedOutput()
		return string(out), err
	}
	if err := c.waitFor(ctx, "containerd to answer", 30*time.Second, containerd, func() bool { _, err := c.ctr("version"); return err == nil }); err != nil {
		return err
	}
	for _, image := range []string{"pause", "hermes-gateway-sim", "hermes-drain-operator", "hermes-drain-agent", "kubectl"} {
		if out, err := c.ctr("images", "import", filepath.Join(c.Bin, "images", image+".tar")); err != nil {
			return fmt.Errorf("importing %s (run `make image`): %w: %s", image, err, out)
		}
	}

	kubeletUser, err := c.env.AddUser(envtestUser("system:node:"+RealNodeName), nil)
	if err != nil {
		return err
	}
	kubeconfig, err := kubeletUser.KubeConfig()
	if err != nil {
		return err
	}
	kubeletKubeconfig := filepath.Join(dir, "kubelet", "kubeconfig")
	if err := os.WriteFile(kubeletKubeconfig, kubeconfig, 0o600); err != nil {
		return err
	}
	port, err := FreePort()
	if err != nil {
		return err
	}
	healthz, err := FreePort()
	if err != nil {
		return err
	}
	config := filepath.Join(dir, "kubelet", "config.yaml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(kubeletConfig, dir, port, healthz)), 0o644); err != nil {
		return err
	}
	kubelet, err := c.startIn(anchor, "kubelet", "kubelet", "--config", config, "--kubeconfig", kubeletKubeconfig,
		"--root-dir", filepath.Join(dir, "kubelet", "root"), "--cert-dir", filepath.Join(dir, "kubelet", "certs"),
		"--hostname-override", RealNodeName)
	if err != nil {
		return err
	}
	if err := c.waitFor(ctx, "the real node Ready", 90*time.Second, kubelet, func() bool { return c.nodeReady(ctx, RealNodeName) }); err != nil {
		return err
	}
	return c.untaint(ctx, RealNodeName)
}

// startAnchor starts the process that holds the node's private mount
// namespace, and lays the overlays and kernel setting copies into it.
func (c *Cluster) startAnchor(dir string) (int, error) {
	p, err := c.startCommand("anchor", exec.Command("unshare", "--mount", "--propagation", "private", "sleep", "infinity"))
	if err != nil {
		return 0, err
	}
	pid := p.cmd.Process.Pid
	// The namespace exists once unshare has exec'd sleep.
	if err := c.waitFor(context.Background(), "the node's mount namespace", 10*time.Second, p, func() bool {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		return strings.TrimSpace(string(comm)) == "sleep"
	}); err != nil {
		return 0, err
	}
	in := func(args ...string) error {
		out, err := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(pid), "-m", "--"}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	for _, d := range []string{"run", "var/lib", "var/log", "opt"} {
		upper, work := filepath.Join(dir, "overlay", d, "upper"), filepath.Join(dir, "overlay", d, "work")
		for _, p := range []string{upper, work} {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return 0, err
			}
		}
		if err := in("mount", "-t", "overlay", "overlay", "-o", "lowerdir=/"+d+",upperdir="+upper+",workdir="+work, "/"+d); err != nil {
			return 0, err
		}
	}
	for key, value := range kernelSettings {
		copyOf := filepath.Join(dir, "sysctl", strings.ReplaceAll(key, "/", "."))
		if err := os.MkdirAll(filepath.Dir(copyOf), 0o755); err != nil {
			return 0, err
		}
		if err := os.WriteFile(copyOf, []byte(value+"\n"), 0o644); err != nil {
			return 0, err
		}
		if err := in("mount", "--bind", copyOf, "/proc/sys/"+key); err != nil {
			return 0, err
		}
	}
	c.anchor = pid
	return pid, nil
}

// startIn starts bin/binary in the anchor's mount namespace.
func (c *Cluster) startIn(anchor int, logName, binary string, args ...string) (*child, error) {
	return c.startCommand(logName, exec.Command("nsenter", append([]string{"-t", strconv.Itoa(anchor), "-m", "--", filepath.Join(c.Bin, binary)}, args...)...))
}

// stopRealNode stops the kubelet, every container, containerd, the shims
// and the anchor (its mounts go with its namespace), and removes the
// cgroups the kubelet made, leaving nothing behind on the host.
func (c *Cluster) stopRealNode() {
	if c.ctr != nil {
		for _, name := range []string{"kubelet"} {
			c.stopChild(name)
		}
		if out, err := c.ctr("tasks", "ls", "-q"); err == nil {
			for _, id := range strings.Fields(out) {
				_, _ = c.ctr("tasks", "kill", "-s", "SIGKILL", id)
			}
		}
		c.stopChild("containerd")
	}
	// Shims outlive containerd on purpose; end those of this node.
	if out, err := exec.Command("pgrep", "-f", "containerd-shim-runc-v2 .*"+filepath.Join(c.Dir, "node")).Output(); err == nil {
		for _, pid := range strings.Fields(string(out)) {
			if n, err := strconv.Atoi(pid); err == nil {
				_ = syscall.Kill(n, syscall.SIGKILL)
			}
		}
	}
	c.stopChild("anchor")
	cgroups, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods")
	for _, root := range cgroups {
		removeCgroup(root)
	}
}

// removeCgroup removes a cgroup and those below it, innermost first.
func removeCgroup(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			removeCgroup(filepath.Join(dir, e.Name()))
		}
	}
	_ = os.Remove(dir)
}
