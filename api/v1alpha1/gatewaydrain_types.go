package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// DrainAction is what the GatewayDrain asks of its targets. It mirrors the
// upstream dashboard's {action: drain|cancel}.
// +kubebuilder:validation:Enum=Drain;Cancel
type DrainAction string

const (
	// ActionDrain projects a drain marker into every target gateway.
	ActionDrain DrainAction = "Drain"
	// ActionCancel withdraws the drain: every marker this GatewayDrain wrote is removed.
	ActionCancel DrainAction = "Cancel"
)

// GatewayLabel, set to "true", declares a pod a Hermes gateway. Only a pod
// that declares itself a gateway, with this label or with the readiness
// gate, is ever a drain's target: creating a GatewayDrain must not let
// anyone make the operator write into any pod of the namespace.
const GatewayLabel = "drain.hermes.dev/gateway"

// AgentPortName names the container port on which a pod declares its
// hermes-drain-agent (normally a native sidecar): the operator then calls
// the agent there instead of using pods/exec (docs/agent.md).
const AgentPortName = "hermes-drain"

// ContainerAnnotation names the gateway container on a pod when spec.container is empty.
const ContainerAnnotation = "drain.hermes.dev/container"

// AskAgainAnnotation on a GatewayDrain, an RFC 3339 time, asks again the
// targets whose marker a person removed before that time: their markers
// are written again.
const AskAgainAnnotation = "drain.hermes.dev/ask-again"

// ReadinessGate is the readiness gate a gateway pod declares to have its
// readiness follow the gateway's own state.
const ReadinessGate corev1.PodConditionType = "drain.hermes.dev/serving"

// ResumeAnnotation on a GatewayDrain whose replacement wave halted, an RFC
// 3339 time after status.haltedAt, resumes the wave: the targets the halt
// released wait their turn again, and the replacement that did not serve
// gets spec.replace.servingTimeout again from that time.
const ResumeAnnotation = "drain.hermes.dev/resume"

// DefaultHermesHome is the upstream image's HERMES_HOME.
const DefaultHermesHome = "/opt/data"

