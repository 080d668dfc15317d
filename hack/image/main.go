// Command image writes the project's container images as tarballs that
// `ctr images import` (or `docker load`, `kind load image-archive`) takes,
// without a Docker engine: static binaries laid onto an empty base.
//
//	go run ./hack/image --out DIR --manager BIN --agent BIN --pause BIN --gatewaysim BIN --busybox BIN --kubectl BIN --kubectl-ref REF
//
// It writes DIR/hermes-drain-operator.tar (the operator, as in Dockerfile),
// DIR/pause.tar (the real node's sandbox), DIR/hermes-gateway-sim.tar (a
// test gateway: busybox for sh, cat, mv and the rest the in-container
// program needs, and the gateway simulator running as the upstream gateway
// does: uid 10000, HERMES_HOME /opt/data) and DIR/kubectl.tar (the pinned
// kubectl under the name of the upstream image, registry.k8s.io/kubectl,
// which docs/rollout.md's Helm hooks run: the real node cannot pull it).
package main

import (
	"archive/tar"
	"bytes"
	"cmp"
	_ "embed"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Tag is the tag of every image this writes.
const Tag = "dev"

// The operator's image, as Dockerfile builds it too (TestDockerfileMatches).
const (
	operatorName    = "hermes-drain-operator"
	operatorPackage = "./cmd/manager"
	operatorBinary  = "/manager"
	// operatorUser is distroless's nonroot user.
	operatorUser = "65532:65532"
)

// The agent's image (Dockerfile's stage "agent" too): the sidecar, and the
// command line a gateway image may copy. It runs as distroless's nonroot user unless the pod names the
// gateway's (docs/agent.md).
const (
	agentName    = "hermes-drain-agent"
	agentPackage = "./cmd/hermes-drain-agent"
	agentBinary  = "/hermes-drain-agent"
)

// The test gateway's image.
const (
	gatewayName = "hermes-gateway-sim"
	gatewayUser = "10000:10000"
	gatewayHome = "/opt/data"
)

// busyboxApplets are the commands the in-container program and a person
// debugging need.
var busyboxApplets = []string{"sh", "cat", "mv", "ln", "rm", "head", "sync", "stat", "date", "sleep", "ls", "mkdir", "touch", "tr", "grep", "wc", "kill", "pidof", "ps", "id", "awk", "test", "["}

// file is one entry of a layer.
type file struct {
	path     string
	mode     int64
	uid, gid int
	source   string // a file on this host to copy; "" for a directory or link
	content  string // or the file's content
	link     string // a symbolic link's target
}

// binaries are the static binaries the images hold.
type binaries struct {
	manager, agent, pause, gatewaysim, busybox, kubectl string
	// kubectlRef is the kubectl image's name and tag.
	kubectlRef string
}

func main() {
	out := flag.String("out", "bin/images", "where to write the tarballs")
	var b binaries
	flag.StringVar(&b.manager, "manager", "", "the static manager binary")
	flag.StringVar(&b.agent, "agent", "", "the static hermes-drain-agent binary")
	flag.StringVar(&b.pause, "pause", "", "the static pause binary")
	flag.StringVar(&b.gatewaysim, "gatewaysim", "", "the static gateway simulator binary")
	flag.StringVar(&b.busybox, "busybox", "/usr/bin/busybox", "a static busybox (Debian package busybox-static)")
	flag.StringVar(&b.kubectl, "kubectl", "", "the static kubectl binary")
	flag.StringVar(&b.kubectlRef, "kubectl-ref", "", "the kubectl image's name, as registry.k8s.io/kubectl:VERSION")
	flag.Parse()
	if err := run(*out, b); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s/{%s,%s,pause,%s}.tar (tag %s) and %s/kubectl.tar (%s)\n", *out, operatorName, agentName, gatewayName, Tag, *out, b.kubectlRef)
}

func run(out string, b binaries) error {
	if b.manager == "" || b.agent == "" || b.pause == "" || b.gatewaysim == "" || b.kubectl == "" || b.kubectlRef == "" {
		return fmt.Errorf("--manager, --agent, --pause, --gatewaysim, --kubectl and --kubectl-ref are required")
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	images := []struct {
		name   string
		files  []file
		config v1.Config
		ref    string // default name:Tag
	}{
		{operatorName, []file{{path: operatorBinary, mode: 0o755, source: b.manager}},
			v1.Config{Entrypoint: []string{operatorBinary}, User: operatorUser}, ""},
		{agentName, []file{{path: agentBinary, mode: 0o755, source: b.agent}},
			v1.Config{Entrypoint: []string{agentBinary}, User: operatorUser}, ""},
		{"pause", []file{{path: "/pause", mode: 0o755, source: b.pause}},
			v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"}, ""},
		{gatewayName, gatewayFiles(b), v1.Config{
			Entrypoint: []string{"/usr/local/bin/gatewaysim", "--homes", gatewayHome},
			User:       gatewayUser,
			Env:        []string{"HERMES_HOME=" + gatewayHome, "PATH=/usr/local/bin:/bin"},
			WorkingDir: gatewayHome,
		}, ""},
		{"kubectl", []file{{path: "/bin/kubectl", mode: 0o755, source: b.kubectl}},
			v1.Config{Entrypoint: []string{"/bin/kubectl"}, User: operatorUser}, b.kubectlRef},
	}
	for _, im := range images {
		img, err := build(im.files, im.config)
		if err != nil {
			return fmt.Errorf("%s: %w", im.name, err)
		}
		ref, err := name.ParseReference(cmp.Or(im.ref, im.name+":"+Tag))
		if err != nil {
			return err
		}
		path := filepath.Join(out, im.name+".tar")
		if err := tarball.WriteToFile(path, ref, img); err != nil {
			return fmt.Errorf("%s: %w", im.name, err)
		}
	}
	return nil
}

// gatewaySlots runs a root gateway and profile gateways in one container,
// as upstream's s6 slots do.
//
//go:embed gateway-slots.sh
var gatewaySlots string

// gatewayFiles is busybox with its applets, the simulator, the agent's
// command line (for a person or a preStop hook), and a HERMES_HOME owned by
// the gateway's user, as in the upstream image.
func gatewayFiles(b binaries) []file {
	files := []file{
		{path: "/bin", mode: 0o755},
		{path: "/bin/busybox", mode: 0o755, source: b.busybox},
		{path: "/tmp", mode: 0o1777},
		{path: "/usr/local/bin/gatewaysim", mode: 0o755, source: b.gatewaysim},
		{path: "/usr/local/bin/gateway-slots", mode: 0o755, content: gatewaySlots},
		{path: "/usr/local/bin/hermes-drain-agent", mode: 0o755, source: b.agent},
		{path: "/opt/data", mode: 0o755, uid: 10000, gid: 10000},
	}
	for _, applet := range busyboxApplets {
		files = append(files, file{path: "/bin/" + applet, link: "busybox"})
	}
	return files
}

// build makes an image of one layer holding files, with config.
func build(files []file, config v1.Config) (v1.Image, error) {
	var buf bytes.Buffer
	if err := writeLayer(&buf, files); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", runtime.GOARCH, config
	return mutate.ConfigFile(img, cf)
}

// writeLayer writes files as a tar layer, their parent directories first.
// Times are fixed, so the same binaries make the same image.
func writeLayer(w io.Writer, files []file) error {
	tw := tar.NewWriter(w)
	epoch := time.Unix(0, 0)
	made := map[string]bool{}
	for _, f := range files {
		for _, dir := range parents(f.path) {
			if made[dir] {
				continue
			}
			made[dir] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir[1:] + "/", Mode: 0o755, ModTime: epoch}); err != nil {
				return err
			}
		}
		h := &tar.Header{Name: f.path[1:], Mode: f.mode, Uid: f.uid, Gid: f.gid, ModTime: epoch}
		switch {
		case f.link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, f.link, 0o777
		case f.source == "" && f.content == "":
			if made[f.path] {
				continue
			}
			made[f.path] = true
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		default:
			data := []byte(f.content)
			if f.source != "" {
				var err error
				if data, err = os.ReadFile(f.source); err != nil {
					return err
				}
			}
			h.Typeflag, h.Size = tar.TypeReg, int64(len(data))
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if _, err := tw.Write(data); err != nil {
				return err
			}
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
	}
	return tw.Close()
}

// parents are the directories above path, outermost first.
func parents(path string) []string {
	var dirs []string
	for d := filepath.Dir(path); d != "/"; d = filepath.Dir(d) {
		dirs = append([]string{d}, dirs...)
	}
	return dirs
}
