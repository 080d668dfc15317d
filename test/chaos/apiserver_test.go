package chaos

import (
	"context"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
)

// TestAPIServerRestartMidDrain restarts the API server (etcd kept) while a
// drain is half projected. The manager elects a leader with a renew deadline
// longer than the outage (8-13 s here), so it keeps its lease through it (a
// shorter one makes it step down and exit, and its restart is what the kill
// test covers); it, kwok and the cluster's controllers reconnect, and the
// drain finishes with every marker its own; deleting it then releases every
// pod.
func TestAPIServerRestartMidDrain(t *testing.T) {
	const pods = 20
	gws := fleet(t, "apiserver-restart", pods)
	addTurns(t, gws)
	gwd := newDrain(t, "apiserver-restart", "d")
	// Two execs at a time in short batches: the projection takes seconds
	// and shows in status as it goes, so the restart lands in its middle.
	m, err := lc.StartManager(managerBin, "manager-apiserver-restart", lc.Kubeconfig,
		"--poll-interval=200ms", "--idle-poll-interval=1s", "--exec-concurrency=2", "--batch-time=100ms",
		"--leader-elect", "--leader-election-namespace=default",
		"--leader-elect-lease-duration=40s", "--leader-elect-renew-deadline=30s")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()

	var before drainv1.TargetCounts
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		before = get(t, gwd).Status.Counts
		return before.Draining+before.Drained > 0 && before.Pending > 0, fmt.Sprintf("not half projected: %+v", before)
	})
	outage, err := lc.RestartAPIServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("API server away for %s; targets then pending/draining/drained %d/%d/%d", outage.Round(time.Millisecond), before.Pending, before.Draining, before.Drained)

	back := time.Now()
	var got *drain.Observed
	testenv.Eventually(t, 2*time.Minute, func() (bool, string) {
		got = get(t, gwd)
		return meta.IsStatusConditionTrue(got.Status.Conditions, drainv1.ConditionDrained), fmt.Sprintf("not Drained: %+v", got.Status.Counts)
	})
	t.Logf("Drained %s after the API server was back", time.Since(back).Round(time.Millisecond))
	checkDrained(t, gws, got)

	if err := lc.Client.Delete(context.Background(), got.GatewayDrain); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		err := lc.Client.Get(context.Background(), client.ObjectKeyFromObject(gwd), &drainv1.GatewayDrain{})
		return apierrors.IsNotFound(err), "the drain is still there"
	})
	checkNoMarkers(t, gws)
}
