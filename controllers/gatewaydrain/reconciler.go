// Package gatewaydrain reconciles GatewayDrain objects: it chooses the target
// gateway instantiations, projects the drain marker into each through a
// transport, follows each gateway until it is drained, and withdraws the
// markers on cancel, delete or deadline.
package gatewaydrain

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/controllers/orphans"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/internal/options"
	"github.com/hermes-agent/hermes-drain-operator/internal/transport"
)

// Finalizer holds a GatewayDrain until its markers are withdrawn.
const Finalizer = "drain.hermes.dev/release-markers"

// Options tune how often targets are talked to.
type Options struct {
	// CallsInFlight bounds the calls to containers in flight per reconcile.
	CallsInFlight int
	// BatchTime is how long one reconcile starts calls to a drain's targets
	// before it writes its progress (drain.callsUntil).
	BatchTime time.Duration
	// CallGrace is how long the calls a reconcile started may run past its
	// batch before they are abandoned: many times a call's usual time
	// (milliseconds through an agent, about 0.3 s through pods/exec).
	CallGrace time.Duration
	// PollInterval is how often a draining target is read.
	PollInterval time.Duration
	// IdlePollInterval is how often a drained target is read.
	IdlePollInterval time.Duration
	// ConfirmAfter is how long after a first read that found the gateway
	// drained with no turn in flight a second one must confirm it.
	ConfirmAfter time.Duration
	// RefreshInterval is how often our marker is rewritten, well before
	// upstream's one-hour expiry of requested_at.
	RefreshInterval time.Duration
	// RetryBase and RetryMax bound the exponential backoff after failures.
	RetryBase, RetryMax time.Duration
	// ReleaseTimeout is how long a deleted GatewayDrain waits for its markers
	// to be removed, without progress, before it lets go anyway (a Warning
	// event names what was left).
	ReleaseTimeout time.Duration
	// EndpointsSettleTimeout bounds how long a gated target waits to leave
	// its Services before its marker is written anyway (leaveTraffic).
	EndpointsSettleTimeout time.Duration
	// DataPlaneDelay is how long a gated target stays out of traffic, after
	// no EndpointSlice lists it as ready, before its marker is written: the
	// time kube-proxy and the like take to follow EndpointSlices.
	DataPlaneDelay time.Duration
}

// DefaultOptions are the operator's defaults.
func DefaultOptions() Options {
	return Options{
		CallsInFlight:    32,
		BatchTime:        2 * time.Second,
		CallGrace:        10 * time.Second,
		PollInterval:     2 * time.Second,
		IdlePollInterval: 30 * time.Second,
		ConfirmAfter:     2 * time.Second,
		RefreshInterval:  20 * time.Minute,
		RetryBase:        time.Second,
		RetryMax:         2 * time.Minute,
		ReleaseTimeout:   5 * time.Minute,

		EndpointsSettleTimeout: 30 * time.Second,
		DataPlaneDelay:         2 * time.Second,
	}
}

// BindFlags binds the options to their command-line flags, with the
// current values as defaults.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.IntVar(&o.CallsInFlight, "exec-concurrency", o.CallsInFlight, "calls into gateway containers in flight per GatewayDrain")
	fs.DurationVar(&o.BatchTime, "batch-time", o.BatchTime, "how long one reconcile starts calls to a GatewayDrain's targets before it writes its progress")
	fs.DurationVar(&o.CallGrace, "batch-call-grace", o.CallGrace, "how long calls may run past the batch that started them before they are abandoned and retried")
	fs.DurationVar(&o.PollInterval, "poll-interval", o.PollInterval, "how often a draining gateway is read")
	fs.DurationVar(&o.ConfirmAfter, "drained-confirm-after", o.ConfirmAfter, "a target is Drained on two reads at least this far apart, by the same gateway process")
	fs.DurationVar(&o.IdlePollInterval, "idle-poll-interval", o.IdlePollInterval, "how often a drained gateway is read")
	fs.DurationVar(&o.RefreshInterval, "refresh-interval", o.RefreshInterval, "how often a marker is rewritten (upstream expires it after 1h)")
	fs.DurationVar(&o.ReleaseTimeout, "release-timeout", o.ReleaseTimeout, "how long a deleted GatewayDrain waits to remove its markers without progress before it lets go")
	fs.DurationVar(&o.EndpointsSettleTimeout, "endpoints-settle-timeout", o.EndpointsSettleTimeout, "how long a gated gateway waits to leave its Services' EndpointSlices before its marker is written anyway")
	fs.DurationVar(&o.DataPlaneDelay, "data-plane-delay", o.DataPlaneDelay, "how long a gated gateway stays out of traffic, once no EndpointSlice lists it as ready, before its marker is written (kube-proxy's lag)")
}

