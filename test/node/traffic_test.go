package node

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
	"github.com/hermes-agent/hermes-drain-operator/test/gatewaysim"
	"github.com/hermes-agent/hermes-drain-operator/test/traffic"
)

// On the real node a gated gateway leaves traffic before its marker is
// written: the kubelet reports its pod not Ready first, and a client that
// sends turns only to pods that were Ready a second ago (as the
// EndpointSlice controller and kube-proxy would) has none refused while the
// gateway drains. (A real EndpointSlice cannot list these hostNetwork pods:
// the API server refuses their loopback IP in one. The kwok suites drain
// through real EndpointSlices.)
func TestAGatedGatewayLeavesTrafficBeforeItsMarker(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := testenv.CreateNamespace(t, lc.Client)
	var pods []*corev1.Pod
	ports := map[string]int{}
	for i, half := range []string{"drained", "serving"} {
		name := fmt.Sprintf("gw-%d", i)
		ports[name] = freePort()
		pods = append(pods, gatewayPod(t, ns, name, gated, func(p *corev1.Pod) {
			p.Labels["half"] = half
			p.Spec.Containers[0].Args = append(p.Spec.Containers[0].Args,
				"--turn-duration", "1s", "--turns-listen", fmt.Sprintf("127.0.0.1:%d", ports[name]))
		}))
	}
	for _, p := range pods {
		waitReady(t, p, true)
	}
	behindAService(t, ns, pods...)
	loop := startReadyLoop(ctx, pods, ports)
	gwd := &drainv1.GatewayDrain{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "d"}}
	gwd.Spec.Selector.MatchLabels = map[string]string{"half": "drained"}
	if err := lc.Client.Create(ctx, gwd); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, gwd)
	turns := loop.stop()
	t.Logf("turns while gw-0 drained: %s", turns)
	if turns.Refused != 0 || turns.Failed != 0 || turns.Completed == 0 {
		t.Errorf("%s: want every turn completed", turns)
	}
	requested, ok := marker.Parse([]byte(inside(t, pods[0], "cat /opt/data/.drain_request.json"))).RequestedAt()
	notReady := loop.notReadySince("gw-0")
	if !ok || notReady.IsZero() || !requested.After(notReady) {
		t.Errorf("the marker was requested at %s, the kubelet reported gw-0 not Ready at %s: want the marker after", requested, notReady)
	}
}

// readyLoop plays a Service's client: it watches the pods' Ready condition
// (every 100 ms) and sends 20 turns a second, round-robin, to the pods that
// were Ready a second before, as a data plane that follows EndpointSlices
// with a lag would.
type readyLoop struct {
	cancel  context.CancelFunc
	done    sync.WaitGroup
	sending sync.WaitGroup

	mu      sync.Mutex
	seen    []readySeen
	turns   traffic.Counts
	notSeen map[string]time.Time
}

type readySeen struct {
	at    time.Time
	ready map[string]bool
}

func startReadyLoop(ctx context.Context, pods []*corev1.Pod, ports map[string]int) *readyLoop {
	ctx, cancel := context.WithCancel(ctx)
	l := &readyLoop{cancel: cancel, notSeen: map[string]time.Time{}}
	l.done.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			now := readySeen{at: time.Now(), ready: map[string]bool{}}
			for _, p := range pods {
				pod := &corev1.Pod{}
				if err := lc.Client.Get(ctx, client.ObjectKeyFromObject(p), pod); err == nil {
					now.ready[p.Name] = gatewaypod.ConditionStatus(pod, corev1.PodReady) == corev1.ConditionTrue
				}
			}
			l.mu.Lock()
			l.seen = append(l.seen, now)
			for name, ready := range now.ready {
				if !ready && l.notSeen[name].IsZero() {
					l.notSeen[name] = now.at
				}
			}
			l.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	l.done.Go(func() {
		next := 0
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			ready := l.readyAsOf(time.Now().Add(-time.Second))
			if len(ready) == 0 {
				continue
			}
			next = (next + 1) % len(ready)
			url := fmt.Sprintf("http://127.0.0.1:%d%s", ports[ready[next]], gatewaysim.TurnPath)
			l.sending.Go(func() { l.count(traffic.Turn(http.DefaultClient, url)) })
		}
	})
	return l
}

// readyAsOf names the pods that were Ready at t, as last seen by then.
func (l *readyLoop) readyAsOf(t time.Time) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ready []string
	for i := len(l.seen) - 1; i >= 0; i-- {
		if !l.seen[i].at.After(t) {
			for name, ok := range l.seen[i].ready {
				if ok {
					ready = append(ready, name)
				}
			}
			break
		}
	}
	return ready
}

func (l *readyLoop) count(c traffic.Counts) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.turns.Add(c)
}

// notReadySince is when the loop first saw the pod not Ready.
func (l *readyLoop) notReadySince(name string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.notSeen[name]
}

// stop ends the loop, waits for the turns in flight and counts them.
func (l *readyLoop) stop() traffic.Counts {
	l.cancel()
	l.done.Wait()
	l.sending.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.turns
}

// behindAService lists pods in an EndpointSlice, as the EndpointSlice
// controller does for a Service's pods, so that a drain takes them out of
// traffic first (a pod no slice lists has no Service traffic to leave). The
// real controller cannot list these hostNetwork pods: the API server
// refuses their loopback IP in a slice. This one names an address of the
// documentation range (RFC 5737), which nothing here routes or sends to,
// and lists them not ready, so that, as today, the pods' own readiness is
// what the drain waits for.
func behindAService(t *testing.T, ns string, pods ...*corev1.Pod) {
	t.Helper()
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: "gateways-abcde", Labels: map[string]string{discoveryv1.LabelServiceName: "gateways"}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for _, p := range pods {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{"192.0.2.1"},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: p.Name, UID: p.UID},
		})
	}
	if err := lc.Client.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}
