package chaos

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
	"github.com/hermes-agent/hermes-drain-operator/test/cluster"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// The phases of a drain's life a kill must hit, told from its status.
const (
	phaseSnapshot   = "snapshot (targets being chosen or chosen, no marker yet)"
	phaseProjecting = "projecting (some markers written)"
	phaseDraining   = "draining (every marker written, not Drained)"
	phaseCancelling = "cancelling (some targets released)"
	phaseDeleting   = "deleting (some targets released)"
)

var phases = []string{phaseSnapshot, phaseProjecting, phaseDraining, phaseCancelling, phaseDeleting}

// progress counts a drain's targets with a marker written and released.
func progress(d *drain.Observed) (written, released int, drained bool) {
	for _, t := range d.Targets {
		if t.MarkerWrittenAt != nil {
			written++
		}
		if t.State == drainv1.TargetReleased {
			released++
		}
	}
	return written, released, meta.IsStatusConditionTrue(d.Status.Conditions, drainv1.ConditionDrained)
}

// phaseOf tells which phase d is in, "" for none of them (or gone).
func phaseOf(d *drain.Observed) string {
	if d == nil {
		return ""
	}
	st := d.Status
	written, released, drained := progress(d)
	releasing := released > 0 && released < len(d.Targets)
	switch {
	case !d.DeletionTimestamp.IsZero():
		if releasing {
			return phaseDeleting
		}
	case d.Spec.Action == drainv1.ActionCancel:
		if releasing {
			return phaseCancelling
		}
	case st.StartedAt == nil:
		if len(d.Finalizers) > 0 {
			return phaseSnapshot
		}
	case written == 0 && !drained:
		return phaseSnapshot
	case written > 0 && written < len(d.Targets):
		return phaseProjecting
	case written == len(d.Targets) && !drained:
		return phaseDraining
	}
	return ""
}

// The manager is killed at chosen moments of a drain's life, told by the
// drain's progress rather than by the clock: while it takes its snapshot,
// with some targets projected, while they drain, and while it releases them
// after a cancel or a delete. Each round drains the fleet with a new
// GatewayDrain and ends it by a cancel (odd rounds) or a delete (even
// rounds). After each kill a new manager picks up where the status says;
// every round must end with every target drained by a marker of its own,
// and then with not one marker left (item E19).
func TestKilledManagerLosesNoDrain(t *testing.T) {
	pods, rounds := envInt("CHAOS_PODS", 20), envInt("CHAOS_ROUNDS", 2)
	ctx := context.Background()
	gws := fleet(t, "fleet", pods)
	// Two calls at a time: a phase lasts several reconciles, so a kill can
	// land inside it.
	// Short batches, so that a drain of 20 pods takes several reconciles
	// and a kill can land between them.
	args := []string{"--poll-interval=200ms", "--idle-poll-interval=1s", "--exec-concurrency=2", "--batch-time=100ms"}
	k := &killer{t: t, args: args, hits: map[string]int{}}
	defer k.stop()

	for round := range rounds {
		name := fmt.Sprintf("d-%d", round)
		addTurns(t, gws) // turns in flight keep some gateways draining
		k.start()        // the snapshot is taken by a manager that is already up
		gwd := newDrain(t, "fleet", name)
		for _, p := range []string{phaseSnapshot, phaseProjecting, phaseDraining} {
			k.killIn(gwd, p)
		}
		var got *drain.Observed
		testenv.Eventually(t, 2*time.Minute, func() (bool, string) {
			got = get(t, gwd)
			return meta.IsStatusConditionTrue(got.Status.Conditions, drainv1.ConditionDrained), fmt.Sprintf("%s not Drained: %+v", name, got.Status.Counts)
		})
		checkDrained(t, gws, got)

		if round%2 == 0 {
			patch := client.MergeFrom(got.DeepCopy())
			got.Spec.Action = drainv1.ActionCancel
			if err := lc.Client.Patch(ctx, got.GatewayDrain, patch); err != nil {
				t.Fatal(err)
			}
			k.killIn(gwd, phaseCancelling)
			testenv.Eventually(t, time.Minute, func() (bool, string) {
				return allReleased(get(t, gwd)), name + " not released"
			})
			checkNoMarkers(t, gws)
		}
		if err := lc.Client.Delete(ctx, got.GatewayDrain); err != nil {
			t.Fatal(err)
		}
		if round%2 == 1 {
			k.killIn(gwd, phaseDeleting)
		}
		testenv.Eventually(t, time.Minute, func() (bool, string) {
			err := lc.Client.Get(ctx, client.ObjectKeyFromObject(gwd), &drainv1.GatewayDrain{})
			return err != nil, name + " not deleted"
		})
		checkNoMarkers(t, gws)
	}

	var report []string
	for _, p := range phases {
		report = append(report, fmt.Sprintf("%-58s %d", p, k.hits[p]))
	}
	t.Logf("kills per phase (%d pods, %d rounds, %d misses: the phase was over when the kill landed):\n%s",
		pods, rounds, k.hits[""], strings.Join(report, "\n"))
	for _, p := range phases {
		if k.hits[p] == 0 {
			t.Errorf("no kill landed %s", p)
		}
	}
}

