package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// cliOwner owns the markers this command writes: the operator takes them
// for another drain's (it replaces one only when its epoch is stale), and
// `cancel` removes only these.
const cliOwner = "hermes-drain-agent"

type cliFlags struct {
	home, principal, output string
	wait                    bool
	timeout                 time.Duration
}

func command(ctx context.Context, name string, args []string, stdout, stderr io.Writer) int {
	var f cliFlags
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.home, "home", "", "HERMES_HOME (default $HERMES_HOME, else /opt/data)")
	switch name {
	case "drain":
		fs.StringVar(&f.principal, "principal", "hermes-drain-agent", "who asks, as the marker and the gateway's logs show it")
		fs.BoolVar(&f.wait, "wait", false, "wait until the gateway is draining with no turn in flight")
		fs.DurationVar(&f.timeout, "timeout", 10*time.Minute, "with --wait, how long to wait")
	case "status":
		fs.StringVar(&f.output, "o", "", `"json" for data`)
	}
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments %q\n", fs.Args())
		return exitError
	}
	local := calls.InProcess{ProcRoot: "/proc"}
	switch name {
	case "drain":
		return drain(ctx, local, f, stdout, stderr)
	case "cancel":
		obs, err := local.Clear(ctx, calls.Pod{}, f.home, cliOwner)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitError
		}
		if obs.Outcome == calls.Foreign {
			fmt.Fprintf(stderr, "the marker in %s is not this command's: %s; cancel it where it was made\n", obs.Home, calls.Whose(obs.Marker.Data))
			return exitRefused
		}
		fmt.Fprintf(stdout, "%s: %s\n", obs.Home, map[calls.Outcome]string{calls.Cleared: "drain withdrawn", calls.Absent: "no drain to withdraw"}[obs.Outcome])
		return exitOK
	default:
		obs, err := local.Read(ctx, calls.Pod{}, f.home)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitError
		}
		return printStatus(obs, f.output, stdout, stderr)
	}
}

func drain(ctx context.Context, local calls.InProcess, f cliFlags, stdout, stderr io.Writer) int {
	// The epoch is computed from this process's /proc/1: it is the
	// gateway's only where the gateway's processes are visible.
	before, err := local.Read(ctx, calls.Pod{}, f.home)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitError
	}
	if _, problem := before.GatewayStateNow(); problem != nil && problem.Definite {
		fmt.Fprintf(stderr, "%s; if the gateway runs, it is not in this PID namespace: run this in the gateway's container (or one sharing its PID namespace), or the marker's epoch would not be the gateway's\n", problem.Message)
		return exitRefused
	}
	host, _ := os.Hostname()
	obs, err := local.Project(ctx, calls.Pod{}, f.home, calls.ProjectRequest{Marker: marker.Request{
		Principal: f.principal, Origin: marker.Origin{GatewayDrainUID: cliOwner, Pod: host},
	}})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitError
	}
	if obs.Outcome == calls.Foreign {
		fmt.Fprintf(stderr, "a drain is already requested in %s: %s\n", obs.Home, calls.Whose(obs.Marker.Data))
		return exitRefused
	}
	fmt.Fprintf(stdout, "%s: drain requested (epoch %s)\n", obs.Home, obs.Epoch)
	if !f.wait {
		return exitOK
	}
	deadline := time.Now().Add(f.timeout)
	for {
		obs, err := local.Read(ctx, calls.Pod{}, f.home)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitError
		}
		st, problem := obs.GatewayStateNow()
		switch {
		case problem == nil && st.DrainComplete():
			fmt.Fprintf(stdout, "%s: drained, no turn in flight\n", obs.Home)
			return exitOK
		case obs.Marker.State != calls.FilePresent:
			fmt.Fprintf(stderr, "%s: the drain was withdrawn meanwhile\n", obs.Home)
			return exitRefused
		case time.Now().After(deadline):
			fmt.Fprintf(stderr, "%s: not drained after %s: %s\n", obs.Home, f.timeout, calls.Describe(obs, time.Now()).Gateway.Words())
			return exitRefused
		}
		select {
		case <-ctx.Done():
			return exitError
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func printStatus(obs calls.Observation, output string, stdout, stderr io.Writer) int {
	s := calls.Describe(obs, time.Now())
	switch output {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s)
	case "":
		fmt.Fprintf(stdout, "HERMES_HOME  %s\nepoch        %s\n", s.Home, s.Epoch)
		fmt.Fprintf(stdout, "marker       %s\n", s.Marker.Words())
		fmt.Fprintf(stdout, "gateway      %s\n", s.Gateway.Words())
	default:
		fmt.Fprintf(stderr, "-o %q: only json\n", output)
		return exitError
	}
	return exitOK
}
