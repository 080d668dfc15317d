package transport

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// LocalRunner runs the command on this host, as if this host were the
// gateway's container. The envtest suite uses it with real directories as
// HERMES_HOMEs, so the reconciler is proven against the real program.
type LocalRunner struct{}

func (LocalRunner) Run(ctx context.Context, _ Pod, argv []string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s: %w: %s", argv[0], err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}
