package main

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Dockerfile and this program describe the same images: the operator (the
// final stage) and the agent (stage "agent"), each its package built static
// to the same path, run as the same user.
func TestDockerfileMatches(t *testing.T) {
	raw, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	stages := map[string][]string{} // by name; the final stage is ""
	var builds []string
	name := ""
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "FROM "):
			_, name, _ = strings.Cut(line, " AS ")
			stages[name] = nil
		case strings.HasPrefix(line, "RUN ") && strings.Contains(line, "go build"):
			builds = append(builds, line)
		}
		if line != "" && !strings.HasPrefix(line, "#") {
			stages[name] = append(stages[name], line)
		}
	}
	for _, im := range []struct{ stage, binary, pkg string }{{"", operatorBinary, operatorPackage}, {"agent", agentBinary, agentPackage}} {
		for _, want := range []string{
			"COPY --from=build " + im.binary + " " + im.binary,
			"USER " + operatorUser,
			`ENTRYPOINT ["` + im.binary + `"]`,
		} {
			if !slices.Contains(stages[im.stage], want) || !strings.HasPrefix(stages[im.stage][0], "FROM scratch") {
				t.Errorf("Dockerfile's stage %q lacks %q or is not from scratch: %q", im.stage, want, stages[im.stage])
			}
		}
		if !slices.ContainsFunc(builds, func(b string) bool {
			return strings.Contains(b, "CGO_ENABLED=0") && strings.Contains(b, "-o "+im.binary+" ") && strings.HasSuffix(b, im.pkg)
		}) {
			t.Errorf("Dockerfile builds no static %s from %s: %q", im.binary, im.pkg, builds)
		}
	}
}

// The tarballs hold what they claim: each image's entrypoint and user, its
// files with their modes and owners, and the same bytes for the same input.
func TestImagesHoldWhatTheyClaim(t *testing.T) {
	dir := t.TempDir()
	bin := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("binary "+name), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	out := filepath.Join(dir, "images")
	bins := binaries{manager: bin("manager"), agent: bin("agent"), pause: bin("pause"), gatewaysim: bin("gatewaysim"), busybox: bin("busybox"),
		kubectl: bin("kubectl"), kubectlRef: "registry.k8s.io/kubectl:v1.36.3"}
	if err := run(out, bins); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		image      string
		entrypoint string
		user       string
		files      map[string]string // path -> "mode uid" or "-> target"
	}{
		{operatorName, operatorBinary, operatorUser, map[string]string{"manager": "755 0"}},
		{agentName, agentBinary, operatorUser, map[string]string{"hermes-drain-agent": "755 0"}},
		{"pause", "/pause", "65535:65535", map[string]string{"pause": "755 0"}},
		{"kubectl", "/bin/kubectl", operatorUser, map[string]string{"bin/kubectl": "755 0"}},
		{gatewayName, "/usr/local/bin/gatewaysim", gatewayUser, map[string]string{
			"usr/local/bin/gatewaysim": "755 0", "usr/local/bin/hermes-drain-agent": "755 0", "bin/busybox": "755 0", "bin/sh": "-> busybox",
			"bin/head": "-> busybox", "bin/sync": "-> busybox", "bin/ln": "-> busybox",
			"opt/data/": "755 10000", "tmp/": "1777 0",
		}},
	} {
		ref := tc.image + ":" + Tag
		if tc.image == "kubectl" {
			ref = bins.kubectlRef
		}
		tag, err := name.NewTag(ref)
		if err != nil {
			t.Fatal(err)
		}
		img, err := tarball.ImageFromPath(filepath.Join(out, tc.image+".tar"), &tag)
		if err != nil {
			t.Fatalf("%s: %v", tc.image, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Config.Entrypoint[0] != tc.entrypoint || cf.Config.User != tc.user || cf.OS != "linux" {
			t.Errorf("%s: entrypoint %v user %q os %q", tc.image, cf.Config.Entrypoint, cf.Config.User, cf.OS)
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 1 {
			t.Fatalf("%s: layers %d, %v", tc.image, len(layers), err)
		}
		rc, err := layers[0].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Typeflag == tar.TypeSymlink {
				got[h.Name] = "-> " + h.Linkname
			} else {
				got[h.Name] = fmt.Sprintf("%o %d", h.Mode&0o7777, h.Uid)
			}
		}
		for path, want := range tc.files {
			if got[path] != want {
				t.Errorf("%s: %s is %q, want %q", tc.image, path, got[path], want)
			}
		}
	}

	again := filepath.Join(dir, "again")
	if err := run(again, bins); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{operatorName, agentName, "pause", gatewayName, "kubectl"} {
		a, _ := os.ReadFile(filepath.Join(out, name+".tar"))
		b, _ := os.ReadFile(filepath.Join(again, name+".tar"))
		if string(a) != string(b) {
			t.Errorf("%s: two builds of the same binaries differ", name)
		}
	}
}
