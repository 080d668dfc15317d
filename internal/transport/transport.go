// Package transport carries the operator's three calls (Project, Clear,
// Read; internal/calls defines them) to a gateway container, one round trip
// each: through the pod's agent over HTTPS (Agent), or by running program.sh
// in the container, where a Runner decides how it gets there: pods/exec
// through the API server (ExecRunner) or a local shell (LocalRunner, for
// tests). Router picks per pod.
package transport

import (
	"context"

	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
)

// Transport is how the reconcilers reach a gateway's HERMES_HOME. A home of
// "" is the container's own HERMES_HOME environment, else /opt/data.
type Transport interface {
	// Project writes the marker unless a foreign one is there, and reads back.
	Project(ctx context.Context, pod calls.Pod, home string, req calls.ProjectRequest) (calls.Observation, error)
	// Clear removes the marker if the GatewayDrain with ownerUID wrote it, and reads back.
	Clear(ctx context.Context, pod calls.Pod, home string, ownerUID string) (calls.Observation, error)
	// Read reads the marker and gateway_state.json.
	Read(ctx context.Context, pod calls.Pod, home string) (calls.Observation, error)
}

// Runner runs a command (argv, no shell parsing) in a pod's container, with
// stdin on its standard input (none if nil), and returns its standard
// output.
type Runner interface {
	Run(ctx context.Context, pod calls.Pod, argv []string, stdin []byte) ([]byte, error)
}
