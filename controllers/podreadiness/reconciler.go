// Package podreadiness keeps a gateway pod's readiness gate
// drain.hermes.dev/serving equal to "this gateway accepts turns", read from
// its gateway_state.json, so that Services stop routing to a draining
// gateway and route to it again when it runs.
package podreadiness

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/controllers/gatewaydrain"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod"
	"github.com/hermes-agent/hermes-drain-operator/internal/transport"
)

// Options say when to look at a gated gateway.
type Options struct {
	// FastInterval: while the pod is a live drain's target or its gateway is
	// starting or draining.
	FastInterval time.Duration
	// SlowInterval: otherwise.
	SlowInterval time.Duration
	// RetryBase and RetryMax bound the backoff after failed reads.
	RetryBase, RetryMax time.Duration
	// Concurrency is how many pods are read at once. Each read is a call
	// into a container (about 0.3 s through pods/exec), so one at a time
	// would serve only a few gated pods per second.
	Concurrency int
}

// DefaultOptions are the operator's defaults.
func DefaultOptions() Options {
	return Options{FastInterval: time.Second, SlowInterval: 30 * time.Second, RetryBase: time.Second, RetryMax: time.Minute, Concurrency: 16}
}

// Reconciler writes the readiness gate condition of gated gateway pods.
type Reconciler struct {
	client.Client
	Transport transport.Transport
	Recorder  events.EventRecorder
	Options
	Now func() time.Time

	mu       sync.Mutex
	failures map[types.UID]int
}

// +kubebuilder:rbac:groups="",resources=pods/status,verbs=patch

func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pod := &corev1.Pod{}
	if err := r.Get(ctx, req.NamespacedName, pod); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !gated(pod) || pod.DeletionTimestamp != nil {
		r.forget(pod.UID)
		return ctrl.Result{}, nil
	}
	now := r.now()
	v := r.look(ctx, pod, now)
	gateReads.WithLabelValues(v.reason).Inc()
	if err := r.write(ctx, pod, v, now); err != nil {
		return ctrl.Result{}, err
	}

	if v.status == corev1.ConditionUnknown {
		return ctrl.Result{RequeueAfter: r.backoff(pod.UID)}, nil
	}
	r.forget(pod.UID)
	targeted, err := r.targeted(ctx, pod, now)
	if err != nil {
		return ctrl.Result{RequeueAfter: r.FastInterval}, nil // look often rather than miss a drain
	}
	return ctrl.Result{RequeueAfter: r.nextLook(v.gatewayState, targeted)}, nil
}

// look reads the gateway's state through the transport, if it runs.
func (r *Reconciler) look(ctx context.Context, pod *corev1.Pod, now time.Time) verdict {
	container := gatewaypod.Container(pod, "")
	if !gatewaypod.Running(pod, container) {
		return verdict{status: corev1.ConditionFalse, reason: ReasonContainerNotRunning, message: "gateway container " + container + " is not running"}
	}
	home, err := gatewaypod.Home(pod, container, "")
	if err != nil {
		return verdict{status: corev1.ConditionUnknown, reason: ReasonInvalidHome, message: err.Error()}
	}
	obs, err := r.Transport.Read(ctx, transport.Pod{Namespace: pod.Namespace, Name: pod.Name, Container: container}, home)
	return serving(obs, err, now)
}

// write patches only our condition on the pod's status, with the pod's UID
// as precondition (a recreated pod is someone else), keeping
// lastTransitionTime unless the status flips, and not at all when nothing
// changed. A pod that is gone is ignored.
func (r *Reconciler) write(ctx context.Context, pod *corev1.Pod, v verdict, now time.Time) error {
	cur := Condition(pod)
	if cur != nil && cur.Status == v.status && cur.Reason == v.reason && cur.Message == v.message {
		return nil
	}
	want := corev1.PodCondition{Type: GateType, Status: v.status, Reason: v.reason, Message: v.message, LastTransitionTime: metav1.NewTime(now)}
	flipped := cur == nil || cur.Status != v.status
	if !flipped {
		want.LastTransitionTime = cur.LastTransitionTime
	}
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"uid": pod.UID},
		"status":   map[string]any{"conditions": []corev1.PodCondition{want}},
	})
	if err != nil {
		return err
	}
	err = r.Status().Patch(ctx, pod, client.RawPatch(types.StrategicMergePatchType, patch))
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // gone, or recreated under the same name: its own events bring it back
	}
	if err != nil {
		return err
	}
	if flipped && cur != nil {
		if !v.updatedAt.IsZero() && now.After(v.updatedAt) {
			gateFlipSeconds.Observe(now.Sub(v.updatedAt).Seconds())
		}
		if r.Recorder != nil {
			r.Recorder.Eventf(pod, nil, corev1.EventTypeNormal, "GatewayServing"+string(v.status), "SetReadinessGate",
				"%s is %s: %s", GateType, v.status, v.message)
		}
	}
	return nil
}

