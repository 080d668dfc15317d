package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"sigs.k8s.io/yaml"
)

// The krew manifest template renders, as krew-release-bot would, into a
// manifest whose plugin name is the one kubectl derives from this binary's
// name, for each platform it lists.
func TestKrewManifest(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", ".krew.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := template.New("krew").Funcs(template.FuncMap{
		// As krew-release-bot's: the URL is a template of the tag too.
		"addURIAndSha": func(uri, tag string) string {
			return "uri: " + strings.ReplaceAll(uri, "{{ .TagName }}", tag) + "\n    sha256: " + strings.Repeat("ab", 32)
		},
	}).Parse(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, map[string]string{"TagName": "v0.1.0"}); err != nil {
		t.Fatal(err)
	}
	var manifest struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			Version   string `json:"version"`
			Platforms []struct {
				Selector struct {
					MatchLabels map[string]string `json:"matchLabels"`
				} `json:"selector"`
				URI    string `json:"uri"`
				Sha256 string `json:"sha256"`
				Bin    string `json:"bin"`
			} `json:"platforms"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(out.Bytes(), &manifest); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	root := newRootCommand(genericiooptions.NewTestIOStreamsDiscard())
	if manifest.Kind != "Plugin" || "kubectl "+manifest.Metadata.Name != root.DisplayName() || manifest.Spec.Version != "v0.1.0" || len(manifest.Spec.Platforms) != 4 {
		t.Fatalf("manifest: %+v (the command calls itself %q)", manifest, root.DisplayName())
	}
	for _, p := range manifest.Spec.Platforms {
		platform := p.Selector.MatchLabels["os"] + "_" + p.Selector.MatchLabels["arch"]
		if p.Bin != "kubectl-hermes_drain" || !strings.HasSuffix(p.URI, "/v0.1.0/kubectl-hermes_drain_"+platform+".tar.gz") || len(p.Sha256) != 64 {
			t.Errorf("platform %s: %+v", platform, p)
		}
	}
}
