package cli

import (
	"encoding/json"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
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
}

// checkKinds are what check reads from files: graphs, hand-written policies, workloads of the
// kinds lint reads (whose pods' labels, ServiceAccount, ports and sidecar it needs) and namespaces
// (their labels).
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
}

// removed are API versions of linted kinds the API server no longer serves, with their successor.
var removed = map[metav1.TypeMeta]string{
	{APIVersion: "extensions/v1beta1", Kind: "NetworkPolicy"}: "networking.k8s.io/v1",
}

// newWorkload is a workload as lint reads it: its pods' labels (see lint.Object).
func newWorkload() object.Object { return &metav1.PartialObjectMetadata{} }

// workloadMeta reads a workload's name and namespace and its pods' labels, leniently: nothing
// else of it is checked.
func workloadMeta(data []byte, w *metav1.PartialObjectMetadata) error {
	var obj struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        metav1.ObjectMeta `json:"metadata"`
		Spec            struct {
			Template    struct{ Metadata metav1.ObjectMeta } `json:"template"`
			JobTemplate struct {
				Spec struct {
					Template struct{ Metadata metav1.ObjectMeta } `json:"template"`
				} `json:"spec"`
			} `json:"jobTemplate"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(data, &obj); err != nil {
		return err
	}
	w.TypeMeta, w.Name, w.Namespace = obj.TypeMeta, obj.Metadata.Name, obj.Metadata.Namespace
	switch obj.Kind {
	case "Pod":
		w.Labels = obj.Metadata.Labels
	case "CronJob":
		w.Labels = obj.Spec.JobTemplate.Spec.Template.Metadata.Labels
	default:
		w.Labels = obj.Spec.Template.Metadata.Labels
	}
	return nil
}