// GatewayDrainSpec is the drain a person or an automation asks for.
//
// Everything that says where a marker lives or who wrote it (selector,
// container, hermesHome, principal) is immutable: changing it mid-drain would
// orphan the markers already written. Only action (Drain -> Cancel) and the
// timeout may change.
// (Each such field refuses a change itself; these rules refuse setting or
// unsetting it later.)
// +kubebuilder:validation:XValidation:rule="has(self.container) == has(oldSelf.container)",message="container is immutable: create a new GatewayDrain"
// +kubebuilder:validation:XValidation:rule="has(self.hermesHome) == has(oldSelf.hermesHome)",message="hermesHome is immutable: create a new GatewayDrain"
// +kubebuilder:validation:XValidation:rule="has(self.principal) == has(oldSelf.principal)",message="principal is immutable: create a new GatewayDrain"
// +kubebuilder:validation:XValidation:rule="has(self.replace) == has(oldSelf.replace)",message="replace cannot be set or unset on an existing GatewayDrain: create a new one"
type GatewayDrainSpec struct {
	// Selector picks the gateway pods of this namespace to drain. Only pods
	// that declare themselves gateways (the drain.hermes.dev/gateway=true
	// label, or the readiness gate drain.hermes.dev/serving) are targets.
	// Until the drain is first Drained it follows the selector: a gateway pod
	// that starts, or a target's new instantiation (restarted container,
	// recreated pod), is drained too. From then on the targets are frozen.
	// +required
	// +kubebuilder:validation:XValidation:rule="(has(self.matchLabels) && size(self.matchLabels) > 0) || (has(self.matchExpressions) && size(self.matchExpressions) > 0)",message="selector must not be empty: an empty selector would drain every pod of the namespace"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="selector is immutable: create a new GatewayDrain"
	Selector metav1.LabelSelector `json:"selector"`

	// Action is Drain (the default) or Cancel. A Drain may become a Cancel;
	// a Cancel cannot become a Drain again.
	// +kubebuilder:default=Drain
	// +kubebuilder:validation:XValidation:rule="!(oldSelf == 'Cancel' && self == 'Drain')",message="a cancelled GatewayDrain cannot drain again: create a new GatewayDrain"
	// +optional
	Action DrainAction `json:"action,omitempty"`

	// Container is the gateway container's name. Default: the pod's
	// drain.hermes.dev/container annotation, else its first container.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="container is immutable: create a new GatewayDrain"
	// +optional
	Container string `json:"container,omitempty"`

	// HermesHome is the gateway's HERMES_HOME inside the container, where the
	// marker is written. Default: the container's literal HERMES_HOME env
	// value, else /opt/data.
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/')",message="hermesHome must be an absolute path"
	// +kubebuilder:validation:XValidation:rule="!self.endsWith('/')",message="hermesHome must not end with '/'"
	// +kubebuilder:validation:XValidation:rule="!self.contains('//')",message="hermesHome must not contain '//'"
	// +kubebuilder:validation:XValidation:rule=`!self.matches('(^|/)[.][.]?(/|$)')`,message="hermesHome must not contain '.' or '..' segments"
	// +kubebuilder:validation:XValidation:rule=`!self.matches('\\p{Cc}')`,message="hermesHome must not contain control characters"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="hermesHome is immutable: create a new GatewayDrain"
	// +optional
	HermesHome string `json:"hermesHome,omitempty"`

	// Principal is recorded in the marker as who asked for the drain.
	// Default: gatewaydrain/<namespace>/<name>.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule=`!self.matches('\\p{Cc}')`,message="principal must not contain control characters"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="principal is immutable: create a new GatewayDrain"
	// +optional
	Principal string `json:"principal,omitempty"`

	// SuppressNotification is upstream's suppress_notification marker field.
	// +optional
	SuppressNotification bool `json:"suppressNotification,omitempty"`

	// RequireCompleteWorkCounting refuses to call a gateway drained unless
	// its record shows that its active_agents counts API-server runs and
	// cron jobs too, not only chat turns (upstream PR #63891; the record
	// shows it from v0.20.6: code_version, code_sha or active_work). Older
	// gateways then hold the drain until its deadline. Without it they are
	// drained on their count, and status says how many
	// (counts.partialWorkCounting).
	// +optional
	RequireCompleteWorkCounting bool `json:"requireCompleteWorkCounting,omitempty"`

	// Timeout is the drain's deadline, counted from when its targets were
	// chosen. When it passes the drain is withdrawn (markers removed) and the
	// status says DeadlineExceeded, so no drain can wedge a gateway forever.
	// Between 1m and 24h; default 2h.
	// +kubebuilder:default="2h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('24h')",message="timeout must be between 1m and 24h"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// TrafficOrder says when a gated gateway (one with the readiness gate
	// drain.hermes.dev/serving) leaves its Services. LeaveTrafficFirst (the
	// default): its gate goes False and the drain waits until no
	// EndpointSlice lists the pod as ready, then for the data plane and
	// deregistrationDelay, and only then writes the marker, so that no turn
	// is routed to a gateway that refuses it. MarkerFirst: the marker is
	// written at once and the gate follows the gateway's own state; turns
	// routed to it until its Services catch up are refused. Gateways without
	// the gate keep their Services until they drain, in either order.
	// +kubebuilder:default=LeaveTrafficFirst
	// +optional
	TrafficOrder TrafficOrder `json:"trafficOrder,omitempty"`

	// DeregistrationDelay is how long a gated gateway stays out of traffic,
	// after no EndpointSlice lists it as ready, before its marker is written:
	// for load balancers that follow EndpointSlices with a lag of their own
	// (the deregistration delay of a cloud load balancer's target group).
	// At most 1h; default 0.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('1h')",message="deregistrationDelay must be at most 1h"
	// +optional
	DeregistrationDelay *metav1.Duration `json:"deregistrationDelay,omitempty"`

	// Replace, when set, replaces each target once it is drained, in
	// waves: its pod is evicted (PodDisruptionBudgets honoured) and the
	// target is done when the pod its controller creates instead serves
	// turns. At most maxUnavailable targets are between "taken out of
	// traffic or marked" and "replacement serving" at once; the others wait,
	// undrained and serving. Targets are frozen when chosen: replacements
	// are never drained. Every target's pod must have a controller (a
	// ReplicaSet, so a Deployment, or a StatefulSet), or nothing is done.
	// +optional
	Replace *ReplaceSpec `json:"replace,omitempty"`
}

