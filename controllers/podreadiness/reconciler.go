// Package podreadiness keeps a gateway pod's readiness gate
// drain.hermes.dev/serving equal to "this gateway accepts turns", read from
// its gateway_state.json, so that Services stop routing to a draining
// gateway and route to it again when it runs.
package podreadiness

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/controllers/orphans"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod"
	"github.com/hermes-agent/hermes-drain-operator/internal/options"
	"github.com/hermes-agent/hermes-drain-operator/internal/retry"
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
	// KeepLastFor is how long a gate keeps its last definite status (True
	// or False) while reads of its gateway fail or say nothing, before it
	// turns Unknown: the operator's own trouble (an exec that fails, an API
	// blip, an RBAC regression) must not take a whole fleet out of its
	// Services at once.
	KeepLastFor time.Duration
	// Readers is how many pods are read at once. Each read is a call
	// into a container (about 0.3 s through pods/exec), so one at a time
	// would serve only a few gated pods per second.
	Readers int
	// ReadTimeout bounds one read: a gated pod that never answers holds a
	// reader no longer than this.
	ReadTimeout time.Duration
}

// namespaceShare is the part of the readers one namespace may hold at
// once: gated pods that never answer, all in one namespace, leave the rest
// to the others.
const namespaceShare = 0.5

// DefaultOptions are the operator's defaults.
func DefaultOptions() Options {
	return Options{FastInterval: time.Second, SlowInterval: 30 * time.Second, RetryBase: time.Second, RetryMax: time.Minute, KeepLastFor: 2 * time.Minute, Readers: 16, ReadTimeout: 5 * time.Second}
}

// BindFlags binds the options to their command-line flags, with the
// current values as defaults.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.DurationVar(&o.FastInterval, "readiness-fast-interval", o.FastInterval, "how often a gated gateway is read while it is a drain's target, starting or draining")
	fs.DurationVar(&o.SlowInterval, "readiness-interval", o.SlowInterval, "how often a gated gateway is read otherwise")
	fs.DurationVar(&o.KeepLastFor, "readiness-keep-last-for", o.KeepLastFor, "how long a gate keeps its last definite status while reads of its gateway fail, before it turns Unknown")
	fs.IntVar(&o.Readers, "readiness-concurrency", o.Readers, "gated gateways read at once (at most half of them in one namespace)")
	fs.DurationVar(&o.ReadTimeout, "readiness-read-timeout", o.ReadTimeout, "bound on one read of a gated gateway")
}

// Validate refuses options the reconciler cannot work with, naming the flag.
func (o Options) Validate() error {
	return errors.Join(
		options.AtLeastOne("--readiness-concurrency", o.Readers),
		options.PositiveDuration("--readiness-fast-interval", o.FastInterval),
		options.PositiveDuration("--readiness-interval", o.SlowInterval),
		options.PositiveDuration("--readiness-keep-last-for", o.KeepLastFor),
		options.PositiveDuration("--readiness-read-timeout", o.ReadTimeout),
		options.PositiveDuration("retry base", o.RetryBase),
		options.PositiveDuration("retry max", o.RetryMax),
	)
}

// Reconciler writes the readiness gate condition of gated gateway pods.
type Reconciler struct {
	client.Client
	Transport transport.Transport
	Recorder  events.EventRecorder
	Options
	Clock clock.PassiveClock
	// Orphans, if set, removes a marker whose GatewayDrain no longer exists
	// from the gateways this reads.
	Orphans *orphans.Remover

	// mu guards what is remembered of each gated pod between reads, and
	// the reads in flight by namespace.
	mu      sync.Mutex
	pods    map[types.NamespacedName]memory
	reading map[string]int
}

// memory is what is remembered of one gated pod between its reads.
type memory struct {
	uid types.UID // a pod recreated under the same name starts afresh
	failing
}

// failing is a pod whose reads have failed or said nothing, in a row.
type failing struct {
	count int32
	since time.Time
}

