// Package traffic sends users' turns to the gateways behind a Service, as a
// client behind kube-proxy does: it follows the Service's EndpointSlices,
// each change reaching its "data plane" only after a lag (kube-proxy's own),
// sends a steady rate of turns round-robin to the endpoints that are ready,
// and counts what became of each turn, second by second.
package traffic

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
)

// Options say where turns go and how many.
type Options struct {
	Client             kubernetes.Interface
	Namespace, Service string
	// Port is where each gateway serves turns.
	Port int
	// Rate is how many turns are sent a second.
	Rate int
	// Lag is how long an EndpointSlice change takes to reach the data plane.
	Lag time.Duration
	// Address is where the data plane sends a turn meant for an endpoint's
	// IP (the simulated pod network maps pod IPs onto loopback addresses).
	Address func(ip string) string
	// Path is the turn's HTTP path.
	Path string
}

// Counts is what became of turns.
type Counts struct {
	// Sent turns; Completed ones were served to their end; Refused ones a
	// gateway refused (it was draining); Failed ones got no answer (a
	// connection refused or reset); Unroutable ones found no ready
	// endpoint.
	Sent, Completed, Refused, Failed, Unroutable int
}

// Add counts o too.
func (c *Counts) Add(o Counts) {
	c.Sent += o.Sent
	c.Completed += o.Completed
	c.Refused += o.Refused
	c.Failed += o.Failed
	c.Unroutable += o.Unroutable
}

func (c Counts) String() string {
	return fmt.Sprintf("%d sent: %d completed, %d refused, %d failed, %d unroutable", c.Sent, c.Completed, c.Refused, c.Failed, c.Unroutable)
}

// Generator sends turns until stopped.
type Generator struct {
	opts   Options
	start  time.Time
	client *http.Client
	cancel context.CancelFunc
	done   chan struct{}
	turns  sync.WaitGroup

	mu sync.Mutex
	// seconds counts the turns by the second they were sent in.
	seconds []Counts
	// endpoints is the data plane's view; pending are the changes on their
	// way to it, in order.
	endpoints []string
	pending   []change
	next      int
}

// change is a set of ready endpoints that reaches the data plane at at.
type change struct {
	at        time.Time
	endpoints []string
}

// Start follows the Service's EndpointSlices and sends turns until Stop.
func Start(ctx context.Context, opts Options) (*Generator, error) {
	if opts.Rate < 1 || opts.Address == nil {
		return nil, errors.New("traffic: a rate and an address mapping are needed")
	}
	ctx, cancel := context.WithCancel(ctx)
	g := &Generator{opts: opts, cancel: cancel, done: make(chan struct{}),
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	factory := informers.NewSharedInformerFactoryWithOptions(opts.Client, 0, informers.WithNamespace(opts.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = discoveryv1.LabelServiceName + "=" + opts.Service }))
	informer := factory.Discovery().V1().EndpointSlices().Informer()
	follow := func(any) { g.observe(informer.GetStore()) }
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: follow, UpdateFunc: func(_, n any) { follow(n) }, DeleteFunc: follow,
	}); err != nil {
		cancel()
		return nil, err
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		cancel()
		return nil, errors.New("traffic: the EndpointSlices never synced")
	}
	// The data plane starts from the slices as they are, as a starting
	// kube-proxy does; only changes from here on take the lag.
	g.mu.Lock()
	g.endpoints, g.pending = readyEndpoints(informer.GetStore()), nil
	g.mu.Unlock()
	g.start = time.Now()
	go g.send(ctx)
	return g, nil
}

// observe records the Service's ready endpoints as the slices now say,
// for the data plane after the lag.
func (g *Generator) observe(store cache.Store) {
	ready := readyEndpoints(store)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pending = append(g.pending, change{at: time.Now().Add(g.opts.Lag), endpoints: ready})
}

// readyEndpoints are the addresses of the ready endpoints the slices list
// (a missing ready condition means ready, as kube-proxy reads it).
func readyEndpoints(store cache.Store) []string {
	var ready []string
	for _, o := range store.List() {
		for _, e := range o.(*discoveryv1.EndpointSlice).Endpoints {
			if (e.Conditions.Ready == nil || *e.Conditions.Ready) && len(e.Addresses) > 0 {
				ready = append(ready, e.Addresses[0])
			}
		}
	}
	slices.Sort(ready)
	return ready
}