// Validate refuses options the reconciler cannot work with, naming the flag.
func (o Options) Validate() error {
	var tooLong error
	if o.RefreshInterval >= 50*time.Minute {
		tooLong = fmt.Errorf("--refresh-interval %s must stay well below upstream's 1h marker expiry", o.RefreshInterval)
	}
	return errors.Join(
		options.AtLeastOne("--exec-concurrency", o.CallsInFlight),
		options.PositiveDuration("--batch-time", o.BatchTime),
		options.PositiveDuration("--batch-call-grace", o.CallGrace),
		options.PositiveDuration("--poll-interval", o.PollInterval),
		options.PositiveDuration("--drained-confirm-after", o.ConfirmAfter),
		options.PositiveDuration("--idle-poll-interval", o.IdlePollInterval),
		options.PositiveDuration("--refresh-interval", o.RefreshInterval),
		options.PositiveDuration("--release-timeout", o.ReleaseTimeout),
		options.PositiveDuration("--endpoints-settle-timeout", o.EndpointsSettleTimeout),
		options.NotNegativeDuration("--data-plane-delay", o.DataPlaneDelay),
		options.PositiveDuration("retry base", o.RetryBase),
		options.PositiveDuration("retry max", o.RetryMax),
		tooLong,
	)
}

// Reconciler reconciles GatewayDrains.
type Reconciler struct {
	client.Client
	// APIReader reads what the cache may not hold yet: a TargetSlice the
	// last reconcile created.
	APIReader client.Reader
	Transport transport.Transport
	Recorder  events.EventRecorder
	Options
	Clock clock.PassiveClock
	// Orphans, if set, removes a marker whose GatewayDrain no longer exists
	// when it holds a target.
	Orphans *orphans.Remover

	// written are the TargetSlice versions this reconciler last wrote.
	written sliceVersions
}

