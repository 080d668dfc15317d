// Command gatewaysim plays the Hermes gateway's side of the drain contract
// for every HERMES_HOME matching a glob. See package gatewaysim.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hermes-agent/hermes-drain-operator/test/gatewaysim"
)

func main() {
	homes := flag.String("homes", "", "glob of the HERMES_HOMEs to serve, e.g. '/tmp/cluster/homes/*/*'")
	interval := flag.Duration("interval", time.Second, "how often each gateway checks its marker (upstream: 1s)")
	turn := flag.Duration("turn-duration", 5*time.Second, "how long an in-flight turn takes")
	epoch := flag.String("pretend-epoch", "", "pretend to be this instantiation instead of this host's (tests stale markers)")
	runAs := flag.String("run-as", "", "UID:GID to drop to once started as root, as the upstream image's init starts the gateway as uid 10000")
	ownHome := flag.Bool("own-home-only", false, "serve no profile home under the homes (another process serves each, as upstream's s6 slots)")
	multiplex := flag.Bool("multiplex", false, "serve each home's profiles from its root gateway (served_profiles) instead of a gateway per profile home")
	noExpiry := flag.Bool("no-expiry", false, "behave as gateways before upstream's PR #85444: a marker never expires")
	chatOnly := flag.Bool("chat-only-counting", false, "behave as gateways before upstream's PR #63891: active_agents counts chat turns only")
	unversioned := flag.Bool("unversioned", false, "behave as gateways before v0.20.6: no code_version in the record")
	turnsAt := flag.String("turns-listen", "", "serve turns over HTTP here (POST "+gatewaysim.TurnPath+"), for the one HERMES_HOME --homes names; a loopback address")
	flag.Parse()
	if *runAs != "" {
		if err := dropTo(*runAs); err != nil {
			fmt.Fprintln(os.Stderr, "gatewaysim: --run-as:", err)
			os.Exit(2)
		}
	}
	if *homes == "" {
		fmt.Fprintln(os.Stderr, "--homes is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sim := gatewaysim.New(gatewaysim.Options{Homes: gatewaysim.Glob(*homes), TurnDuration: *turn, Epoch: *epoch, Multiplex: *multiplex, OwnHomeOnly: *ownHome,
		Version: gatewaysim.Version{NoExpiry: *noExpiry, ChatOnlyCounting: *chatOnly, Unversioned: *unversioned}})
	fmt.Fprintf(os.Stderr, "gatewaysim: serving %s as epoch %s\n", *homes, sim.Epoch())
	if *turnsAt != "" {
		if strings.ContainsAny(*homes, "*?[") {
			fmt.Fprintf(os.Stderr, "gatewaysim: --turns-listen: --homes %q is a glob: turns are served for one HERMES_HOME\n", *homes)
			os.Exit(2)
		}
		if err := sim.ServeTurns(ctx, *homes, *turnsAt); err != nil {
			fmt.Fprintln(os.Stderr, "gatewaysim: --turns-listen:", err)
			os.Exit(2)
		}
	}
	sim.Run(ctx, *interval, func(err error) { fmt.Fprintln(os.Stderr, "gatewaysim:", err) })
}

// dropTo makes every thread of this process run as uid:gid, with no
// supplementary groups.
func dropTo(uidGID string) error {
	u, g, ok := strings.Cut(uidGID, ":")
	uid, err1 := strconv.Atoi(u)
	gid, err2 := strconv.Atoi(g)
	if !ok || err1 != nil || err2 != nil {
		return fmt.Errorf("%q is not UID:GID", uidGID)
	}
	if err := syscall.Setgroups(nil); err != nil {
		return err
	}
	if err := syscall.Setgid(gid); err != nil {
		return err
	}
	return syscall.Setuid(uid)
}