// +kubebuilder:rbac:groups="",resources=pods/status,verbs=patch

func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pod := &corev1.Pod{}
	if err := r.Get(ctx, req.NamespacedName, pod); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !gatewaypod.Gated(pod) || pod.DeletionTimestamp != nil {
		r.forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	now := r.Clock.Now()
	target, gwd, lookupErr := drain.StandingTarget(ctx, r.Client, pod, now)
	if target != nil && drain.LeavesTrafficFirst(gwd) {
		// The drain takes the pod out of traffic before it writes the
		// marker, and keeps it out while it stands: no read is needed to
		// know that this gateway must not be sent turns.
		if err := r.write(ctx, pod, drainRequested(gwd), now); err != nil {
			return ctrl.Result{}, err
		}
		r.succeeded(pod)
		return ctrl.Result{RequeueAfter: r.SlowInterval}, nil
	}
	if !r.startRead(pod.Namespace) {
		// The namespace holds its share of the readers: its turn comes
		// when one of its reads ends.
		return ctrl.Result{RequeueAfter: namespaceWait}, nil
	}
	v := r.look(ctx, pod, now)
	r.endRead(pod.Namespace)
	gateReads.WithLabelValues(v.reason).Inc()
	if v.status == corev1.ConditionUnknown {
		f := r.failed(pod, now)
		next := retry.Delay(r.RetryBase, r.RetryMax, f.count)
		// The last definite status stands for a while: a read that says
		// nothing does not say the gateway stopped serving.
		if cur := gatewaypod.GateCondition(pod); cur != nil && cur.Status != corev1.ConditionUnknown {
			if keepUntil := f.since.Add(r.KeepLastFor); now.Before(keepUntil) {
				return ctrl.Result{RequeueAfter: min(next, keepUntil.Sub(now))}, nil
			}
		}
		if err := r.write(ctx, pod, v, now); err != nil {
			return ctrl.Result{}, err
		}
		return ctrl.Result{RequeueAfter: next}, nil
	}
	if err := r.write(ctx, pod, v, now); err != nil {
		return ctrl.Result{}, err
	}
	r.succeeded(pod)
	if lookupErr != nil {
		return ctrl.Result{RequeueAfter: r.FastInterval}, nil // look often rather than miss a drain
	}
	return ctrl.Result{RequeueAfter: r.readAgainAfter(v.state.State, target)}, nil
}

// look reads the gateway's state through the transport, if it runs.
func (r *Reconciler) look(ctx context.Context, pod *corev1.Pod, now time.Time) verdict {
	target, home, err := gatewaypod.Locate(pod, "", "")
	if !gatewaypod.Running(pod, target.Container) {
		return verdict{status: corev1.ConditionFalse, reason: ReasonContainerNotRunning, message: "gateway container " + target.Container + " is not running"}
	}
	if err != nil {
		return verdict{status: corev1.ConditionUnknown, reason: ReasonInvalidHome, message: err.Error()}
	}
	readCtx, cancel := context.WithTimeout(ctx, r.ReadTimeout)
	obs, err := r.Transport.Read(readCtx, target, home)
	cancel()
	if err == nil && r.Orphans != nil {
		if err := r.Orphans.Check(ctx, pod, target, home, obs); err != nil {
			log.FromContext(ctx).Error(err, "checking for an orphaned marker", "pod", target)
		}
	}
	return serving(obs, err)
}

