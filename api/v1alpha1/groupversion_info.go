// Package v1alpha1 contains the API of the policy.servicegraph.io group: the ServiceGraph, a
// namespace's declared service-to-service communication, from which the operator generates
// NetworkPolicies, an Istio PeerAuthentication and Istio AuthorizationPolicies.
// +kubebuilder:object:generate=true
// +groupName=policy.servicegraph.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of the ServiceGraph API.
	GroupVersion = schema.GroupVersion{Group: "policy.servicegraph.io", Version: "v1alpha1"}

	// SchemeBuilder registers the API types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the API types to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
