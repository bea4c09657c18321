package cli

import (
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/cilium"
	"github.com/servicegraph/servicegraph-operator/internal/object"
)

// kinds maps the apiVersion and kind of the documents a command reads to a new object to decode
// them into; documents of other kinds are skipped.
type kinds map[metav1.TypeMeta]func() object.Object

func newServiceGraph() object.Object { return &v1alpha1.ServiceGraph{} }

func newAuthorizationPolicy() object.Object { return &securityv1.AuthorizationPolicy{} }

func newPeerAuthentication() object.Object { return &securityv1.PeerAuthentication{} }

// graphKinds are what compile and graph read.
var graphKinds = kinds{
	{APIVersion: v1alpha1.GroupVersion.String(), Kind: "ServiceGraph"}: newServiceGraph,
}

// lintKinds are what lint reads: graphs and the policies people write by hand. Istio's v1beta1
// and v1 share one spec, so both decode into the v1 types.
var lintKinds = kinds{
	{APIVersion: v1alpha1.GroupVersion.String(), Kind: "ServiceGraph"}:     newServiceGraph,
	{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"}:            func() object.Object { return &networkingv1.NetworkPolicy{} },
	{APIVersion: "security.istio.io/v1", Kind: "AuthorizationPolicy"}:      newAuthorizationPolicy,
	{APIVersion: "security.istio.io/v1beta1", Kind: "AuthorizationPolicy"}: newAuthorizationPolicy,
	{APIVersion: "security.istio.io/v1", Kind: "PeerAuthentication"}:       newPeerAuthentication,
	{APIVersion: "security.istio.io/v1beta1", Kind: "PeerAuthentication"}:  newPeerAuthentication,
	// Services tell what protocol Istio sees on a port: a graph's HTTP paths are checked against them.
	{APIVersion: "v1", Kind: "Service"}: func() object.Object { return &corev1.Service{} },
	// Namespaces tell which are in ambient mode, where ztunnel enforces selector policies.
	{APIVersion: "v1", Kind: "Namespace"}: func() object.Object { return &corev1.Namespace{} },
	// Workloads tell which pods a policy's selector can select: read for their pods' labels only.
	{APIVersion: "v1", Kind: "Pod"}:              newWorkload,
	{APIVersion: "apps/v1", Kind: "Deployment"}:  newWorkload,
	{APIVersion: "apps/v1", Kind: "StatefulSet"}: newWorkload,
	{APIVersion: "apps/v1", Kind: "DaemonSet"}:   newWorkload,
	{APIVersion: "apps/v1", Kind: "ReplicaSet"}:  newWorkload,
	{APIVersion: "batch/v1", Kind: "Job"}:        newWorkload,
	{APIVersion: "batch/v1", Kind: "CronJob"}:    newWorkload,
	// Role evidence: what says a workload's pods are a webhook or API backend, a metrics endpoint,
	// a gateway or a public front end. Read leniently, for the few fields that say so.
	{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingWebhookConfiguration"}: newEvidence,
	{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration"}:   newEvidence,
	{APIVersion: "apiregistration.k8s.io/v1", Kind: "APIService"}:                           newEvidence,
	{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition"}:               newEvidence,
	{APIVersion: "monitoring.coreos.com/v1", Kind: "ServiceMonitor"}:                        newEvidence,
	// Cilium's policies, strictly as the other kinds (every field of Cilium v1.20's schema is known:
	// a misspelt one is an IN001 finding).
	ciliumNetworkPolicyType:                                            newCiliumNetworkPolicy,
	ciliumClusterwideNetworkPolicyType:                                 newCiliumClusterwideNetworkPolicy,
	{APIVersion: "monitoring.coreos.com/v1", Kind: "PodMonitor"}:       newEvidence,
	{APIVersion: "networking.k8s.io/v1", Kind: "Ingress"}:              newEvidence,
	{APIVersion: "gateway.networking.k8s.io/v1", Kind: "Gateway"}:      newEvidence,
	{APIVersion: "gateway.networking.k8s.io/v1beta1", Kind: "Gateway"}: newEvidence,
}

// newEvidence is an object lint reads for a workload's role only (see lint.Object).
func newEvidence() object.Object { return &unstructured.Unstructured{} }

// checkKinds are what check reads from files: graphs, hand-written policies (Cilium's too),
// workloads of the kinds lint reads (whose pods' labels, ServiceAccount, ports and sidecar it
// needs) and namespaces (their labels).
var checkKinds = kinds{
	{APIVersion: v1alpha1.GroupVersion.String(), Kind: "ServiceGraph"}:     newServiceGraph,
	{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"}:            func() object.Object { return &networkingv1.NetworkPolicy{} },
	{APIVersion: "security.istio.io/v1", Kind: "AuthorizationPolicy"}:      newAuthorizationPolicy,
	{APIVersion: "security.istio.io/v1beta1", Kind: "AuthorizationPolicy"}: newAuthorizationPolicy,
	{APIVersion: "security.istio.io/v1", Kind: "PeerAuthentication"}:       newPeerAuthentication,
	{APIVersion: "security.istio.io/v1beta1", Kind: "PeerAuthentication"}:  newPeerAuthentication,
	{APIVersion: "v1", Kind: "Namespace"}:                                  func() object.Object { return &corev1.Namespace{} },
	{APIVersion: "v1", Kind: "Pod"}:                                        func() object.Object { return &corev1.Pod{} },
	{APIVersion: "apps/v1", Kind: "Deployment"}:                            func() object.Object { return &appsv1.Deployment{} },
	{APIVersion: "apps/v1", Kind: "StatefulSet"}:                           func() object.Object { return &appsv1.StatefulSet{} },
	{APIVersion: "apps/v1", Kind: "DaemonSet"}:                             func() object.Object { return &appsv1.DaemonSet{} },
	{APIVersion: "apps/v1", Kind: "ReplicaSet"}:                            func() object.Object { return &appsv1.ReplicaSet{} },
	{APIVersion: "batch/v1", Kind: "Job"}:                                  func() object.Object { return &batchv1.Job{} },
	{APIVersion: "batch/v1", Kind: "CronJob"}:                              func() object.Object { return &batchv1.CronJob{} },
	// Services and waypoints say which waypoint traffic to a workload in ambient mode goes through.
	{APIVersion: "v1", Kind: "Service"}:                           func() object.Object { return &corev1.Service{} },
	{APIVersion: "gateway.networking.k8s.io/v1", Kind: "Gateway"}: func() object.Object { return &gatewayv1.Gateway{} },
	// Cilium enforces its policies together with NetworkPolicies.
	ciliumNetworkPolicyType:            newCiliumNetworkPolicy,
	ciliumClusterwideNetworkPolicyType: newCiliumClusterwideNetworkPolicy,
}

func newCiliumNetworkPolicy() object.Object { return &cilium.CiliumNetworkPolicy{} }

func newCiliumClusterwideNetworkPolicy() object.Object {
	return &cilium.CiliumClusterwideNetworkPolicy{}
}

// The kinds of Cilium's policies, cilium.io/v2.
var (
	ciliumNetworkPolicyType            = metav1.TypeMeta{APIVersion: cilium.GroupVersion.String(), Kind: "CiliumNetworkPolicy"}
	ciliumClusterwideNetworkPolicyType = metav1.TypeMeta{APIVersion: cilium.GroupVersion.String(), Kind: "CiliumClusterwideNetworkPolicy"}
)

// removed are API versions of linted kinds the API server no longer serves, with their successor.
var removed = map[metav1.TypeMeta]string{
	{APIVersion: "extensions/v1beta1", Kind: "NetworkPolicy"}: "networking.k8s.io/v1",
}

// newWorkload is a workload as lint reads it: its pods' template (see lint.Object).
func newWorkload() object.Object { return &corev1.PodTemplate{} }
