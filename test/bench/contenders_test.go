package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/internal/transport"
	"github.com/hermes-agent/hermes-drain-operator/test/cluster"
)

// baselineRequest is the marker the baselines write: the operator's own
// format, so that every contender runs the same command in each pod.
func baselineRequest() calls.ProjectRequest {
	return calls.ProjectRequest{Marker: marker.Request{
		Principal: "bench",
		Origin:    marker.Origin{GatewayDrainUID: "bench-baseline", GatewayDrain: "bench/baseline", Container: cluster.GatewayContainer},
	}}
}

// recorder is a Runner that only records the command it is given and its
// input.
type recorder struct {
	argv  []string
	stdin []byte
}

func (r *recorder) Run(_ context.Context, _ calls.Pod, argv []string, stdin []byte) ([]byte, error) {
	r.argv, r.stdin = argv, stdin
	return nil, errors.New("recorded, not run")
}

// projectCommand is the command the operator's transport runs in a pod to
// project req, with the pod's HERMES_HOME replaced by home, and its input.
func projectCommand(home string, req calls.ProjectRequest) ([]string, []byte) {
	rec := &recorder{}
	_, _ = transport.NewProgram(rec, "/proc").Project(context.Background(), calls.Pod{}, home, req)
	return rec.argv, rec.stdin
}

// kubectlLoop is Baseline A: what a user would do today, one `kubectl exec`
// per pod running the same command, through xargs with `parallel` at a time
// (1 is a plain loop). It returns the wall time.
func kubectlLoop(ctx context.Context, ns string, pods []string, parallel int) (time.Duration, error) {
	list := filepath.Join(lc.Dir, fmt.Sprintf("pods-%s-%d", ns, len(pods)))
	if err := os.WriteFile(list, []byte(strings.Join(pods, "\n")+"\n"), 0o644); err != nil {
		return 0, err
	}
	// xargs puts each pod's name where {} is; every value stays one argument.
	home := filepath.Join(lc.Dir, "homes", ns, "{}")
	argv, stdin := projectCommand(home, baselineRequest())
	input := list + ".input"
	if err := os.WriteFile(input, stdin, 0o644); err != nil {
		return 0, err
	}
	// Each kubectl reads the program's input from the file, through sh.
	args := append([]string{"-a", list, "-P", fmt.Sprint(parallel), "-I", "{}", "sh", "-c", `exec "$@" < "$0"`, input,
		filepath.Join(lc.Bin, "kubectl"), "--kubeconfig", lc.Kubeconfig, "-n", ns, "exec", "-i", "{}", "-c", cluster.GatewayContainer, "--"},
		argv...)
	start := time.Now()
	out, err := exec.CommandContext(ctx, "xargs", args...).CombinedOutput()
	elapsed := time.Since(start)
	if err != nil {
		return elapsed, fmt.Errorf("xargs kubectl exec: %w: %s", err, tail(out, 2000))
	}
	return elapsed, nil
}

// clientGoExec is Baseline B: the machine's limit, parallel pods/exec of the
// same command through client-go (the operator's own transport) and nothing
// else, `parallel` calls in flight.
func clientGoExec(ctx context.Context, gws []*cluster.Gateway, parallel int) (time.Duration, error) {
	runner, err := transport.NewExecRunner(lc.Config, 30*time.Second)
	if err != nil {
		return 0, err
	}
	program := transport.NewProgram(runner, "/proc")
	req := baselineRequest()
	start := time.Now()
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for _, gw := range gws {
		g.Go(func() error {
			pod := calls.Pod{Namespace: gw.Namespace, Name: gw.Name, Container: cluster.GatewayContainer}
			obs, err := program.Project(ctx, pod, gw.Home, req)
			if err == nil && obs.Outcome != calls.Written {
				err = fmt.Errorf("%s: %s", pod, obs.Outcome)
			}
			return err
		})
	}
	err = g.Wait()
	return time.Since(start), err
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
