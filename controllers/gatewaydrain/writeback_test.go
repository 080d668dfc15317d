package gatewaydrain

import (
	"context"
	"errors"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
)

// The write-back keeps acting's error beside its own: a write that meets a
// newer version asks for a retry, but never swallows what went wrong
// before it.
func TestTheWriteBackLosesNoError(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := drainv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	gwd := &drainv1.GatewayDrain{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "d", UID: "uid-1"}}
	conflict := apierrors.NewConflict(schema.GroupResource{Resource: "gatewaydrains"}, "d", errors.New("newer"))
	c := interceptor.NewClient(fake.NewClientBuilder().WithScheme(scheme).WithObjects(gwd).WithStatusSubresource(gwd).Build(), interceptor.Funcs{
		SubResourceUpdate: func(context.Context, client.Client, string, client.Object, ...client.SubResourceUpdateOption) error {
			return conflict
		},
	})
	r := &Reconciler{Client: c, APIReader: c, Options: DefaultOptions()}
	lookup := errors.New("looking up a pod: the cache is gone")
	for _, tc := range []struct {
		name    string
		out     acted
		want    error
		requeue bool
	}{
		{"a conflict alone retries", acted{}, nil, true},
		{"a conflict keeps acting's error", acted{err: lookup}, lookup, false},
	} {
		before := gwd.DeepCopy()
		d := newView(gwd.DeepCopy(), nil, time.Now(), time.Second)
		d.gwd.Status.NotGateways = 1 // a status that changed: it is written
		result, err := r.writeBack(context.Background(), before, d, nil, tc.out)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) || (result.RequeueAfter > 0) != tc.requeue {
			t.Errorf("%s: %v, %v; want %v, requeue %v", tc.name, result, err, tc.want, tc.requeue)
		}
	}
}
