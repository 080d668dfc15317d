// Package v1alpha1 holds the drain.hermes.dev/v1alpha1 API: the GatewayDrain
// resource that asks the operator to drain a set of Hermes gateway pods.
// +kubebuilder:object:generate=true
// +groupName=drain.hermes.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "drain.hermes.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this API with a scheme: an API
	// package depends on apimachinery alone.
	SchemeBuilder = runtime.NewSchemeBuilder(func(s *runtime.Scheme) error {
		s.AddKnownTypes(GroupVersion, &GatewayDrain{}, &GatewayDrainList{}, &TargetSlice{}, &TargetSliceList{})
		metav1.AddToGroupVersion(s, GroupVersion)
		return nil
	})

	// AddToScheme adds the types of this API to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
