package bench

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/test/cluster"
	"github.com/hermes-agent/hermes-drain-operator/test/gatewaysim"
)

// waveRun is one way of upgrading the fleet, and what its users saw.
type waveRun struct {
	Name string
	// Windows are each gateway's refusal window: from when it stopped
	// accepting turns to when it (its replacement) accepted them again.
	Windows []time.Duration
	// Refused counts, per gateway, the turns it refused meanwhile.
	Refused []int
	// Fleet is from the GatewayDrain's creation until every gateway serves
	// its new template.
	Fleet time.Duration
	// MostOut is the most gateways refusing turns at once.
	MostOut int
}

// TestRefusalWindows upgrades a fleet of gateways with turns arriving at
// each (one a second, each lasting turnDuration: chat platforms deliver
// them to the gateway itself) one way after another on the same cluster:
// today's recipe (drain every gateway, wait until Drained, roll a
// RollingUpdate StatefulSet) and a drain-and-replace of an OnDelete
// StatefulSet at maxUnavailable 1, 10% and 100%, by an operator at its
// default flags; then 10% again by one with quicker reads. It reports each
// gateway's refusal window, the turns each refused, and the fleet's time,
// and fails if more gateways refused turns at once than maxUnavailable
// allows. BENCH_WAVE_GATEWAYS sizes the fleet (4; make bench: 100); with
// BENCH_OUT it writes refusal-windows.md there.
func TestRefusalWindows(t *testing.T) {
	n := 4
	if v := os.Getenv("BENCH_WAVE_GATEWAYS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 2 {
			t.Fatalf("BENCH_WAVE_GATEWAYS=%q: want a number of at least 2", v)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var runs []waveRun
	// The operator's defaults, then reads that are quicker to see a
	// gateway drained (each confirmed 1 s after the first read).
	for _, flags := range [][]string{nil, {"--poll-interval=500ms", "--drained-confirm-after=1s"}} {
		m, err := lc.StartManager(managerBin, "manager-waves", lc.Kubeconfig, flags...)
		if err != nil {
			t.Fatal(err)
		}
		plans := []string{"", "1", "10%", "100%"}
		if flags != nil {
			plans = []string{"10%"}
		}
		for _, mu := range plans {
			r, err := upgradeFleet(ctx, t, n, mu)
			if err != nil {
				m.Stop()
				t.Fatal(err)
			}
			if flags != nil {
				r.Name += " (" + strings.Join(flags, " ") + ")"
			}
			runs = append(runs, r)
		}
		m.Stop()
	}
	md := wavesMarkdown(n, runs)
	t.Log("\n" + md)
	for _, r := range runs[1:] {
		planned, _, _ := strings.Cut(strings.TrimPrefix(r.Name, "maxUnavailable "), " ")
		limit := drain.MaxUnavailable(&drainv1.GatewayDrain{Spec: drainv1.GatewayDrainSpec{Replace: &drainv1.ReplaceSpec{MaxUnavailable: ptr.To(intstr.Parse(planned))}}}, n)
		if r.MostOut > limit {
			t.Errorf("%s: %d gateways refused turns at once, more than %d", r.Name, r.MostOut, limit)
		}
	}
	if cfg, err := configFromEnv(); err == nil && cfg.out != "" {
		if err := os.WriteFile(filepath.Join(cfg.out, "refusal-windows.md"), []byte(md), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// upgradeFleet creates a fleet of n gateways under a StatefulSet in a
// namespace of its own, sends it turns, upgrades it (maxUnavailable ""
// for today's drain-everything recipe) and measures what users saw.
func upgradeFleet(ctx context.Context, t *testing.T, n int, maxUnavailable string) (waveRun, error) {
	name := "drain-all-then-roll"
	strategy := appsv1.RollingUpdateStatefulSetStrategyType
	if maxUnavailable != "" {
		name, strategy = "maxUnavailable "+maxUnavailable, appsv1.OnDeleteStatefulSetStrategyType
	}
	ns := fmt.Sprintf("waves-%d", time.Now().UnixNano())
	if err := lc.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return waveRun{}, err
	}
	defer func() {
		_ = lc.Client.Delete(ctx, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gw"}})
		removeFleet(ctx, ns)
	}()
	gws, err := lc.GatewayStatefulSet(ctx, ns, "gw", n, gatewayLabels, "hermes-gateway:1", strategy)
	if err != nil {
		return waveRun{}, err
	}
	load := sendTurns(ctx, gws)
	defer load.stop()
	// Steady use: every gateway has turns in flight.
	err = poll(ctx, time.Minute, "turns in flight everywhere", func() bool {
		for _, g := range gws {
			if st, err := gatewaysim.ReadState(g.Home); err != nil || st.ActiveAgents < 2 {
				return false
			}
		}
		return true
	})
	if err != nil {
		return waveRun{}, err
	}

	r := waveRun{Name: name}
	start := time.Now()
	gwd := &drainv1.GatewayDrain{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "upgrade"},
		Spec:       drainv1.GatewayDrainSpec{Selector: metav1.LabelSelector{MatchLabels: gatewayLabels}},
	}
	if maxUnavailable != "" {
		// The new template first: an OnDelete StatefulSet restarts nothing.
		if err := setImage(ctx, ns, "hermes-gateway:2"); err != nil {
			return r, err
		}
		start = time.Now()
		gwd.Spec.Replace = &drainv1.ReplaceSpec{MaxUnavailable: ptr.To(intstr.Parse(maxUnavailable))}
	}
	if err := lc.Client.Create(ctx, gwd); err != nil {
		return r, err
	}
	key := client.ObjectKeyFromObject(gwd)
	if maxUnavailable == "" {
		if err := poll(ctx, 30*time.Minute, "Drained", func() bool { return conditionTrue(ctx, key, drainv1.ConditionDrained) }); err != nil {
			return r, err
		}
		if err := setImage(ctx, ns, "hermes-gateway:2"); err != nil {
			return r, err
		}
	} else if err := poll(ctx, 60*time.Minute, "Replaced", func() bool { return conditionTrue(ctx, key, drainv1.ConditionReplaced) }); err != nil {
		return r, err
	}
	// Done when every pod runs the new template and every gateway serves.
	err = poll(ctx, 60*time.Minute, "every gateway serving its new template", func() bool {
		for _, g := range gws {
			pod, err := g.Pod(ctx)
			if err != nil || pod.Spec.Containers[0].Image != "hermes-gateway:2" || !load.accepting(g.Home) {
				return false
			}
		}
		return true
	})
	if err != nil {
		return r, err
	}
	r.Fleet = time.Since(start)
	load.stop()
	for _, g := range gws {
		from, ok := changes.firstSince(g.Home, marker.StateDraining, start)
		if !ok {
			return r, fmt.Errorf("%s never refused turns", g.Name)
		}
		to, ok := changes.firstSince(g.Home, marker.StateRunning, from)
		if !ok {
			return r, fmt.Errorf("%s never served again", g.Name)
		}
		r.Windows = append(r.Windows, to.Sub(from))
		r.Refused = append(r.Refused, load.refused(g.Home))
	}
	r.MostOut = mostAtOnce(gws, start)
	return r, lc.Client.Delete(ctx, gwd)
}

func setImage(ctx context.Context, ns, image string) error {
	sts := &appsv1.StatefulSet{}
	if err := lc.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "gw"}, sts); err != nil {
		return err
	}
	patch := client.MergeFrom(sts.DeepCopy())
	sts.Spec.Template.Spec.Containers[0].Image = image
	return lc.Client.Patch(ctx, sts, patch)
}

func conditionTrue(ctx context.Context, key client.ObjectKey, typ string) bool {
	gwd := &drainv1.GatewayDrain{}
	return lc.Client.Get(ctx, key, gwd) == nil && gwd.Status.ObservedGeneration == gwd.Generation && meta.IsStatusConditionTrue(gwd.Status.Conditions, typ)
}

// mostAtOnce is the most gateways that refused turns at the same time
// since start, from the simulator's record of their states.
func mostAtOnce(gws []*cluster.Gateway, start time.Time) int {
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, g := range gws {
		if from, ok := changes.firstSince(g.Home, marker.StateDraining, start); ok {
			to, _ := changes.firstSince(g.Home, marker.StateRunning, from)
			edges = append(edges, edge{from, 1}, edge{to, -1})
		}
	}
	// In time order, an end before a start at the same instant.
	slices.SortFunc(edges, func(a, b edge) int { return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.delta, b.delta)) })
	most, out := 0, 0
	for _, e := range edges {
		out += e.delta
		most = max(most, out)
	}
	return most
}

