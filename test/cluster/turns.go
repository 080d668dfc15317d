package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/test/gatewaysim"
)

// TurnsPodCIDR is a pod CIDR for simulations with traffic: the API server
// accepts its addresses in EndpointSlices (it refuses loopback ones, so a
// CIDR inside 127.0.0.0/8 leaves Services without endpoints), and
// LoopbackOf maps each onto loopback.
const TurnsPodCIDR = "10.42.0.0/16"

// LoopbackOf is where the simulated pod network delivers what is sent to a
// pod IP: the same address with its first octet 127 (10.42.3.7 is served
// on 127.42.3.7), so that nothing leaves loopback. It is the simulation's
// stand-in for routing; a turn's path is otherwise the real one: Service,
// EndpointSlices, a data plane that follows them.
func LoopbackOf(podIP string) string {
	if _, rest, ok := strings.Cut(podIP, "."); ok && net.ParseIP(podIP).To4() != nil {
		return "127." + rest
	}
	return podIP
}

// ServeTurns serves each gateway's turns (sim.TurnHandler) on
// LoopbackOf(its pod's IP):port until ctx ends; the gateways' pods must
// run, with IPs from TurnsPodCIDR.
func (c *Cluster) ServeTurns(ctx context.Context, sim *gatewaysim.Sim, gws []*Gateway, port int) error {
	var listeners []net.Listener
	closeAll := func() {
		for _, l := range listeners {
			l.Close()
		}
	}
	for _, g := range gws {
		pod, err := g.Pod(ctx)
		if err != nil {
			closeAll()
			return err
		}
		addr := LoopbackOf(pod.Status.PodIP)
		if ip := net.ParseIP(addr); ip == nil || !ip.IsLoopback() {
			closeAll()
			return fmt.Errorf("pod %s/%s has IP %q: turns are served on loopback only (start the cluster with PodCIDR %s)", g.Namespace, g.Name, pod.Status.PodIP, TurnsPodCIDR)
		}
		l, err := net.Listen("tcp", net.JoinHostPort(addr, fmt.Sprint(port)))
		if err != nil {
			closeAll()
			return err
		}
		listeners = append(listeners, l)
		srv := &http.Server{Handler: sim.TurnHandler(g.Home)}
		go func() {
			if err := srv.Serve(l); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
				fmt.Printf("serving %s's turns: %v\n", g.Name, err)
			}
		}()
		go func() { <-ctx.Done(); srv.Close() }()
	}
	return nil
}

// TrafficService is the Service TrafficFleet puts its gateways behind.
const TrafficService = "gateways"

// TrafficFleet creates n gated gateways in namespace (gw-0, gw-2, … with
// the label half=a; gw-1, gw-3, … half=b), the Service TrafficService in
// front of all of them, and serves their turns on port (ServeTurns) until
// ctx ends: the fleet of the refused-turn measurements.
func (c *Cluster) TrafficFleet(ctx context.Context, sim *gatewaysim.Sim, namespace string, n, port int, labels map[string]string) ([]*Gateway, error) {
	fleet := func(p *corev1.Pod) {
		p.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: drainv1.ReadinessGate}}
		var i int
		_, _ = fmt.Sscanf(p.Name, "gw-%d", &i)
		p.Labels["half"] = []string{"a", "b"}[i%2]
	}
	gws, err := c.CreateGateways(ctx, namespace, n, labels, fleet)
	if err != nil {
		return nil, err
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: TrafficService},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: int32(port)}}},
	}
	if err := c.Client.Create(ctx, svc); err != nil {
		return nil, err
	}
	return gws, c.ServeTurns(ctx, sim, gws, port)
}
