package gatewaydrain

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod"
)

// A drain-and-replace (spec.replace) takes its targets in a few at a time:
// each is drained as any target is, then its pod is evicted, and it is done
// once the pod its controller creates instead serves. This file holds the
// wave: taking targets in, evicting, following the replacement, halting
// when one does not serve, and resuming.

// evictionTimeout bounds one eviction call: client-go retries a 429 that
// carries Retry-After (a budget not processed yet) up to ten times.
const evictionTimeout = 10 * time.Second

// takeIn moves waiting targets into the wave while fewer than
// maxUnavailable are out. It reports whether it took any.
func (r *Reconciler) takeIn(d *view) bool {
	if !d.replaces || d.release != "" {
		return false
	}
	out := 0
	for _, t := range d.targets {
		if drain.Unavailable(t) {
			out++
		}
	}
	limit := drain.MaxUnavailable(d.gwd, len(d.targets))
	picked := drain.TakeIn(d.targets, limit-out)
	if len(picked) == 0 {
		return false
	}
	for _, i := range picked {
		t := &d.targets[i]
		t.State, t.Message, t.LastAttemptTime, t.Failures = drainv1.TargetPending, "taken into the wave", nil, 0
	}
	r.event(d.gwd, corev1.EventTypeNormal, "TakenIn", "taking in %d (%d out, at most %d): %s",
		len(picked), out+len(picked), limit, drain.SomeOf(len(picked), ", ", func(i int) string { return d.targets[picked[i]].PodName }))
	return true
}

// stepWaiting keeps a target that waits its turn as it is, nothing written:
// it is read now and then, so that the wave takes the idle first.
func (r *Reconciler) stepWaiting(ctx context.Context, d *view, t drainv1.Target, pod *corev1.Pod) (drainv1.Target, time.Time) {
	now := d.now
	switch {
	case d.withdrawn != "":
		t.State, t.Message = drainv1.TargetReleased, "drain "+d.withdrawn+" before its turn: nothing was written"
		return t, time.Time{}
	case pod == nil || pod.UID != t.PodUID:
		t.State, t.Message, t.Failures = drainv1.TargetRestarted, "replaced before its turn ("+drain.InstantiationOver(&t, pod)+"): nothing was written", 0
		return t, time.Time{}
	case drain.InstantiationOver(&t, pod) != "":
		// The same pod, its container restarted: still to replace.
		fresh := drain.NewTarget(d.gwd, pod)
		fresh.ActiveAgents = t.ActiveAgents
		return fresh, now
	case d.release != "":
		t.Message = "waiting: the wave " + d.release
		return t, time.Time{}
	case !gatewaypod.Running(pod, t.Container) || t.Unreachable != "":
		return t, time.Time{}
	}
	if next, ok := r.due(d, t, now); !ok {
		return t, next
	}
	obs, err := r.Transport.Read(ctx, d.container(t), t.HermesHome)
	if err != nil {
		attempt := metav1.NewTime(now)
		t.LastAttemptTime, t.Message = &attempt, "waiting its turn; reading it failed: "+err.Error()
		t.Failures++
		return t, r.retryAt(t)
	}
	t = readBack(t, obs, now)
	t.Failures, t.Message = 0, "waiting its turn"
	if t.ActiveAgents != nil {
		t.Message = fmt.Sprintf("waiting its turn (%d turns in flight)", *t.ActiveAgents)
	}
	return t, now.Add(r.IdlePollInterval)
}

// evict asks the Eviction API to delete a drained target's pod, the UID it
// was drained in as a precondition: PodDisruptionBudgets are honoured, and
// a pod recreated meanwhile is never evicted in its place.
// refusedWords open the message of a target whose eviction was refused.
const refusedWords = "drained; eviction refused by a PodDisruptionBudget"