// targeted reports whether a GatewayDrain that still stands targets the pod.
func (r *Reconciler) targeted(ctx context.Context, pod *corev1.Pod, now time.Time) (bool, error) {
	drains, err := gatewaydrain.DrainsTargeting(ctx, r.Client, pod.Namespace, pod.Name)
	for i := range drains {
		if gatewaydrain.Stands(&drains[i], now) {
			return true, nil
		}
	}
	return false, err
}

func (r *Reconciler) backoff(uid types.UID) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failures == nil {
		r.failures = map[types.UID]int{}
	}
	r.failures[uid]++
	return min(r.RetryBase<<min(r.failures[uid]-1, 16), r.RetryMax)
}

func (r *Reconciler) forget(uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.failures, uid)
}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func gated(pod *corev1.Pod) bool {
	for _, g := range pod.Spec.ReadinessGates {
		if g.ConditionType == GateType {
			return true
		}
	}
	return false
}

// Condition is the pod's readiness gate condition, or nil.
func Condition(pod *corev1.Pod) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == GateType {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

// SetupWithManager registers the reconciler for gated pods. A pod is looked
// at at once when it appears or its containers change (a new pod must not
// wait for its gate: it gates rollouts), and when a GatewayDrain targeting
// it changes; otherwise on its own schedule. Our own condition writes do not
// wake it.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("podreadiness").
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.Concurrency, 1)}).
		For(&corev1.Pod{}, builder.WithPredicates(gatedPod, containersChanged)).
		Watches(&drainv1.GatewayDrain{}, handler.EnqueueRequestsFromMapFunc(targetPods), builder.WithPredicates(drainTurned)).
		Complete(r)
}

var gatedPod = predicate.NewPredicateFuncs(func(o client.Object) bool { return gated(o.(*corev1.Pod)) })

var containersChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld.(*corev1.Pod), e.ObjectNew.(*corev1.Pod)
		return o.UID != n.UID || !apiequality.Semantic.DeepEqual(o.Status.ContainerStatuses, n.Status.ContainerStatuses)
	},
}

// drainTurned passes the GatewayDrain changes its targets' gates must
// follow at once: its targets taken, its action changed, its deletion, its
// Drained reason (DeadlineExceeded among them). Its progress writes, one per
// batch of targets, do not wake a read of every target.
var drainTurned = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld.(*drainv1.GatewayDrain), e.ObjectNew.(*drainv1.GatewayDrain)
		return len(o.Status.Targets) != len(n.Status.Targets) || o.Spec.Action != n.Spec.Action ||
			!o.DeletionTimestamp.Equal(n.DeletionTimestamp) || drainedReason(o) != drainedReason(n)
	},
}

func drainedReason(gwd *drainv1.GatewayDrain) string {
	if c := meta.FindStatusCondition(gwd.Status.Conditions, drainv1.ConditionDrained); c != nil {
		return c.Reason
	}
	return ""
}

// targetPods maps a GatewayDrain to the pods it targets.
func targetPods(_ context.Context, o client.Object) []reconcile.Request {
	gwd := o.(*drainv1.GatewayDrain)
	reqs := make([]reconcile.Request, 0, len(gwd.Status.Targets))
	for _, t := range gwd.Status.Targets {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: gwd.Namespace, Name: t.PodName}})
	}
	return reqs
}