// +kubebuilder:rbac:groups=drain.hermes.dev,resources=gatewaydrains,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=drain.hermes.dev,resources=gatewaydrains/status,verbs=get;update
// +kubebuilder:rbac:groups=drain.hermes.dev,resources=gatewaydrains/finalizers,verbs=update
// +kubebuilder:rbac:groups=drain.hermes.dev,resources=targetslices,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods/exec,verbs=create;get
// +kubebuilder:rbac:groups="",resources=pods/eviction,verbs=create
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile runs the drain's phases: load its targets, act on them (choose,
// follow the selector, step, finalize), then write back what was observed
// (status, slices, events, metrics). Acting never writes status, and the
// write-back runs whatever path acting took, keeping both their errors.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	gwd := &drainv1.GatewayDrain{}
	if err := r.Get(ctx, req.NamespacedName, gwd); err != nil {
		if apierrors.IsNotFound(err) {
			forgetMetrics(req.Namespace, req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if gwd.DeletionTimestamp.IsZero() && !controllerutil.ContainsFinalizer(gwd, Finalizer) {
		patch := client.MergeFromWithOptions(gwd.DeepCopy(), client.MergeFromWithOptimisticLock{})
		controllerutil.AddFinalizer(gwd, Finalizer)
		if err := r.Patch(ctx, gwd, patch); err != nil {
			return ctrl.Result{}, err
		}
	}

	loaded, ready, err := r.loadTargets(ctx, gwd)
	switch {
	case err != nil:
		return ctrl.Result{}, err
	case !ready:
		// The slices' events wake it; the requeue is a backstop.
		log.FromContext(ctx).V(1).Info("waiting for the cache to catch up with the TargetSlices this operator wrote last")
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	before := gwd.DeepCopy()
	d := newView(gwd, loaded.Targets(), r.Clock.Now(), r.BatchTime)
	out := r.act(ctx, d, loaded)
	if out.released {
		return ctrl.Result{}, out.err // the object is gone: no status to write
	}
	return r.writeBack(ctx, before, d, loaded, out)
}

// acted is what acting on a drain came to.
type acted struct {
	result ctrl.Result
	err    error
	// stalled says why the drain cannot progress without a person, if so.
	stalled *drain.Stall
	// released: deleted, its finalizer removed; the object is gone.
	released bool
}

// act does what the drain asks of its targets, and writes nothing of its
// status.
func (r *Reconciler) act(ctx context.Context, d *view, loaded drain.Slices) acted {
	if d.gwd.Status.StartedAt == nil && d.withdrawn == "" {
		// The snapshot is written before any marker is: a second reconcile
		// on a stale cache cannot take another one (its write conflicts),
		// and a crash cannot leave a marker on a pod the status forgot.
		// Writing it wakes the next reconcile, which acts on it.
		stalled, err := r.chooseTargets(ctx, d)
		out := acted{stalled: stalled, err: err}
		if stalled != nil && stalled.Reason == drainv1.ReasonCannotReplace {
			// Looked at again: a pod that goes, or gets a controller, lets it start.
			out.result = ctrl.Result{RequeueAfter: r.IdlePollInterval}
		}
		return out
	}
	r.resume(d)
	r.haltIfLate(d)
	if d.following() && len(d.targets) > 0 {
		// Until it is first Drained the drain follows its selector. New
		// targets are written before anything is done to them, as the
		// snapshot is; writing them wakes the next reconcile.
		if added, err := r.followSelector(ctx, d); err != nil || added {
			return acted{err: err}
		}
	}
	next, err := r.stepTargets(ctx, d)
	if err != nil {
		return acted{err: err}
	}
	// Taken in after the step, which read the waiting targets: the wave
	// takes the idle first. What it takes in is stepped at once.
	if r.haltIfLate(d) || r.takeIn(d) {
		next = d.now
	}
	if d.withdrawn == drain.WithdrawnDeleted {
		released, err := r.finalize(ctx, d, loaded)
		if err != nil || released {
			return acted{err: err, released: released}
		}
		return acted{result: ctrl.Result{RequeueAfter: r.RetryBase}}
	}
	if d.withdrawn == "" && d.gwd.Status.Deadline != nil {
		next = earliest(next, d.gwd.Status.Deadline.Time)
	}
	if !next.IsZero() {
		log.FromContext(ctx).V(1).Info("looking again", "at", next, "in", next.Sub(d.now).Round(time.Millisecond))
	}
	return acted{result: requeueAt(next, d.now)}
}

// writeBack computes the drain's status from its targets as observed and
// writes the targets, then the status that counts them: a status never
// describes targets that were not written. Each write is locked by the
// resourceVersion that was read: a reconcile that read a stale cache
// cannot overwrite newer targets or a newer status; it retries on fresh
// data. An error from acting is kept beside the write's.
func (r *Reconciler) writeBack(ctx context.Context, before *drainv1.GatewayDrain, d *view, loaded drain.Slices, out acted) (ctrl.Result, error) {
	gwd := d.gwd
	drain.ComputeStatus(gwd, d.targets, d.withdrawn, d.now, out.stalled)
	recordMetrics(d)
	werr := r.saveTargets(ctx, gwd, loaded, d.targets)
	if werr == nil && !apiequality.Semantic.DeepEqual(before.Status, gwd.Status) {
		if werr = r.Status().Update(ctx, gwd); werr == nil {
			r.recordTransitions(before, gwd)
		}
	}
	if apierrors.IsConflict(werr) || apierrors.IsAlreadyExists(werr) {
		log.FromContext(ctx).V(1).Info("a write met a newer version: reconciling again on fresh data", "after", r.RetryBase, "conflict", werr.Error())
		if out.err != nil {
			return ctrl.Result{}, out.err
		}
		return ctrl.Result{RequeueAfter: r.RetryBase}, nil
	}
	if err := errors.Join(out.err, werr); err != nil {
		return ctrl.Result{}, err
	}
	return out.result, nil
}

// stepTargets steps every target, a bounded number at a time, and returns the
// earliest time one wants to be looked at again.
func (r *Reconciler) stepTargets(ctx context.Context, d *view) (time.Time, error) {
	targets := d.targets
	if len(targets) == 0 {
		return time.Time{}, nil
	}
	// Most overdue first (never tried: first of all), in that order: a
	// reconcile's batch goes to the targets that waited longest, so none
	// starves behind targets that are polled often.
	order := make([]int, len(targets))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return r.nextAttempt(d, targets[a]).Compare(r.nextAttempt(d, targets[b]))
	})
	stepped := make([]drainv1.Target, len(targets))
	nexts := make([]time.Time, len(targets))
	logger := log.FromContext(ctx)
	// A reconcile does not wait on its calls long past its batch: a call
	// still running CallGrace after the batch ended is abandoned (its
	// target fails and is retried with backoff), so targets that never
	// answer cannot hold the drain workers.
	callCtx, cancel := context.WithDeadline(ctx, d.callsUntil.Add(r.CallGrace))
	defer cancel()
	sem := make(chan struct{}, max(r.CallsInFlight, 1))
	var wg sync.WaitGroup
	var lookupErr error
	var lookupOnce sync.Once
	for _, i := range order {
		t := targets[i]
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			// Each target's pod is looked up on its own, when it is
			// stepped: listing the namespace would copy every pod in it,
			// and looking them all up first would hold a copy of each.
			pod, err := r.podOf(ctx, d.gwd.Namespace, t.PodName)
			if err != nil {
				stepped[i] = t
				lookupOnce.Do(func() { lookupErr = err })
				return
			}
			before := t.State
			stepped[i], nexts[i] = r.step(callCtx, d, t, pod)
			// A message can quote what a container printed or a gateway
			// wrote: printable, as it is shown on terminals and in events,
			// and bounded, so a TargetSlice stays within its size, keeping
			// its end (the why).
			stepped[i].Message = marker.Elide(marker.Printable(stepped[i].Message), drainv1.MaxTargetMessage)
			if stepped[i].State != before && (stepped[i].State == drainv1.TargetFailed || stepped[i].State == drainv1.TargetConflict) {
				r.event(d.gwd, corev1.EventTypeWarning, "Target"+string(stepped[i].State), "%s: %s", t.PodName, stepped[i].Message)
			}
			logTarget(logger, before, stepped[i], nexts[i], d.replaces)
		})
	}
	wg.Wait()
	if deferred := d.deferred.Load(); deferred > 0 {
		logger.V(1).Info("the batch closed: the next reconcile carries on", "batchTime", r.BatchTime, "targetsLeft", deferred)
	}
	d.targets = stepped // what was done is kept, even if a lookup failed
	if lookupErr != nil {
		return time.Time{}, lookupErr
	}
	var next time.Time
	for _, n := range nexts {
		next = earliest(next, n)
	}
	return next, nil
}