// route picks the endpoint the data plane sends the next turn to, or "".
func (g *Generator) route(now time.Time) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.catchUp(now)
	if len(g.endpoints) == 0 {
		return ""
	}
	g.next = (g.next + 1) % len(g.endpoints)
	return g.endpoints[g.next]
}

// catchUp applies the changes that have reached the data plane by now.
// g.mu is held.
func (g *Generator) catchUp(now time.Time) {
	for len(g.pending) > 0 && !now.Before(g.pending[0].at) {
		g.endpoints, g.pending = g.pending[0].endpoints, g.pending[1:]
	}
}

// Routable counts the endpoints the data plane sends turns to now.
func (g *Generator) Routable() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.catchUp(time.Now())
	return len(g.endpoints)
}

func (g *Generator) send(ctx context.Context) {
	defer close(g.done)
	tick := time.NewTicker(time.Second / time.Duration(g.opts.Rate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			second := int(now.Sub(g.start) / time.Second)
			ip := g.route(now)
			if ip == "" {
				g.count(second, Counts{Sent: 1, Unroutable: 1})
				continue
			}
			g.turns.Go(func() { g.count(second, g.turn(ip)) })
		}
	}
}

// turn sends one turn to the endpoint at ip and says what became of it.
func (g *Generator) turn(ip string) Counts {
	return Turn(g.client, fmt.Sprintf("http://%s:%d%s", g.opts.Address(ip), g.opts.Port, g.opts.Path))
}

// Turn sends one turn to url and says what became of it: completed (200),
// refused (503: the gateway drains), or failed (anything else, or no answer).
func Turn(c *http.Client, url string) Counts {
	resp, err := c.Post(url, "application/json", nil)
	if err != nil {
		return Counts{Sent: 1, Failed: 1}
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return Counts{Sent: 1, Completed: 1}
	case http.StatusServiceUnavailable:
		return Counts{Sent: 1, Refused: 1}
	}
	return Counts{Sent: 1, Failed: 1}
}

func (g *Generator) count(second int, c Counts) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for len(g.seconds) <= second {
		g.seconds = append(g.seconds, Counts{})
	}
	g.seconds[second].Add(c)
}

// Between counts the turns sent from the second of from to the second of
// to, whose fate is known.
func (g *Generator) Between(from, to time.Time) Counts {
	g.mu.Lock()
	defer g.mu.Unlock()
	var total Counts
	for s := max(int(from.Sub(g.start)/time.Second), 0); s < len(g.seconds) && s <= int(to.Sub(g.start)/time.Second); s++ {
		total.Add(g.seconds[s])
	}
	return total
}

// Stop stops sending, waits for the turns in flight to end, and counts them all.
func (g *Generator) Stop() Counts {
	g.cancel()
	<-g.done
	g.turns.Wait()
	return g.Between(g.start, time.Now())
}

// Window is a drain measured under traffic: from its creation to Drained.
type Window struct {
	Name     string
	From, To time.Time
}

// Took is how long the drain took.
func (w Window) Took() time.Duration { return w.To.Sub(w.From) }

// Drain creates gwd and waits, at most timeout, until it is Drained; then
// cancels it and waits until the data plane routes to as many endpoints as
// before, so that the next drain starts from a whole fleet. The turns sent
// in the window are counted by Between once they are over (after Stop).
func (g *Generator) Drain(ctx context.Context, c client.Client, gwd *drainv1.GatewayDrain, timeout time.Duration) (Window, error) {
	before := g.Routable()
	w := Window{Name: gwd.Name, From: time.Now()}
	if err := c.Create(ctx, gwd); err != nil {
		return w, err
	}
	key := client.ObjectKeyFromObject(gwd)
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		err := c.Get(ctx, key, gwd)
		return err == nil && meta.IsStatusConditionTrue(gwd.Status.Conditions, drainv1.ConditionDrained), nil
	})
	if err != nil {
		return w, fmt.Errorf("%s not Drained after %s: %+v", gwd.Name, timeout, gwd.Status.Counts)
	}
	w.To = time.Now()
	patch := client.MergeFrom(gwd.DeepCopy())
	gwd.Spec.Action = drainv1.ActionCancel
	if err := c.Patch(ctx, gwd, patch); err != nil {
		return w, err
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		return g.Routable() >= before, nil
	})
	if err != nil {
		return w, fmt.Errorf("after cancelling %s, %d routable endpoints of %d", gwd.Name, g.Routable(), before)
	}
	return w, nil
}
