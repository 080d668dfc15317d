// Command kubectl-hermes_drain is the kubectl plugin `kubectl hermes-drain`:
// it drains Hermes gateways through a GatewayDrain, shows what a drain waits
// for, cancels it, and previews what a drain would do without writing
// anything. It acts with the user's own credentials and RBAC.
package main

import (
	"errors"
	"fmt"
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// Exit codes, documented in --help and docs/plugin.md (0: done).
const (
	// exitError: bad arguments, or the API server refused or failed.
	exitError = 1
	// exitStalled: the drain cannot get where it was asked to go (Stalled:
	// deadline passed, no targets, bad selector; or it was cancelled while
	// waiting for Drained).
	exitStalled = 2
	// exitTimedOut: the wait gave up (--timeout) while the drain still progresses.
	exitTimedOut = 3
)

// exitCode carries a non-zero exit besides exitError, with its message.
type exitCode struct {
	code int
	msg  string
}

func (e *exitCode) Error() string { return e.msg }

func main() {
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	err := newRootCommand(streams).Execute()
	if err == nil {
		return
	}
	fmt.Fprintln(streams.ErrOut, "error:", err)
	var exit *exitCode
	if errors.As(err, &exit) {
		os.Exit(exit.code)
	}
	os.Exit(exitError)
}
