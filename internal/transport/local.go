package transport

import (
	"bytes"
	"context"
	"fmt"
	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"os/exec"
	"slices"
	"strings"
)

// LocalRunner runs the command on this host, as if this host were the
// gateway's container. The envtest suite uses it with real directories as
// HERMES_HOMEs, so the reconciler is proven against the real program.
type LocalRunner struct {
	// Shell replaces the program's "sh" (for example busybox's: "busybox",
	// "sh"); nil runs the host's sh.
	Shell []string
}

func (l LocalRunner) Run(ctx context.Context, _ calls.Pod, argv []string) ([]byte, error) {
	if len(l.Shell) > 0 && argv[0] == "sh" {
		argv = append(slices.Clip(l.Shell), argv[1:]...)
	}
	ctx, abort := context.WithCancel(ctx)
	defer abort()
	stdout := &capped{max: maxOutput, overflow: abort}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s: %w: %s", argv[0], err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}