// ReplaceSpec is how a drain-and-replace proceeds.
type ReplaceSpec struct {
	// MaxUnavailable bounds how many targets are out at once: a number of
	// at least 1, or a percentage of the targets from 1% to 100% (rounded
	// down, at least 1). Default 1. It may change while the wave runs.
	// +kubebuilder:default=1
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 1 : self.matches('^([1-9][0-9]?|100)%$')",message="maxUnavailable must be a number of at least 1 or a percentage from 1% to 100%"
	// +optional
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`

	// ServingTimeout is how long, from its old pod's eviction, a
	// replacement has to serve (running, Ready, its gateway accepting
	// turns). A replacement that does not halts the wave: nothing more is
	// evicted, the drained targets not yet replaced are released, and the
	// Stalled condition names the pod and why. Between 10s and 1h; default 5m.
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s') && duration(self) <= duration('1h')",message="servingTimeout must be between 10s and 1h"
	// +optional
	ServingTimeout *metav1.Duration `json:"servingTimeout,omitempty"`
}

// TrafficOrder is when a gated gateway leaves its Services during a drain.
// +kubebuilder:validation:Enum=LeaveTrafficFirst;MarkerFirst
type TrafficOrder string

const (
	// TrafficLeaveFirst takes a gated gateway out of its Services before its
	// marker is written.
	TrafficLeaveFirst TrafficOrder = "LeaveTrafficFirst"
	// TrafficMarkerFirst writes the marker at once; the gate follows the
	// gateway's state.
	TrafficMarkerFirst TrafficOrder = "MarkerFirst"
)

// TargetState is where one target instantiation stands.
// +kubebuilder:validation:Enum=Waiting;Pending;LeavingTraffic;Draining;Drained;Replacing;Replaced;Released;Restarted;Conflict;MarkerRemoved;Failed
type TargetState string

const (
	// TargetWaiting: a drain-and-replace has not taken this target in yet
	// (spec.replace.maxUnavailable): nothing is written, the gateway serves.
	TargetWaiting TargetState = "Waiting"
	// TargetPending: the marker is not confirmed yet.
	TargetPending TargetState = "Pending"
	// TargetLeavingTraffic: a gated gateway's readiness gate is False and
	// the drain waits for it to leave its Services before writing its marker
	// (spec.trafficOrder LeaveTrafficFirst); the message says what it waits for.
	TargetLeavingTraffic TargetState = "LeavingTraffic"
	// TargetDraining: our marker is in place; the gateway still has turns in flight
	// or has not reported draining yet.
	TargetDraining TargetState = "Draining"
	// TargetDrained: the gateway reports gateway_state "draining" with no active agents.
	TargetDrained TargetState = "Drained"
	// TargetReplacing: drained, and a drain-and-replace evicts its pod (the
	// message names a PodDisruptionBudget that refuses it) and waits for the
	// replacement to serve.
	TargetReplacing TargetState = "Replacing"
	// TargetReplaced: the pod that replaced it serves turns.
	TargetReplaced TargetState = "Replaced"
	// TargetReleased: the drain was withdrawn and our marker removed.
	TargetReleased TargetState = "Released"
	// TargetRestarted: the instantiation is over (pod gone or recreated, or the
	// gateway container restarted): its drain is over.
	TargetRestarted TargetState = "Restarted"
	// TargetConflict: another writer's live marker holds the gateway; it is left alone.
	TargetConflict TargetState = "Conflict"
	// TargetMarkerRemoved: our marker disappeared from the same
	// instantiation while the drain stood. Upstream's dashboard cancels a
	// drain by deleting the marker: a person's decision, which the operator
	// never undoes. The gateway serves again; the marker is written again
	// only when the drain is asked again (AskAgainAnnotation).
	TargetMarkerRemoved TargetState = "MarkerRemoved"
	// TargetFailed: the last attempt failed (see message); it is retried with backoff.
	TargetFailed TargetState = "Failed"
)

// Condition types and reasons of a GatewayDrain. Ready, Reconciling and
// Stalled follow kstatus; Drained is what rollout automation waits for.
const (
	ConditionReady       = "Ready"
	ConditionReconciling = "Reconciling"
	ConditionStalled     = "Stalled"
	ConditionDrained     = "Drained"
	// ConditionReplaced is what automation waits for on a drain-and-replace:
	// every target replaced by a pod that serves.
	ConditionReplaced = "Replaced"

	ReasonProgressing      = "Progressing"
	ReasonDrained          = "Drained"
	ReasonReleased         = "Released"
	ReasonReleasing        = "Releasing"
	ReasonDeadlineExceeded = "DeadlineExceeded"
	ReasonNoTargets        = "NoTargets"
	ReasonInvalidSelector  = "InvalidSelector"
	ReasonCancelled        = "Cancelled"
	ReasonSucceeded        = "Succeeded"
	// ReasonMarkerRemoved: every target that keeps the drain from Drained
	// had its marker removed by a person; only asking again moves it.
	ReasonMarkerRemoved = "MarkerRemoved"
	// ReasonReplacing: a drain-and-replace is under way; it is never
	// Drained as a whole (condition Replaced says when it is done).
	ReasonReplacing = "Replacing"
	ReasonReplaced  = "Replaced"
	// ReasonReplacementNotServing: a replacement did not serve within
	// spec.replace.servingTimeout; the wave halted.
	ReasonReplacementNotServing = "ReplacementNotServing"
	// ReasonCannotReplace: a target's pod has no controller that would
	// replace it; nothing was done.
	ReasonCannotReplace = "CannotReplace"
)

// Target is one gateway instantiation the drain was taken for, and what was
// last observed of it.
type Target struct {
	// PodName is the target pod's name.
	PodName string `json:"podName"`
	// PodUID is the pod's UID: part of the instantiation's identity.
	PodUID types.UID `json:"podUID"`
	// Container is the gateway container's name.
	Container string `json:"container"`
	// ContainerID is the runtime's container ID, where it reports one.
	// +optional
	ContainerID string `json:"containerID,omitempty"`
	// StartedAt is when the gateway container of this instantiation started.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// RestartCount is the gateway container's restart count for this instantiation.
	RestartCount int32 `json:"restartCount"`
	// HermesHome is the resolved HERMES_HOME of this target: "" until the
	// container's own HERMES_HOME environment (else /opt/data) has been read
	// by the first call into it, when neither the pod nor the spec names it.
	HermesHome string `json:"hermesHome"`
	// Unreachable says why the operator never calls into this target (its
	// HERMES_HOME cannot be resolved safely). It stays Failed, blocking the
	// drain, until its instantiation ends.
	// +optional
	Unreachable string `json:"unreachable,omitempty"`
	// Epoch is the native epoch read inside the container
	// (boot_id:pid1_starttime), "" when what the container reported does not
	// have that form (at most 85 bytes): a gateway's reports may be hostile.
	// +kubebuilder:validation:MaxLength=128
	// +optional
	Epoch string `json:"epoch,omitempty"`

	// State is where this target stands.
	State TargetState `json:"state"`
	// Gateways counts the gateways the target's container runs, as last
	// read: the root home's, and each profile home's that runs one of its
	// own (one gateway multiplexing every profile is one).
	// +optional
	Gateways int32 `json:"gateways,omitempty"`
	// BlockingGateway names the profile of the gateway that keeps the
	// target from Drained ("default" for the root home's), "" when none.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	BlockingGateway string `json:"blockingGateway,omitempty"`
	// PartialWorkCounting: a gateway of this target, drained, does not show
	// in its record that its active_agents counts API-server runs and cron
	// jobs (upstream before v0.20.6 shows nothing; before PR #63891 it did
	// not count them): work it does not count may still run.
	// +optional
	PartialWorkCounting bool `json:"partialWorkCounting,omitempty"`
	// MarkedProfiles lists, comma-separated, the profile homes our marker
	// was written to in this instantiation: one found gone from any of
	// them while the drain stands was removed by a person (MarkerRemoved).
	// +kubebuilder:validation:MaxLength=448
	// +optional
	MarkedProfiles string `json:"markedProfiles,omitempty"`
	// GatewayState is gateway_state from gateway_state.json as last read,
	// of the blocking gateway (else the root home's): one of the states
	// upstream writes, "unknown", or "not-running" when no gateway runs
	// there (none has started, or its process is gone).
	// +kubebuilder:validation:MaxLength=32
	// +optional
	GatewayState string `json:"gatewayState,omitempty"`
	// ActiveAgents is active_agents from gateway_state.json as last read,
	// summed over the target's gateways.
	// +optional
	ActiveAgents *int32 `json:"activeAgents,omitempty"`
	// AddedAt is when this instantiation joined the drain, if it did after
	// the drain started: a gateway pod that appeared, or a target's new
	// instantiation, before the drain was first Drained.
	// +optional
	AddedAt *metav1.Time `json:"addedAt,omitempty"`
	// StateUpdatedAt is updated_at of gateway_state.json as last read, on
	// the gateway's clock: an RFC 3339 time in UTC, "" when the file gives
	// none that parses. It is shown, never used to judge liveness: upstream
	// writes the file on events only, so an idle gateway's never changes.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	StateUpdatedAt string `json:"stateUpdatedAt,omitempty"`
	// DrainSeenAt is when a read first found the gateway draining with no
	// turn in flight, and DrainSeenBy the writer of that record
	// ("pid/start_time"): the target is Drained on a second such read, by
	// the same process, at least --drained-confirm-after later. A drained
	// gateway can start work again (internal events pass its accept gate),
	// and draining is also what a restart or a scale-to-zero writes.
	// +optional
	DrainSeenAt *metav1.Time `json:"drainSeenAt,omitempty"`
	// +kubebuilder:validation:MaxLength=64
	// +optional
	DrainSeenBy string `json:"drainSeenBy,omitempty"`
	// LeavingTrafficSince is when the drain started taking this gated
	// gateway out of its Services (its gate False), and OutOfTrafficAt when
	// no EndpointSlice listed it as ready any more (or the operator's
	// --endpoints-settle-timeout passed): its marker is written once the
	// data plane's delay and spec.deregistrationDelay have passed since.
	// +optional
	LeavingTrafficSince *metav1.Time `json:"leavingTrafficSince,omitempty"`
	// +optional
	OutOfTrafficAt *metav1.Time `json:"outOfTrafficAt,omitempty"`
	// Owner is the controller that replaces the target's evicted pod, as
	// Kind/name: a StatefulSet, or a ReplicaSet's Deployment (else the
	// ReplicaSet). Set when a drain-and-replace evicts the pod.
	// +kubebuilder:validation:MaxLength=280
	// +optional
	Owner string `json:"owner,omitempty"`
	// EvictedAt is when a drain-and-replace evicted the target's pod, and
	// ServeBy when its replacement must serve, or the wave halts.
	// +optional
	EvictedAt *metav1.Time `json:"evictedAt,omitempty"`
	// +optional
	ServeBy *metav1.Time `json:"serveBy,omitempty"`
	// Replacement is the pod that replaced the target's (the same name
	// under a StatefulSet), once found.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Replacement string `json:"replacement,omitempty"`
	// ReplacedAt is when the replacement was first seen serving.
	// +optional
	ReplacedAt *metav1.Time `json:"replacedAt,omitempty"`
	// MarkerWrittenAt is when this drain's marker was last written to the target.
	// +optional
	MarkerWrittenAt *metav1.Time `json:"markerWrittenAt,omitempty"`
	// MarkerRemovedAt is when this drain's marker was removed from the target
	// (or found absent) after the drain ended for it, or found removed by
	// someone else while the drain stood (MarkerRemoved).
	// +optional
	MarkerRemovedAt *metav1.Time `json:"markerRemovedAt,omitempty"`
	// LastAttemptTime is when the operator last talked to the target.
	// +optional
	LastAttemptTime *metav1.Time `json:"lastAttemptTime,omitempty"`
	// Failures counts consecutive attempts that failed or found another's
	// marker in place; it sets the backoff of the next.
	// +optional
	Failures int32 `json:"failures,omitempty"`
	// Message says what blocks this target, or the last error (at most
	// MaxTargetMessage bytes, its middle elided).
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Message string `json:"message,omitempty"`
}

// TargetCounts counts the targets by state.
type TargetCounts struct {
	Targets int32 `json:"targets"`
	// Waiting counts the targets of a drain-and-replace not taken in yet.
	Waiting int32 `json:"waiting,omitempty"`
	Pending int32 `json:"pending,omitempty"`
	// LeavingTraffic counts the gated targets being taken out of their
	// Services before their markers are written.
	LeavingTraffic int32 `json:"leavingTraffic,omitempty"`
	Draining       int32 `json:"draining,omitempty"`
	Drained        int32 `json:"drained,omitempty"`
	Replacing      int32 `json:"replacing,omitempty"`
	Replaced       int32 `json:"replaced,omitempty"`
	Released       int32 `json:"released,omitempty"`
	Restarted      int32 `json:"restarted,omitempty"`
	Conflict       int32 `json:"conflict,omitempty"`
	// MarkerRemoved counts the targets whose marker a person removed.
	MarkerRemoved int32 `json:"markerRemoved,omitempty"`
	// PartialWorkCounting counts the drained targets with a gateway whose
	// record does not show that its active_agents counts all its work.
	PartialWorkCounting int32 `json:"partialWorkCounting,omitempty"`
	Failed              int32 `json:"failed,omitempty"`
	// Added counts the targets that joined after the drain started.
	Added int32 `json:"added,omitempty"`
}

// GatewayDrainStatus is what the operator observed, computed afresh by every reconcile.
type GatewayDrainStatus struct {
	// ObservedGeneration is the generation this status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Reconciling, Stalled (kstatus) and Drained.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// StartedAt is when the targets were chosen; the deadline counts from here.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// NotGateways counts the running pods the selector matched that do not
	// declare themselves gateways (the drain.hermes.dev/gateway=true label or
	// the readiness gate): they are never targets.
	// +optional
	NotGateways int32 `json:"notGateways,omitempty"`
	// Deadline is StartedAt + spec.timeout.
	// +optional
	Deadline *metav1.Time `json:"deadline,omitempty"`
	// DrainedAt is when the drain was first Drained. From then on its
	// targets are frozen: a new instantiation of one ends its drain.
	// +optional
	DrainedAt *metav1.Time `json:"drainedAt,omitempty"`
	// DeadlineExceeded is set once the deadline has passed with targets to
	// drain: the drain is withdrawn for good, whatever the timeout becomes.
	// +optional
	DeadlineExceeded bool `json:"deadlineExceeded,omitempty"`
	// HaltedAt is when a drain-and-replace halted because a replacement
	// did not serve in time (the Stalled condition names it): nothing more
	// is evicted until ResumeAnnotation is set to a later time.
	// +optional
	HaltedAt *metav1.Time `json:"haltedAt,omitempty"`
	// HaltedBecause names the replacement that did not serve, and why.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	HaltedBecause string `json:"haltedBecause,omitempty"`
	// Unavailable counts, during a drain-and-replace, the targets between
	// "taken in" and "replacement serving", and MaxUnavailable is the bound
	// it is held to (spec.replace.maxUnavailable resolved).
	// +optional
	Unavailable int32 `json:"unavailable,omitempty"`
	// +optional
	MaxUnavailable int32 `json:"maxUnavailable,omitempty"`
	// Counts counts the targets by state.
	// +optional
	Counts TargetCounts `json:"counts,omitempty"`
	// Progress is "drained/targets" ("replaced/targets" for a
	// drain-and-replace), for printing.
	// +optional
	Progress string `json:"progress,omitempty"`
	// TargetSlices is how many TargetSlices hold this drain's targets (the
	// instantiations it was taken for), each labelled with GatewayDrainLabel.
	// The targets are not listed here, so that this status stays small
	// however many gateways the drain holds; the conditions name the pods
	// that block it.
	// +optional
	TargetSlices int32 `json:"targetSlices,omitempty"`
}

// GatewayDrain asks the operator to drain the Hermes gateways its selector picks:
// stop them taking new turns and let in-flight turns finish, before a disruptive action.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=gwd,categories=hermes
// +kubebuilder:printcolumn:name="Action",type=string,JSONPath=`.spec.action`
// +kubebuilder:printcolumn:name="Targets",type=integer,JSONPath=`.status.counts.targets`
// +kubebuilder:printcolumn:name="Drained",type=string,JSONPath=`.status.progress`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63",message="the name must be at most 63 characters: it labels the drain's TargetSlices"
type GatewayDrain struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   GatewayDrainSpec   `json:"spec"`
	Status GatewayDrainStatus `json:"status,omitempty"`
}

// GatewayDrainList is a list of GatewayDrains.
// +kubebuilder:object:root=true
type GatewayDrainList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []GatewayDrain `json:"items"`
}