// killer runs the manager and kills it at chosen phases of a drain.
type killer struct {
	t    *testing.T
	args []string
	m    *cluster.Manager
	n    int
	hits map[string]int
}

func (k *killer) start() {
	if k.m != nil {
		return
	}
	m, err := lc.StartManager(managerBin, fmt.Sprintf("manager-%d", k.n), lc.Kubeconfig, k.args...)
	if err != nil {
		k.t.Fatal(err)
	}
	k.m, k.n = m, k.n+1
}

func (k *killer) stop() {
	if k.m != nil {
		k.m.Stop()
	}
}

// reached reports whether the drain (nil: gone) has reached phase p or
// gone past it.
func reached(d *drain.Observed, p string) bool {
	if d == nil {
		return true
	}
	written, released, drained := progress(d)
	switch p {
	case phaseSnapshot:
		return len(d.Finalizers) > 0 || d.Status.StartedAt != nil
	case phaseProjecting:
		return written > 0 || drained
	case phaseDraining:
		return (written > 0 && written == len(d.Targets)) || drained
	}
	return released > 0 || allReleased(d)
}

// allReleased reports whether a withdrawn drain has released every target.
func allReleased(d *drain.Observed) bool {
	c := meta.FindStatusCondition(d.Status.Conditions, drainv1.ConditionReady)
	return c != nil && c.Status == metav1.ConditionTrue && c.Reason == drainv1.ReasonReleased
}

// killIn waits until the drain reaches phase p, kills the manager at once,
// records the phase the drain was in when it died (its status cannot move
// after that; "" when the phase was already over), and starts a new
// manager.
func (k *killer) killIn(gwd *drainv1.GatewayDrain, p string) {
	k.t.Helper()
	k.start()
	testenv.Eventually(k.t, time.Minute, func() (bool, string) {
		return reached(lookup(k.t, gwd), p), fmt.Sprintf("%s never reached %s", gwd.Name, p)
	})
	k.m.Kill()
	k.m = nil
	d := lookup(k.t, gwd)
	hit := phaseOf(d)
	k.hits[hit]++
	if d != nil {
		c := d.Status.Counts
		k.t.Logf("kill %-2d aimed at %s landed in %q: targets %d, %d pending, %d draining, %d drained, %d released",
			k.n, p, hit, c.Targets, c.Pending, c.Draining, c.Drained, c.Released)
	}
	k.start()
}

// lookup reads the drain again, nil once it is gone.
func lookup(t *testing.T, gwd *drainv1.GatewayDrain) *drain.Observed {
	t.Helper()
	got, err := drain.Observe(context.Background(), lc.Client, client.ObjectKeyFromObject(gwd))
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		t.Fatal(err)
	}
	return got
}

// newDrain creates a GatewayDrain of the fleet.
func newDrain(t *testing.T, ns, name string) *drainv1.GatewayDrain {
	t.Helper()
	gwd := &drainv1.GatewayDrain{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	gwd.Spec.Selector.MatchLabels = gatewayLabels
	if err := lc.Client.Create(context.Background(), gwd); err != nil {
		t.Fatal(err)
	}
	return gwd
}