// podOf is the pod of that name from the cache (shallow: read only), or nil
// when there is none.
func (r *Reconciler) podOf(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	pod := &corev1.Pod{}
	err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, pod, client.UnsafeDisableDeepCopy)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return pod, err
}

// finalize lets a deleted GatewayDrain go once its markers are withdrawn, or
// once ReleaseTimeout has passed without progress, saying what was left
// behind (releaseDeadline): it deletes
// the drain's TargetSlices, then its finalizer. It reports whether it let
// go: the object is then gone, with no status to write.
func (r *Reconciler) finalize(ctx context.Context, d *view, loaded drain.Slices) (bool, error) {
	gwd := d.gwd
	var left []drainv1.Target
	for _, t := range d.targets {
		if !drain.Done(t, true, false) {
			left = append(left, t)
		}
	}
	if len(left) > 0 && d.now.Before(releaseDeadline(gwd, d.targets, r.ReleaseTimeout)) {
		return false, nil
	}
	if len(left) > 0 {
		r.event(gwd, corev1.EventTypeWarning, "MarkersLeft",
			"deleted, and %s without removing a marker: letting go of the markers of %s; each gateway ignores its marker once restarted (epoch)", r.ReleaseTimeout, drain.PodNames(left))
	}
	// No targets left to hold: every slice goes.
	if err := r.saveTargets(ctx, gwd, loaded, nil); err != nil {
		return false, err
	}
	r.written.forget(gwd.UID)
	patch := client.MergeFromWithOptions(gwd.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(gwd, Finalizer)
	switch err := r.Patch(ctx, gwd, patch); {
	case err == nil:
		markersLeft.WithLabelValues(gwd.Namespace).Add(float64(len(left)))
	case !apierrors.IsNotFound(err):
		return false, err
	} // not found: a reconcile before this one let go, and counted what it left
	forgetMetrics(gwd.Namespace, gwd.Name)
	return true, nil
}

// SetupWithManager registers the reconciler: GatewayDrains, and the pods
// they target (a restart or recreation must be noticed at once, and a gated
// pod leaving traffic as soon as it does), the EndpointSlices that list
// them, and its own TargetSlices (a reconcile that found the cache behind
// its last writes waits for them). It needs SetupIndexes.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, maxConcurrentReconciles int) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&drainv1.GatewayDrain{}).
		Owns(&drainv1.TargetSlice{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(r.drainsTargeting),
			builder.WithPredicates(instantiationOrReadinessChanged)).
		Watches(&discoveryv1.EndpointSlice{}, handler.EnqueueRequestsFromMapFunc(r.drainsTargetingEndpoints)).
		WithOptions(controller.Options{MaxConcurrentReconciles: maxConcurrentReconciles}).
		Named("gatewaydrain").
		Complete(r)
}

// drainsTargeting maps a pod to the GatewayDrains whose slices hold a pod of its name.
func (r *Reconciler) drainsTargeting(ctx context.Context, pod client.Object) []reconcile.Request {
	held, err := drain.SlicesTargeting(ctx, r.Client, pod.GetNamespace(), pod.GetName())
	if err != nil {
		log.FromContext(ctx).Error(err, "listing TargetSlices for a pod", "pod", pod.GetName())
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(held))
	for _, s := range held {
		if owner := metav1.GetControllerOf(&s); owner != nil {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKey{Namespace: s.Namespace, Name: owner.Name}})
		}
	}
	return reqs
}

