package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/cilium"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/eval"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
	"github.com/servicegraph/servicegraph-operator/internal/object"
)

// liveWorld reads, from a cluster, what a check between two names needs: the namespaces' labels,
// the policies of the namespaces involved and of Istio's root namespace (generated or not), their
// pods, and their graphs (a service's name stands for one of its running pods).
func liveWorld(kubeconfig, kubeContext, namespace string, names ...string) (*World, error) {
	c, namespace, err := liveClient(kubeconfig, kubeContext, namespace)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	namespaces := []string{namespace, compiler.DefaultIstiodNS}
	for _, n := range names {
		if ns, _, ok := strings.Cut(n, "/"); ok {
			namespaces = append(namespaces, ns)
		}
	}
	slices.Sort(namespaces)
	w, err := ReadWorld(ctx, c, slices.Compact(namespaces))
	if err != nil {
		return nil, err
	}
	w.namespace = namespace
	return w, nil
}

// liveClient is a client of the kubeconfig's cluster, and the namespace: the one given, else the
// context's.
func liveClient(kubeconfig, kubeContext, namespace string) (client.Client, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("no cluster to read (give -f FILE for files, or --kubeconfig): %w", err)
	}
	if namespace == "" {
		if namespace, _, err = cc.Namespace(); err != nil {
			return nil, "", err
		}
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(securityv1.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	utilruntime.Must(gatewayv1.Install(scheme))
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	return c, namespace, err
}

// ReadWorld reads a world from a cluster: every namespace's labels, the policies, pods and graphs
// of the given namespaces, and the cluster's CiliumClusterwideNetworkPolicies. Cilium's kinds are
// read when the cluster serves them. The real-packet suite checks the evaluator against the
// enforcer with it.
func ReadWorld(ctx context.Context, c client.Reader, namespaces []string) (*World, error) {
	w := &World{cluster: &eval.Cluster{Namespaces: map[string]map[string]string{}}}
	var nsList corev1.NamespaceList
	if err := c.List(ctx, &nsList); err != nil {
		return nil, err
	}
	for _, ns := range nsList.Items {
		w.cluster.Namespaces[ns.Name] = ns.Labels
	}
	mesh := newMeshObjects(false)
	w.mesh = mesh
	if err := w.readCilium(ctx, c, "CiliumClusterwideNetworkPolicy", func() object.Object { return &cilium.CiliumClusterwideNetworkPolicy{} }); err != nil {
		return nil, err
	}
	for _, ns := range namespaces {
		lists := []client.ObjectList{&networkingv1.NetworkPolicyList{}, &securityv1.PeerAuthenticationList{},
			&securityv1.AuthorizationPolicyList{}, &corev1.PodList{}, &v1alpha1.ServiceGraphList{}, &corev1.ServiceList{}, &gatewayv1.GatewayList{}}
		for _, list := range lists {
			if err := listServed(ctx, c, list, client.InNamespace(ns)); err != nil {
				return nil, err
			}
		}
		for i := range lists[0].(*networkingv1.NetworkPolicyList).Items {
			w.add(&lists[0].(*networkingv1.NetworkPolicyList).Items[i])
		}
		for _, pa := range lists[1].(*securityv1.PeerAuthenticationList).Items {
			w.add(pa)
		}
		for _, ap := range lists[2].(*securityv1.AuthorizationPolicyList).Items {
			w.add(ap)
		}
		for i := range lists[3].(*corev1.PodList).Items {
			if pod := &lists[3].(*corev1.PodList).Items[i]; pod.DeletionTimestamp == nil && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed {
				w.add(pod)
			}
		}
		for i := range lists[4].(*v1alpha1.ServiceGraphList).Items {
			w.addServicePods(&lists[4].(*v1alpha1.ServiceGraphList).Items[i])
			w.graphs = append(w.graphs, &lists[4].(*v1alpha1.ServiceGraphList).Items[i])
		}
		for i := range lists[5].(*corev1.ServiceList).Items {
			mesh.collect(&lists[5].(*corev1.ServiceList).Items[i])
		}
		for i := range lists[6].(*gatewayv1.GatewayList).Items {
			mesh.collect(&lists[6].(*gatewayv1.GatewayList).Items[i])
		}
		if err := w.readCilium(ctx, c, "CiliumNetworkPolicy", func() object.Object { return &cilium.CiliumNetworkPolicy{} }, client.InNamespace(ns)); err != nil {
			return nil, err
		}
	}
	w.attachWaypoints(mesh)
	return w, nil
}

// listServed lists objects of a kind, none when the cluster does not serve it: Istio, Cilium or
// the operator's CRD not installed, nothing of that kind applies.
func listServed(ctx context.Context, c client.Reader, list client.ObjectList, opts ...client.ListOption) error {
	if err := c.List(ctx, list, opts...); err != nil && !meta.IsNoMatchError(err) {
		return err
	}
	return nil
}

// readCilium adds the cluster's objects of a Cilium kind, none when it does not serve cilium.io/v2.
// They are listed as unstructured objects, so that a client whose scheme does not know Cilium's
// types reads them too.
func (w *World) readCilium(ctx context.Context, c client.Reader, kind string, newObject func() object.Object, opts ...client.ListOption) error {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(cilium.GroupVersion.WithKind(kind + "List"))
	if err := listServed(ctx, c, list, opts...); err != nil {
		return err
	}
	for _, item := range list.Items {
		obj := newObject()
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(item.Object, obj); err != nil {
			return fmt.Errorf("%s %s: %w", kind, client.ObjectKeyFromObject(&item), err)
		}
		w.add(obj)
	}
	return nil
}

// addServicePods lets a graph's service name stand for the first of its running pods.
func (w *World) addServicePods(sg *v1alpha1.ServiceGraph) {
	g, err := graph.Build(sg)
	if err != nil {
		return
	}
	for _, s := range g.Services {
		if !g.Local(&s) || slices.ContainsFunc(w.workloads, func(wl *eval.Workload) bool { return wl.Namespace == s.Namespace && wl.Name == s.Name }) {
			continue
		}
		i := slices.IndexFunc(w.workloads, func(wl *eval.Workload) bool {
			return wl.Namespace == s.Namespace && compiler.Selects(s.Labels, wl.Labels)
		})
		if i >= 0 {
			pod := *w.workloads[i]
			pod.Name = s.Name
			w.workloads = append(w.workloads, &pod)
		}
	}
}

// Check evaluates a connection from FROM (a name or an IP address) to TO on a port.
func (w *World) Check(from, to string, port int32, protocol corev1.Protocol) (eval.Verdict, error) {
	r, err := w.request(from, target{to: to, port: port, protocol: protocol})
	if err != nil {
		return eval.Verdict{}, err
	}
	return w.cluster.Check(r), nil
}
