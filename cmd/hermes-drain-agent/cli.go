package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// cliOwner owns the markers this command writes: the operator takes them
// for another drain's (it replaces one only when its epoch is stale), and
// `cancel` removes only these.
const cliOwner = "hermes-drain-agent"

type cliFlags struct {
	home, profile, principal, output string
	wait                             bool
	timeout                          time.Duration
}

func command(ctx context.Context, name string, args []string, stdout, stderr io.Writer) int {
	var f cliFlags
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.home, "home", "", "HERMES_HOME (default $HERMES_HOME, else /opt/data): its gateway and every profile home's under it")
	fs.StringVar(&f.profile, "profile", "", "only this profile's home, profiles/NAME under HERMES_HOME")
	switch name {
	case "drain":
		fs.StringVar(&f.principal, "principal", "hermes-drain-agent", "who asks, as the marker and the gateway's logs show it")
		fs.BoolVar(&f.wait, "wait", false, "wait until every gateway is draining with no turn in flight, or not running")
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
	if f.profile != "" {
		if !calls.ProfileName(f.profile) {
			fmt.Fprintf(stderr, "--profile %q is not a profile's name\n", f.profile)
			return exitError
		}
		f.home = cmp.Or(f.home, marker.OwnHome()) + "/profiles/" + f.profile
	}
	local := calls.InProcess{ProcRoot: "/proc"}
	switch name {
	case "drain":
		return drain(ctx, local, f, stdout, stderr)
	case "cancel":
		return cancel(ctx, local, f, stdout, stderr)
	default:
		obs, err := local.Read(ctx, calls.Pod{}, f.home)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitError
		}
		return printStatus(obs, f.output, stdout, stderr)
	}
}

// ours reports whether a home holds this command's marker.
func ours(h calls.GatewayHome) bool {
	return h.Marker.State == calls.FilePresent && strings.Contains(string(h.Marker.Data), marker.OwnerToken(cliOwner))
}

// foreign names the first home where a marker not this command's stands
// in the way, and whose it is.
func foreign(obs calls.Observation) (string, string) {
	if obs.Outcome == calls.Foreign {
		return obs.Home, calls.Whose(obs.Marker.Data)
	}
	for _, p := range obs.Profiles {
		if p.Outcome == calls.Foreign {
			return obs.Home + "/profiles/" + p.Name, calls.Whose(p.Marker.Data)
		}
	}
	return "", ""
}

func drain(ctx context.Context, local calls.InProcess, f cliFlags, stdout, stderr io.Writer) int {
	// The epoch is computed from this process's /proc/1: it is the
	// gateway's only where the gateway's processes are visible.
	before, err := local.Read(ctx, calls.Pod{}, f.home)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitError
	}
	if _, problem := before.GatewayStateNow(); problem != nil && problem.Reason == calls.ReasonGatewayGone {
		fmt.Fprintf(stderr, "%s; if the gateway runs, it is not in this PID namespace: run this in the gateway's container (or one sharing its PID namespace), or the marker's epoch would not be the gateway's\n", problem.Message)
		return exitRefused
	}
	var profiles []string
	for _, g := range before.Gateways(nil)[1:] {
		profiles = append(profiles, g.Profile)
	}
	host, _ := os.Hostname()
	obs, err := local.Project(ctx, calls.Pod{}, f.home, calls.ProjectRequest{Marker: marker.Request{
		Principal: f.principal, Origin: marker.Origin{GatewayDrainUID: cliOwner, Pod: host},
	}, Profiles: profiles})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitError
	}
	if home, whose := foreign(obs); home != "" {
		fmt.Fprintf(stderr, "a drain is already requested in %s: %s\n", home, whose)
		return exitRefused
	}
	for _, p := range obs.Profiles {
		if p.Outcome == calls.Failed {
			fmt.Fprintf(stderr, "profile %s: %s\n", p.Name, p.Message)
			return exitError
		}
	}
	fmt.Fprintf(stdout, "%s: drain requested (epoch %s) of %s\n", obs.Home, obs.Epoch, gatewayNames(obs.Gateways(ours)))
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
		gateways := obs.Gateways(ours)
		var waiting *calls.Gateway
		for i := range gateways {
			if g := &gateways[i]; !g.Drained(ours(g.Home)) {
				waiting = g
				break
			}
		}
		gone := obs.ProfileMarkerGone(profiles)
		switch {
		case obs.Marker.State != calls.FilePresent:
			fmt.Fprintf(stderr, "%s: the drain was withdrawn meanwhile\n", obs.Home)
			return exitRefused
		case gone != "":
			fmt.Fprintf(stderr, "%s/profiles/%s: the drain was withdrawn meanwhile\n", obs.Home, gone)
			return exitRefused
		case waiting == nil:
			fmt.Fprintf(stdout, "%s: drained, no turn in flight (%s)\n", obs.Home, gatewayNames(gateways))
			return exitOK
		case time.Now().After(deadline):
			fmt.Fprintf(stderr, "%s: not drained after %s: profile %s: %s\n", obs.Home, f.timeout, waiting.Profile, calls.Describe(obs, time.Now()).GatewayOf(waiting.Profile).Words())
			return exitRefused
		}
		select {
		case <-ctx.Done():
			return exitError
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// gatewayNames names the gateways by profile.
func gatewayNames(gateways []calls.Gateway) string {
	names := make([]string, len(gateways))
	for i, g := range gateways {
		names[i] = g.Profile
	}
	return fmt.Sprintf("%d %s: %s", len(gateways), map[bool]string{true: "gateway", false: "gateways"}[len(gateways) == 1], strings.Join(names, ", "))
}

func cancel(ctx context.Context, local calls.InProcess, f cliFlags, stdout, stderr io.Writer) int {
	obs, err := local.Clear(ctx, calls.Pod{}, f.home, cliOwner)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitError
	}
	words := map[calls.Outcome]string{calls.Cleared: "drain withdrawn", calls.Absent: "no drain to withdraw"}
	fmt.Fprintf(stdout, "%s: %s\n", obs.Home, words[obs.Outcome])
	code := exitOK
	for _, p := range obs.Profiles {
		switch p.Outcome {
		case calls.Cleared:
			fmt.Fprintf(stdout, "%s/profiles/%s: %s\n", obs.Home, p.Name, words[p.Outcome])
		case calls.Failed:
			fmt.Fprintf(stderr, "profile %s: %s\n", p.Name, p.Message)
			code = exitError
		}
	}
	if home, whose := foreign(obs); home != "" {
		fmt.Fprintf(stderr, "the marker in %s is not this command's: %s; cancel it where it was made\n", home, whose)
		return exitRefused
	}
	return code
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
		for _, p := range s.Profiles {
			fmt.Fprintf(stdout, "profile %s\n  marker     %s\n  gateway    %s\n", p.Name, p.Marker.Words(), p.Gateway.Words())
		}
		if s.Unlisted > 0 {
			fmt.Fprintf(stdout, "%d more profile homes, not looked into\n", s.Unlisted)
		}
	default:
		fmt.Fprintf(stderr, "-o %q: only json\n", output)
		return exitError
	}
	return exitOK
}
