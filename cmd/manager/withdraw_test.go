//go:build !unit

package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/controllers/gatewaydrain"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env)) }

// Uninstalling first withdraws every drain: deleted, then waited for while
// the operator removes their markers and lets them go; a drain the operator
// does not let go in time is let go here, and named.
func TestWithdrawAllWaitsForTheOperatorThenLetsGo(t *testing.T) {
	ctx := context.Background()
	c := env.Client
	drainIn := func(ns string) *drainv1.GatewayDrain {
		gwd := &drainv1.GatewayDrain{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "d", Finalizers: []string{gatewaydrain.Finalizer}}}
		gwd.Spec.Selector.MatchLabels = map[string]string{"app": "hermes-gateway"}
		if err := c.Create(ctx, gwd); err != nil {
			t.Fatal(err)
		}
		return gwd
	}
	// The operator, as far as this needs it: it lets a deleted drain go.
	operator := func(gwd *drainv1.GatewayDrain) {
		_ = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			got := &drainv1.GatewayDrain{}
			if c.Get(ctx, client.ObjectKeyFromObject(gwd), got) != nil || got.DeletionTimestamp.IsZero() {
				return false, nil
			}
			patch := client.MergeFrom(got.DeepCopy())
			controllerutil.RemoveFinalizer(got, gatewaydrain.Finalizer)
			return c.Patch(ctx, got, patch) == nil, nil
		})
	}
	released := env.Namespace(t)
	gwd := drainIn(released)
	go operator(gwd)
	if left, err := withdrawAll(ctx, c, []string{released}, time.Minute); err != nil || len(left) != 0 {
		t.Fatalf("with the operator: left %v, %v", left, err)
	}

	stuck := env.Namespace(t)
	drainIn(stuck)
	left, err := withdrawAll(ctx, c, []string{stuck}, time.Second)
	if err != nil || !slices.Equal(left, []string{stuck + "/d"}) {
		t.Fatalf("without the operator: left %v, %v; want %s/d named", left, err, stuck)
	}
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		var list drainv1.GatewayDrainList
		err := c.List(ctx, &list, client.InNamespace(stuck))
		return err == nil && len(list.Items) == 0, fmt.Sprintf("%d drains left (%v)", len(list.Items), err)
	})
}
