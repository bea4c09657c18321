// Package v1alpha1 contains the API of the policy.servicegraph.io group: the ServiceGraph, a
// namespace's declared service-to-service communication, from which the operator generates
// NetworkPolicies, an Istio PeerAuthentication and Istio AuthorizationPolicies.
// +kubebuilder:object:generate=true
// +groupName=policy.servicegraph.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of the ServiceGraph API.
	GroupVersion = schema.GroupVersion{Group: "policy.servicegraph.io", Version: "v1alpha1"}

	// SchemeBuilder registers the API types with a runtime.Scheme. It is apimachinery's, not
	// controller-runtime's, so the API (and the pure packages importing it) pull in no client library.
	SchemeBuilder = runtime.NewSchemeBuilder(func(s *runtime.Scheme) error {
		s.AddKnownTypes(GroupVersion, &ServiceGraph{}, &ServiceGraphList{})
		metav1.AddToGroupVersion(s, GroupVersion)
		return nil
	})

	// AddToScheme adds the API types to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
