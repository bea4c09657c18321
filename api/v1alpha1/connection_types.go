package v1alpha1

import (
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Connection is an allowed connection in structured form.
type Connection struct {
	// from names the calling service, as "NAME" or "NAMESPACE/NAME".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=127
	// +kubebuilder:validation:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	From string `json:"from"`

	// to names the called service, as "NAME" or "NAMESPACE/NAME".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=127
	// +kubebuilder:validation:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	To string `json:"to"`

	// ports are the destination pod's ports the caller may reach.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	Ports []ConnectionPort `json:"ports"`

	// paths restricts HTTP requests to these paths (exact "/a", prefix "/a/*" or suffix "*.css").
	// Only for HTTP and GRPC ports: Istio never matches HTTP fields on plain TCP traffic.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=1024
	// +kubebuilder:validation:items:Pattern=`^(\*[!-~]*|/[!-)+-~]*\*?)$`
	Paths []string `json:"paths,omitempty"`

	// methods restricts HTTP requests to these methods (GET, POST, ...). Only for HTTP and GRPC ports.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Pattern=`^[A-Z]{1,16}$`
	Methods []string `json:"methods,omitempty"`
}

// ConnectionPort is one destination port of a connection.
type ConnectionPort struct {
	// port is the destination pod's port: a number (1-65535) or a container port name. Istio
	// AuthorizationPolicies take numbers only, so for a named port the Istio rule restricts the
	// caller's identity (and path) but not the port; the NetworkPolicy still restricts the port.
	// +required
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == string || (self >= 1 && self <= 65535)",message="port must be a number from 1 to 65535 or a container port name"
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:Pattern=`^[0-9]*[a-z]([-a-z0-9]*[a-z0-9])?$`
	Port intstr.IntOrString `json:"port"`

	// protocol is what the port speaks: TCP (when unset), UDP, SCTP, HTTP or GRPC. HTTP and GRPC are
	// TCP to the NetworkPolicy and let the AuthorizationPolicy match paths and methods. Istio does
	// not intercept UDP and SCTP, so those edges get NetworkPolicy rules only.
	// +optional
	Protocol Protocol `json:"protocol,omitempty"`
}
