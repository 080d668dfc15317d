package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The agent runs beside every gateway: it links none of the operator's
// heavy packages (client-go's typed clients and exec streams, Prometheus,
// controller-runtime), which would more than double its size. They come in
// through one import of the operator's side (internal/transport) by mistake.
func TestTheAgentLinksNoneOfTheOperatorsPackages(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, banned := range []string{
			"github.com/hermes-agent/hermes-drain-operator/internal/transport",
			"k8s.io/client-go/kubernetes",
			"k8s.io/client-go/tools/remotecommand",
			"github.com/prometheus/client_golang",
			"sigs.k8s.io/controller-runtime",
		} {
			if pkg == banned || strings.HasPrefix(pkg, banned+"/") {
				t.Errorf("the agent links %s", pkg)
			}
		}
	}
}
