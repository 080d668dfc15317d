package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// GatewayDrainLabel, on a TargetSlice, names the GatewayDrain whose targets
// it holds: kubectl get targetslices -l drain.hermes.dev/gatewaydrain=NAME.
const GatewayDrainLabel = "drain.hermes.dev/gatewaydrain"

// MaxTargetsPerSlice bounds a TargetSlice, as 1000 bounds an EndpointSlice.
// A target takes about 0.5 KB, and 2 KB with every field at its largest
// (its message at MaxTargetMessage, its marked profiles at 448 bytes; a
// replaced target's owner and replacement take the place of what only its
// drain read), so a slice stays below 1 MiB, within the 1.5 MiB etcd takes in one object,
// and a change rewrites only the slice that holds it.
const MaxTargetsPerSlice = 500

// MaxTargetMessage bounds a target's message in bytes (an error can quote
// what a container printed; its middle is dropped), so that a TargetSlice's
// size is bounded too.
const MaxTargetMessage = 600

// TargetSlice holds some of a GatewayDrain's targets and what was last
// observed of each. The operator writes TargetSlices and deletes them when
// it lets the drain go (they are also owned by it, for the garbage
// collector); people read them. Slice i holds the drain's targets
// [i*MaxTargetsPerSlice, (i+1)*MaxTargetsPerSlice) in the order they joined.
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=gwdts,categories=hermes
// +kubebuilder:printcolumn:name="Drain",type=string,JSONPath=`.metadata.labels.drain\.hermes\.dev/gatewaydrain`
// +kubebuilder:printcolumn:name="Index",type=integer,JSONPath=`.index`
// +kubebuilder:printcolumn:name="Targets",type=integer,JSONPath=`.count`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type TargetSlice struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Index is this slice's place among its drain's slices, from 0.
	// +kubebuilder:validation:Minimum=0
	Index int32 `json:"index"`
	// Count is len(targets), for printing.
	Count int32 `json:"count"`
	// Targets are the target instantiations this slice holds.
	// +kubebuilder:validation:MaxItems=500
	// +listType=atomic
	Targets []Target `json:"targets"`
}

// TargetSliceList is a list of TargetSlices.
// +kubebuilder:object:root=true
type TargetSliceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TargetSlice `json:"items"`
}
