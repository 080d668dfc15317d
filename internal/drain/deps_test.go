package drain

import (
	"os/exec"
	"strings"
	"testing"
)

// What a drain is lives here, apart from the reconciler that acts on it:
// the plugin, the readiness reconciler and the demo read drains through
// this package and link none of the drain reconciler (its metrics
// registration, its calls into containers).
func TestReadersOfDrainsLinkNoReconciler(t *testing.T) {
	const module = "github.com/hermes-agent/hermes-drain-operator/"
	for _, pkg := range []string{"cmd/kubectl-hermes_drain", "controllers/podreadiness", "hack/demo", "internal/drain"} {
		out, err := exec.Command("go", "list", "-deps", module+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v: %s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if dep == module+"controllers/gatewaydrain" {
				t.Errorf("%s links the drain reconciler", pkg)
			}
		}
	}
}