// turnLoad sends each gateway a turn a second, as its chat platform does,
// and counts the turns each refused.
type turnLoad struct {
	mu       sync.Mutex
	refusals map[string]int
	accepted map[string]bool // the last turn's fate, per home
	cancel   context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once
}

func sendTurns(ctx context.Context, gws []*cluster.Gateway) *turnLoad {
	ctx, cancel := context.WithCancel(ctx)
	l := &turnLoad{refusals: map[string]int{}, accepted: map[string]bool{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			for _, g := range gws {
				_, ok := sim.Turn(g.Home, time.Now())
				l.mu.Lock()
				l.accepted[g.Home] = ok
				if !ok {
					l.refusals[g.Home]++
				}
				l.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return l
}

func (l *turnLoad) accepting(home string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.accepted[home]
}

func (l *turnLoad) refused(home string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.refusals[home]
}

func (l *turnLoad) stop() {
	l.stopOnce.Do(func() { l.cancel(); <-l.done })
}

func wavesMarkdown(n int, runs []waveRun) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d gateways under a StatefulSet, each sent a turn a second (each lasting %s) throughout, the operator at its default flags; a gateway's refusal window runs from when it stopped accepting turns to when it (its replacement) accepted them again, as the gateway simulator recorded it.\n\n", n, turnDuration)
	b.WriteString("| upgrade | refusal window p50 / p99 | turns refused per gateway, p50 / max | most refusing at once | fleet's time |\n|---|---|---|---|---|\n")
	for _, r := range runs {
		refused := slices.Clone(r.Refused)
		slices.Sort(refused)
		fmt.Fprintf(&b, "| %s | %s | %d / %d | %d | %s |\n", r.Name, p50p99(r.Windows), refused[(len(refused)-1)/2], refused[len(refused)-1], r.MostOut, r.Fleet.Round(100*time.Millisecond))
	}
	if len(runs) >= 4 {
		// A gateway's cycle is the operator's, from taking it in to
		// counting its replacement serving: maxUnavailable 1 runs them
		// back to back.
		cycle := runs[1].Fleet / time.Duration(n)
		fmt.Fprintf(&b, "\nOne gateway's cycle (the fleet's time at maxUnavailable 1, over %d): %s; the fleet at 10%% took %.1f cycles.\n", n, cycle.Round(10*time.Millisecond), runs[2].Fleet.Seconds()/cycle.Seconds())
	}
	return b.String()
}
