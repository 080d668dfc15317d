// Command hermes-drain-agent is one binary with two uses. As a native
// sidecar beside a gateway (`serve`) it serves the operator's three calls
// on the gateway's HERMES_HOME without pods/exec, and the gateway's
// readiness to the kubelet. Inside a container (`drain`, `cancel`,
// `status`) it is the drain's command line, for a person or a preStop hook.
// docs/agent.md has the pod template and the threat model.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"

	"github.com/hermes-agent/hermes-drain-operator/internal/agent"
	"github.com/hermes-agent/hermes-drain-operator/internal/satoken"
)

const usage = `hermes-drain-agent: drain a Hermes gateway through its HERMES_HOME marker.

  hermes-drain-agent serve  [flags]   the sidecar: the operator's calls and the gateway's readiness
  hermes-drain-agent drain  [flags]   ask the gateway to drain (--wait: until no turn is in flight)
  hermes-drain-agent cancel [flags]   withdraw this command's drain
  hermes-drain-agent status [flags]   the marker and the gateway's state

Run "hermes-drain-agent COMMAND -h" for a command's flags.
Exit status: 0 done, 1 refused or not done in time (the output says why), 2 an error.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit statuses.
const (
	exitOK      = 0
	exitRefused = 1
	exitError   = 2
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitError
	}
	switch args[0] {
	case "serve":
		if err := serve(ctx, args[1:], stderr); err != nil {
			fmt.Fprintln(stderr, "hermes-drain-agent serve:", err)
			return exitError
		}
		return exitOK
	case "drain", "cancel", "status":
		return command(ctx, args[0], args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], usage)
	return exitError
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	opts := agent.DefaultOptions()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	opts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := opts.Validate(); err != nil {
		return err
	}
	log := logr.FromSlogHandler(slog.NewJSONHandler(stderr, nil))
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return fmt.Errorf("the API server's keys verify the operator's tokens: %w", err)
	}
	s, err := agent.New(opts, log)
	if err != nil {
		return err
	}
	log.Info("serving", "home", opts.Home, "listen", opts.Listen, "probes", opts.ProbeListen, "operators", opts.Operators, "audience", s.Audience())
	// Readiness is served at once, and calls as soon as the API server's
	// keys are known: an agent restarted while the API server is down
	// keeps its gateway Ready if it is, and does not crash-loop.
	go trustAPIServer(ctx, cfg, s, log)
	if err := s.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// trustAPIServer discovers the API server's issuer, retrying with backoff
// until it answers or ctx ends, then has s verify tokens with its keys.
func trustAPIServer(ctx context.Context, cfg *rest.Config, s *agent.Server, log logr.Logger) {
	backoff := wait.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.1, Steps: math.MaxInt32, Cap: 30 * time.Second}
	_ = wait.ExponentialBackoffWithContext(ctx, backoff, func(ctx context.Context) (bool, error) {
		issuer, keys, err := satoken.Discover(ctx, cfg)
		if err != nil {
			log.Info("the API server's keys are not known yet: calls are answered 503 meanwhile", "why", err.Error())
			return false, nil
		}
		s.Trust(issuer, keys)
		log.Info("serving calls", "issuer", issuer)
		return true, nil
	})
}
