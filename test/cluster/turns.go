package cluster

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/test/gatewaysim"
	"github.com/hermes-agent/hermes-drain-operator/test/traffic"
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

// ServeTurns serves each gateway's turns on LoopbackOf(its pod's IP):port
// until ctx ends; the gateways' pods must run, with IPs from TurnsPodCIDR.
func (c *Cluster) ServeTurns(ctx context.Context, sim *gatewaysim.Sim, gws []*Gateway, port int) error {
	for _, g := range gws {
		pod, err := g.Pod(ctx)
		if err == nil {
			err = sim.ServeTurns(ctx, g.Home, net.JoinHostPort(LoopbackOf(pod.Status.PodIP), fmt.Sprint(port)))
		}
		if err != nil {
			return fmt.Errorf("serving the turns of %s/%s (start the cluster with PodCIDR %s): %w", g.Namespace, g.Name, TurnsPodCIDR, err)
		}
	}
	return nil
}

// TrafficService is the Service TrafficFleet puts its gateways behind.
const TrafficService = "gateways"

// TrafficFleet creates n gated gateways in namespace (gw-0, gw-2, … with
// the label half=a; gw-1, gw-3, … half=b), the Service TrafficService in
// front of all of them, and serves their turns on port (ServeTurns); then
// it sends them rate turns a second through the Service, following its
// EndpointSlices a second behind as kube-proxy does, until ctx ends, and
// returns once every gateway is routable: the fleet and the traffic of the
// refused-turn measurements.
func (c *Cluster) TrafficFleet(ctx context.Context, sim *gatewaysim.Sim, namespace string, n, port, rate int, labels map[string]string) (*traffic.Generator, error) {
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
	if err := c.ServeTurns(ctx, sim, gws, port); err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return nil, err
	}
	gen, err := traffic.Start(ctx, traffic.Options{Client: cs, Namespace: namespace, Service: TrafficService, Port: port, Rate: rate,
		Lag: time.Second, Address: LoopbackOf, Path: gatewaysim.TurnPath})
	if err != nil {
		return nil, err
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 5*time.Minute, true, func(context.Context) (bool, error) {
		return gen.Routable() == n, nil
	})
	if err != nil {
		gen.Stop()
		return nil, fmt.Errorf("%d of %d gateways routable: %w", gen.Routable(), n, err)
	}
	return gen, nil
}