// write patches only our condition on the pod's status, with the pod's UID
// as precondition (a recreated pod is someone else), keeping
// lastTransitionTime unless the status flips, and not at all when nothing
// changed. A pod that is gone is ignored.
func (r *Reconciler) write(ctx context.Context, pod *corev1.Pod, v verdict, now time.Time) error {
	cur := gatewaypod.GateCondition(pod)
	if cur != nil && cur.Status == v.status && cur.Reason == v.reason && cur.Message == v.message {
		return nil
	}
	want := corev1.PodCondition{Type: drainv1.ReadinessGate, Status: v.status, Reason: v.reason, Message: v.message, LastTransitionTime: metav1.NewTime(now)}
	flipped := cur == nil || cur.Status != v.status
	if !flipped {
		want.LastTransitionTime = cur.LastTransitionTime
	}
	if err := patchGate(ctx, r.Client, pod, want); err != nil {
		return err
	}
	if flipped {
		log.FromContext(ctx).Info("gate", "status", v.status, "reason", v.reason, "message", v.message)
	} else {
		log.FromContext(ctx).V(1).Info("gate", "status", v.status, "reason", v.reason, "message", v.message)
	}
	if flipped && cur != nil {
		if !v.updatedAt.IsZero() && now.After(v.updatedAt) {
			gateFlipSeconds.Observe(now.Sub(v.updatedAt).Seconds())
		}
		if r.Recorder != nil {
			r.Recorder.Eventf(pod, nil, corev1.EventTypeNormal, "GatewayServing"+string(v.status), "SetReadinessGate",
				"%s is %s: %s", drainv1.ReadinessGate, v.status, v.message)
		}
	}
	return nil
}

// patchGate writes cond as the pod's gate condition: a strategic-merge
// patch of the pod's status with only that condition, and the pod's UID as
// precondition. A pod that is gone, or was recreated under the same name,
// is left alone: its own events bring it back.
func patchGate(ctx context.Context, c client.Client, pod *corev1.Pod, cond corev1.PodCondition) error {
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"uid": pod.UID},
		"status":   map[string]any{"conditions": []corev1.PodCondition{cond}},
	})
	if err != nil {
		return err
	}
	err = c.Status().Patch(ctx, pod, client.RawPatch(types.StrategicMergePatchType, patch))
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// namespaceWait is how soon a read put off for its namespace's share is
// tried again.
const namespaceWait = 500 * time.Millisecond

// startRead takes a reader for a pod of namespace, unless the namespace
// holds its share of them.
func (r *Reconciler) startRead(namespace string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reading == nil {
		r.reading = map[string]int{}
	}
	if share := max(1, int(namespaceShare*float64(r.Readers))); r.reading[namespace] >= share {
		return false
	}
	r.reading[namespace]++
	return true
}

func (r *Reconciler) endRead(namespace string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reading[namespace]--; r.reading[namespace] <= 0 {
		delete(r.reading, namespace)
	}
}

// failed counts one more failed read of a pod and says since when its reads
// have failed.
func (r *Reconciler) failed(pod *corev1.Pod, now time.Time) failing {
	return r.remember(pod, func(m *memory) {
		if m.count == 0 {
			m.since = now
		}
		m.count++
	}).failing
}

// succeeded ends a pod's streak of failed reads.
func (r *Reconciler) succeeded(pod *corev1.Pod) {
	r.remember(pod, func(m *memory) { m.failing = failing{} })
}

// remember applies change to what is remembered of pod and returns it.
func (r *Reconciler) remember(pod *corev1.Pod, change func(*memory)) memory {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pods == nil {
		r.pods = map[types.NamespacedName]memory{}
	}
	key := client.ObjectKeyFromObject(pod)
	m := r.pods[key]
	if m.uid != pod.UID {
		m = memory{uid: pod.UID}
	}
	change(&m)
	r.pods[key] = m
	return m
}

// forget drops what is remembered of a pod that is gone or no longer gated.
func (r *Reconciler) forget(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.pods, key)
}

// SetupWithManager registers the reconciler for gated pods. A pod is looked
// at at once when it appears or its containers change (a new pod must not
// wait for its gate: it gates rollouts), when a GatewayDrain targeting it
// turns, and when its entry in a TargetSlice changes; otherwise on its own
// schedule. Our own condition writes do not wake it. The gated pods of the
// manager's cache are counted by gate status on each scrape, once elected.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	gates.countFrom(mgr.GetCache(), mgr.Elected())
	return ctrl.NewControllerManagedBy(mgr).
		Named("podreadiness").
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.Readers, 1)}).
		For(&corev1.Pod{}, builder.WithPredicates(gatedPod, containersChanged)).
		Watches(&drainv1.TargetSlice{}, sliceEvents).
		Watches(&drainv1.GatewayDrain{}, r.drainTurns()).
		Complete(r)
}