// drainsTargetingEndpoints maps an EndpointSlice to the GatewayDrains that
// target a pod it lists: one may wait for the pod to leave it.
func (r *Reconciler) drainsTargetingEndpoints(ctx context.Context, o client.Object) []reconcile.Request {
	seen := map[reconcile.Request]bool{}
	var reqs []reconcile.Request
	for _, name := range drain.EndpointPods(o) {
		pod := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: o.GetNamespace(), Name: name}}
		for _, req := range r.drainsTargeting(ctx, pod) {
			if !seen[req] {
				seen[req] = true
				reqs = append(reqs, req)
			}
		}
	}
	return reqs
}

// instantiationOrReadinessChanged passes pod events that can change an
// instantiation (creation, deletion, and updates of UID, deletion or
// container statuses) or take a pod out of traffic (its Ready condition or
// readiness gate).
var instantiationOrReadinessChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld.(*corev1.Pod), e.ObjectNew.(*corev1.Pod)
		return o.UID != n.UID || !o.DeletionTimestamp.Equal(n.DeletionTimestamp) ||
			!apiequality.Semantic.DeepEqual(o.Status.ContainerStatuses, n.Status.ContainerStatuses) ||
			gatewaypod.ConditionStatus(o, corev1.PodReady) != gatewaypod.ConditionStatus(n, corev1.PodReady) ||
			gatewaypod.ConditionStatus(o, drainv1.ReadinessGate) != gatewaypod.ConditionStatus(n, drainv1.ReadinessGate)
	},
}

// releaseDeadline is when a deleted drain stops waiting for its markers to
// be removed: timeout after its deletion or after the last marker it
// removed, whichever is later. A release that makes progress is never cut
// short (10,000 markers through exec take about ten minutes to remove, and
// each one left behind holds its gateway until it restarts); one that makes
// none gives up.
func releaseDeadline(gwd *drainv1.GatewayDrain, targets []drainv1.Target, timeout time.Duration) time.Time {
	last := gwd.DeletionTimestamp.Time
	for _, t := range targets {
		if t.MarkerRemovedAt != nil && t.MarkerRemovedAt.After(last) {
			last = t.MarkerRemovedAt.Time
		}
	}
	return last.Add(timeout)
}

// logTarget says what became of a target: at level 0 each change of state,
// at level 1 each look that left it waiting (and for what, and until when),
// so that `kubectl logs` answers "why is gw-3 still Draining".
func logTarget(logger logr.Logger, before drainv1.TargetState, t drainv1.Target, next time.Time, replaces bool) {
	keys := []any{"pod", t.PodName, "state", t.State, "message", t.Message}
	if t.BlockingGateway != "" {
		keys = append(keys, "blockingGateway", t.BlockingGateway)
	}
	if t.State != before {
		logger.Info("target", append(keys, "was", before)...)
		return
	}
	if logger.V(1).Enabled() && !drain.Done(t, false, replaces) && !drain.Done(t, true, replaces) {
		if !next.IsZero() {
			keys = append(keys, "next", next)
		}
		logger.V(1).Info("target waits", keys...)
	}
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func requeueAt(next, now time.Time) ctrl.Result {
	if next.IsZero() {
		return ctrl.Result{}
	}
	return ctrl.Result{RequeueAfter: max(next.Sub(now), 100*time.Millisecond)}
}
