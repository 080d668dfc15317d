// Command gatewaysim plays the Hermes gateway's side of the drain contract
// for every HERMES_HOME matching a glob. See package gatewaysim.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hermes-agent/hermes-drain-operator/test/gatewaysim"
)

func main() {
	homes := flag.String("homes", "", "glob of the HERMES_HOMEs to serve, e.g. '/tmp/cluster/homes/*/*'")
	interval := flag.Duration("interval", time.Second, "how often each gateway checks its marker (upstream: 1s)")
	turn := flag.Duration("turn-duration", 5*time.Second, "how long an in-flight turn takes")
	epoch := flag.String("pretend-epoch", "", "pretend to be this instantiation instead of this host's (tests stale markers)")
	flag.Parse()
	if *homes == "" {
		fmt.Fprintln(os.Stderr, "--homes is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sim := gatewaysim.New(gatewaysim.Options{Homes: gatewaysim.Glob(*homes), TurnDuration: *turn, Epoch: *epoch})
	fmt.Fprintf(os.Stderr, "gatewaysim: serving %s as epoch %s\n", *homes, sim.Epoch())
	sim.Run(ctx, *interval, func(err error) { fmt.Fprintln(os.Stderr, "gatewaysim:", err) })
}