var gatedPod = predicate.NewPredicateFuncs(func(o client.Object) bool { return gatewaypod.Gated(o.(*corev1.Pod)) })

var containersChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld.(*corev1.Pod), e.ObjectNew.(*corev1.Pod)
		return o.UID != n.UID || !apiequality.Semantic.DeepEqual(o.Status.ContainerStatuses, n.Status.ContainerStatuses)
	},
}

// sliceEvents wakes the reads of the targets whose entry a TargetSlice
// write changed (taken, a marker written or removed, a new state read), or
// of all its targets when it appears or goes. A drain's progress writes,
// one per batch, wake only the pods they are about.
var sliceEvents = handler.Funcs{
	CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		enqueue(q, e.Object.GetNamespace(), changedTargets(nil, e.Object.(*drainv1.TargetSlice)))
	},
	UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		enqueue(q, e.ObjectNew.GetNamespace(), changedTargets(e.ObjectOld.(*drainv1.TargetSlice), e.ObjectNew.(*drainv1.TargetSlice)))
	},
	DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		enqueue(q, e.Object.GetNamespace(), changedTargets(nil, e.Object.(*drainv1.TargetSlice)))
	},
}

// drainTurns wakes the reads of every target of a GatewayDrain that turns:
// cancelled, deleted, its deadline passed or Drained.
func (r *Reconciler) drainTurns() handler.Funcs {
	return handler.Funcs{
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			old, n := e.ObjectOld.(*drainv1.GatewayDrain), e.ObjectNew.(*drainv1.GatewayDrain)
			if !turned(old, n) {
				return
			}
			targets, err := drain.ListTargets(ctx, r.Client, n)
			if err != nil {
				log.FromContext(ctx).Error(err, "listing the targets of a GatewayDrain that turned", "gatewaydrain", n.Name)
			}
			var pods []string
			for _, t := range targets {
				pods = append(pods, t.PodName)
			}
			enqueue(q, n.Namespace, pods)
		},
	}
}

func enqueue(q workqueue.TypedRateLimitingInterface[reconcile.Request], namespace string, pods []string) {
	for _, pod := range pods {
		q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: namespace, Name: pod}})
	}
}

// changedTargets names the targets of slice n whose gates may have to
// follow the change from old (nil: every target).
func changedTargets(old, n *drainv1.TargetSlice) []string {
	before := map[string]drainv1.Target{}
	if old != nil {
		for _, t := range old.Targets {
			before[t.PodName] = t
		}
	}
	var pods []string
	for _, t := range n.Targets {
		b, seen := before[t.PodName]
		delete(before, t.PodName)
		if !seen || b.PodUID != t.PodUID || b.State != t.State || b.GatewayState != t.GatewayState ||
			!b.MarkerWrittenAt.Equal(t.MarkerWrittenAt) || !b.MarkerRemovedAt.Equal(t.MarkerRemovedAt) {
			pods = append(pods, t.PodName)
		}
	}
	for pod := range before { // no longer in this slice
		pods = append(pods, pod)
	}
	return pods
}

// turned reports whether a drain turned between old and n: cancelled,
// deleted, its deadline passed or Drained.
func turned(old, n *drainv1.GatewayDrain) bool {
	return old.Spec.Action != n.Spec.Action || !old.DeletionTimestamp.Equal(n.DeletionTimestamp) || drainedReason(old) != drainedReason(n)
}

func drainedReason(gwd *drainv1.GatewayDrain) string {
	if c := meta.FindStatusCondition(gwd.Status.Conditions, drainv1.ConditionDrained); c != nil {
		return c.Reason
	}
	return ""
}
