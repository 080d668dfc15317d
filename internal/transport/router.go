package transport

import (
	"context"
	"fmt"
	"net"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod"
)

// Router is the operator's Transport: each call goes to the pod's agent
// when the pod declares one and the operator has a token for agents, else
// through Exec.
type Router struct {
	// Pods reads pods (the manager's cache).
	Pods client.Reader
	// Exec runs the program through pods/exec; nil when the operator runs
	// without pods/exec.
	Exec Transport
	// Agent calls agents; nil when the operator has no token for them.
	Agent *Agent
}

var _ Transport = (*Router)(nil)

func (r *Router) Project(ctx context.Context, pod calls.Pod, home string, req calls.ProjectRequest) (calls.Observation, error) {
	ep, viaAgent, err := r.route(ctx, pod)
	if err != nil || !viaAgent {
		return r.orExec(err, func() (calls.Observation, error) { return r.Exec.Project(ctx, pod, home, req) })
	}
	return r.Agent.Call(ctx, ep, calls.OpProject, calls.AgentCall{Home: home, Marker: &req.Marker, Replaceable: req.Replaceable, LeaveTraffic: req.LeaveTraffic, Profiles: req.Profiles})
}

func (r *Router) Clear(ctx context.Context, pod calls.Pod, home string, ownerUID string) (calls.Observation, error) {
	ep, viaAgent, err := r.route(ctx, pod)
	if err != nil || !viaAgent {
		return r.orExec(err, func() (calls.Observation, error) { return r.Exec.Clear(ctx, pod, home, ownerUID) })
	}
	return r.Agent.Call(ctx, ep, calls.OpClear, calls.AgentCall{Home: home, OwnerUID: ownerUID})
}

func (r *Router) Read(ctx context.Context, pod calls.Pod, home string) (calls.Observation, error) {
	ep, viaAgent, err := r.route(ctx, pod)
	if err != nil || !viaAgent {
		return r.orExec(err, func() (calls.Observation, error) { return r.Exec.Read(ctx, pod, home) })
	}
	return r.Agent.Call(ctx, ep, calls.OpRead, calls.AgentCall{Home: home})
}

func (r *Router) orExec(routeErr error, call func() (calls.Observation, error)) (calls.Observation, error) {
	if routeErr != nil {
		return calls.Observation{}, routeErr
	}
	return call()
}

// route finds the pod's agent, or says the call goes through exec.
func (r *Router) route(ctx context.Context, pod calls.Pod) (ep AgentEndpoint, viaAgent bool, err error) {
	var p corev1.Pod
	if err := r.Pods.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: pod.Name}, &p); err != nil {
		return ep, false, err
	}
	port := gatewaypod.AgentPort(&p)
	switch {
	case port != 0 && r.Agent != nil && p.Status.PodIP == "":
		return ep, false, fmt.Errorf("pod %s/%s has no IP yet to reach its hermes-drain-agent", p.Namespace, p.Name)
	case port != 0 && r.Agent != nil:
	case r.Exec != nil:
		return ep, false, nil // no agent, or no token for agents: exec
	case port == 0:
		return ep, false, fmt.Errorf("pod %s/%s declares no hermes-drain-agent (a container port named %q) and this operator runs without pods/exec", p.Namespace, p.Name, drainv1.AgentPortName)
	default:
		return ep, false, fmt.Errorf("pod %s/%s declares a hermes-drain-agent, but this operator does not call agents (--agent-account) and runs without pods/exec", p.Namespace, p.Name)
	}
	return AgentEndpoint{Pod: pod, UID: string(p.UID), Addr: net.JoinHostPort(p.Status.PodIP, strconv.Itoa(int(port)))}, true, nil
}