func (r *Reconciler) evict(ctx context.Context, d *view, t drainv1.Target, pod *corev1.Pod, refusedBefore bool) (drainv1.Target, time.Time) {
	now := d.now
	owner, why := drain.OwnerOf(pod)
	if owner == "" { // chosen with an owner; it may have been orphaned since
		t.Message += "; not evicted: " + why
		return t, now.Add(r.IdlePollInterval)
	}
	evCtx, cancel := context.WithTimeout(ctx, evictionTimeout)
	defer cancel()
	err := r.SubResource("eviction").Create(evCtx, pod, &policyv1.Eviction{
		DeleteOptions: &metav1.DeleteOptions{Preconditions: metav1.NewUIDPreconditions(string(t.PodUID))},
	})
	switch {
	case err == nil, apierrors.IsNotFound(err), apierrors.IsConflict(err): // evicted, or gone already
		evictions.WithLabelValues("evicted").Inc()
		evicted, serveBy := metav1.NewTime(now), metav1.NewTime(now.Add(drain.ServingTimeout(d.gwd)))
		t.State, t.EvictedAt, t.ServeBy, t.Failures, t.Owner = drainv1.TargetReplacing, &evicted, &serveBy, 0, owner
		// Its replacement is read as soon as it is Ready (its pod's events
		// wake the drain), then every PollInterval: each second counts in
		// the gateway's refusal window.
		t.LastAttemptTime = nil
		// What only the drain of this pod read goes, so that a replaced
		// target takes no more room in its TargetSlice than a draining one.
		t.MarkedProfiles, t.BlockingGateway, t.DrainSeenAt, t.DrainSeenBy = "", "", nil, ""
		t.Message = "evicted; waiting for " + t.Owner + " to replace it"
		r.event(d.gwd, corev1.EventTypeNormal, "Evicted", "%s: drained and evicted; %s replaces it", t.PodName, owner)
		return t, now.Add(r.PollInterval)
	case apierrors.IsTooManyRequests(err) && apierrors.HasStatusCause(err, policyv1.DisruptionBudgetCause):
		evictions.WithLabelValues("refused").Inc()
		cause, _ := apierrors.StatusCause(err, policyv1.DisruptionBudgetCause)
		if !refusedBefore {
			r.event(d.gwd, corev1.EventTypeWarning, "EvictionRefused", "%s: %s (%s)", t.PodName, refusedWords, cause.Message)
		}
		t.Message = refusedWords + " (" + cause.Message + "): tried again on each read of the drained gateway"
	default:
		evictions.WithLabelValues("failed").Inc()
		t.Message = "drained; evicting failed, tried again on each read of the drained gateway: " + err.Error()
	}
	// It stays Drained, its marker kept in place by its reads.
	return t, now.Add(r.IdlePollInterval)
}

// stepReplacing follows an evicted target until a pod that replaces it
// serves: running, Ready, and its gateway accepting turns. Reading that
// gateway through Clear also removes our marker from a StatefulSet's
// replacement, which inherits the evicted pod's durable HERMES_HOME.
func (r *Reconciler) stepReplacing(ctx context.Context, d *view, t drainv1.Target, pod *corev1.Pod) (drainv1.Target, time.Time) {
	now := d.now
	if t.State == drainv1.TargetReplaced {
		return t, time.Time{}
	}
	if d.withdrawn != "" {
		return r.stepRestarted(ctx, d, t, pod, "evicted for its replacement", now)
	}
	repl, err := r.replacementOf(ctx, d, t, pod)
	if err != nil {
		t.Message = "evicted; looking for its replacement: " + err.Error()
		return t, now.Add(r.PollInterval)
	}
	if repl == nil {
		t.Message = "evicted; waiting for " + t.Owner + " to create its replacement"
		return t, earliest(now.Add(r.PollInterval), t.ServeBy.Time)
	}
	t.Replacement = repl.Name
	at, home, err := gatewaypod.Locate(repl, d.gwd.Spec.Container, d.gwd.Spec.HermesHome)
	if why := drain.NotServing(repl, at.Container); why != "" || err != nil {
		if err != nil {
			why = err.Error()
		}
		t.Message = "replacement " + repl.Name + ": " + why
		return t, earliest(now.Add(r.PollInterval), t.ServeBy.Time)
	}
	if next, ok := r.due(d, t, now); !ok {
		return t, next
	}
	attempt := metav1.NewTime(now)
	t.LastAttemptTime = &attempt
	obs, err := r.Transport.Clear(ctx, at, home, string(d.gwd.UID))
	if err != nil {
		t.Message = "replacement " + repl.Name + ": reading its gateway: " + err.Error()
		return t, now.Add(r.PollInterval)
	}
	st, problem := obs.GatewayStateNow()
	switch {
	case problem != nil:
		t.Message = "replacement " + repl.Name + ": " + problem.Message
		return t, now.Add(r.PollInterval)
	case !st.AcceptsTurns():
		t.Message = fmt.Sprintf("replacement %s: gateway %s", repl.Name, st.State)
		return t, now.Add(r.PollInterval)
	}
	replaced := metav1.NewTime(now)
	t.State, t.ReplacedAt, t.GatewayState, t.ActiveAgents = drainv1.TargetReplaced, &replaced, st.State, nil
	t.Message = "replaced by " + repl.Name + ", which serves"
	if from := refusalStart(t); from != nil {
		refusalWindow.Observe(now.Sub(from.Time).Seconds())
	}
	r.event(d.gwd, corev1.EventTypeNormal, "Replaced", "%s: replaced by %s, which serves", t.PodName, repl.Name)
	return t, time.Time{}
}

// refusalStart is when the target's gateway stopped taking turns: it left
// its Services, or (without the gate) its marker was written.
func refusalStart(t drainv1.Target) *metav1.Time {
	if t.LeavingTrafficSince != nil {
		return t.LeavingTrafficSince
	}
	return t.MarkerWrittenAt
}

