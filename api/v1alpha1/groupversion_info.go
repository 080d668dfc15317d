// Package v1alpha1 holds the drain.hermes.dev/v1alpha1 API: the GatewayDrain
// resource that asks the operator to drain a set of Hermes gateway pods.
// +kubebuilder:object:generate=true
// +groupName=drain.hermes.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "drain.hermes.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this API with a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this API to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
