package transport

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"

	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
)

// LocalRunner runs the command on this host, as if this host were the
// gateway's container. The envtest suite uses it with real directories as
// HERMES_HOMEs, so the reconciler is proven against the real program.
type LocalRunner struct {
	// Shell replaces the program's "/bin/sh" (for example busybox's:
	// "busybox", "sh"); nil runs the host's /bin/sh.
	Shell []string
}

func (l LocalRunner) Run(ctx context.Context, _ calls.Pod, argv []string, stdin []byte) ([]byte, error) {
	argv = l.command(argv)
	ctx, abort := context.WithCancel(ctx)
	defer abort()
	stdout, stderr := outputs(abort)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(stdin), stdout, stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s: %w", argv[0], failed(err, stdout, stderr))
	}
	return stdout.Bytes(), nil
}

// command is argv with the Shell in place of /bin/sh.
func (l LocalRunner) command(argv []string) []string {
	if len(l.Shell) > 0 && argv[0] == "/bin/sh" {
		return append(slices.Clip(l.Shell), argv[1:]...)
	}
	return argv
}