// replacementOf finds the pod that replaced an evicted target: under a
// StatefulSet the pod of its name with another UID; under a ReplicaSet a
// pod of the same owner, created after the eviction, that is no target's
// and no other target's replacement.
func (r *Reconciler) replacementOf(ctx context.Context, d *view, t drainv1.Target, pod *corev1.Pod) (*corev1.Pod, error) {
	if drain.SameName(t.Owner) {
		if pod != nil && pod.UID != t.PodUID {
			return pod, nil
		}
		return nil, nil
	}
	c := &d.replacements
	c.once.Do(func() { c.err = r.readReplacements(ctx, d) })
	if c.err != nil {
		return nil, c.err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	candidates := c.byOwner[t.Owner]
	for _, p := range candidates {
		if p.Name == t.Replacement {
			return p, nil
		}
	}
	for _, p := range candidates {
		// A minute's slack for the API server's clock against ours.
		if !c.claimed[p.Name] && !p.CreationTimestamp.Before(&metav1.Time{Time: t.EvictedAt.Add(-time.Minute)}) {
			c.claimed[p.Name] = true
			return p, nil
		}
	}
	return nil, nil
}

// readReplacements lists, once per reconcile, the pods the selector matches
// that are not targets, by owner, and the replacements already claimed.
func (r *Reconciler) readReplacements(ctx context.Context, d *view) error {
	sel, err := metav1.LabelSelectorAsSelector(&d.gwd.Spec.Selector)
	if err != nil {
		return err
	}
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(d.gwd.Namespace), client.MatchingLabelsSelector{Selector: sel}, client.UnsafeDisableDeepCopy); err != nil {
		return err
	}
	targets := map[types.UID]bool{}
	c := &d.replacements
	c.byOwner, c.claimed = map[string][]*corev1.Pod{}, map[string]bool{}
	for _, t := range d.targets {
		targets[t.PodUID] = true
		if t.Replacement != "" {
			c.claimed[t.Replacement] = true
		}
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if owner, _ := drain.OwnerOf(p); owner != "" && !targets[p.UID] && p.DeletionTimestamp == nil {
			c.byOwner[owner] = append(c.byOwner[owner], p)
		}
	}
	return nil
}

// haltIfLate halts the wave when an evicted target's replacement did not
// serve in time: nothing more is evicted, and the next reconcile releases
// the targets drained but not yet evicted. It reports whether it halted.
func (r *Reconciler) haltIfLate(d *view) bool {
	if !d.replaces || d.release != "" {
		return false
	}
	for _, t := range d.targets {
		if t.State == drainv1.TargetReplacing && t.ServeBy != nil && !d.now.Before(t.ServeBy.Time) {
			halted := metav1.NewTime(d.now)
			d.gwd.Status.HaltedAt = &halted
			d.gwd.Status.HaltedBecause = fmt.Sprintf("%s was not replaced by a pod that serves within %s of its eviction (%s)",
				t.PodName, drain.ServingTimeout(d.gwd), t.Message)
			d.setRelease()
			return true
		}
	}
	return false
}

// resume lifts a halt the resume annotation asks to lift: the targets the
// halt released wait their turn again, and a replacement still not serving
// gets servingTimeout again from now.
func (r *Reconciler) resume(d *view) {
	if !d.replaces || !drain.Resumed(d.gwd) || d.withdrawn != "" {
		return
	}
	d.gwd.Status.HaltedAt, d.gwd.Status.HaltedBecause = nil, ""
	serveBy := metav1.NewTime(d.now.Add(drain.ServingTimeout(d.gwd)))
	for i := range d.targets {
		switch t := &d.targets[i]; t.State {
		case drainv1.TargetReleased:
			if t.Unreachable != "" { // never written to: it stays as it was chosen
				t.State, t.Message = drainv1.TargetFailed, t.Unreachable+"; the operator will not write to this gateway"
				continue
			}
			*t = drainv1.Target{
				PodName: t.PodName, PodUID: t.PodUID, Container: t.Container, ContainerID: t.ContainerID, StartedAt: t.StartedAt,
				RestartCount: t.RestartCount, HermesHome: t.HermesHome, Epoch: t.Epoch, Owner: t.Owner, ActiveAgents: t.ActiveAgents,
				State: drainv1.TargetWaiting, Message: "resumed: waiting its turn again",
			}
		case drainv1.TargetReplacing:
			if t.ServeBy != nil && !d.now.Before(t.ServeBy.Time) {
				t.ServeBy = &serveBy
			}
		}
	}
	d.setRelease()
	r.event(d.gwd, corev1.EventTypeNormal, "Resumed", "the wave resumes (%s)", drainv1.ResumeAnnotation)
}

// cannotReplace names the gateway pods no controller would replace: a
// drain-and-replace that holds one does nothing.
func cannotReplace(pods []*corev1.Pod) *drain.Stall {
	var why []string
	for _, p := range pods {
		if _, reason := drain.OwnerOf(p); reason != "" {
			why = append(why, p.Name+": "+reason)
		}
	}
	if len(why) == 0 {
		return nil
	}
	return &drain.Stall{Reason: drainv1.ReasonCannotReplace, Message: fmt.Sprintf("%d of the %d gateway pods the selector matches would not be replaced, so nothing was drained (narrow the selector, or drain them without spec.replace): %s",
		len(why), len(pods), drain.SomeOf(len(why), "; ", func(i int) string { return why[i] }))}
}
