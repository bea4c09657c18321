package cli

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/eval"
	"github.com/servicegraph/servicegraph-operator/internal/object"
	"github.com/servicegraph/servicegraph-operator/internal/traffic"
)

// trafficWorld is what discover and audit judge traffic with: the files' graphs (compiled as
// Enforce would apply them, for audit) with the files' workloads, Services and policies; when the
// files hold no workload, with the cluster's instead (its namespaces, and in the namespaces given
// and Istio's root namespace: pods, Services, waypoints and policies, except those the files'
// graphs generate, which the files replace). Without namespaces, the graphs' are read.
func trafficWorld(e *env, in *input, namespaces []string, kubeconfig string) (*World, error) {
	docs, _, problems := readDocuments(in, e.stdin, checkKinds)
	if len(problems) > 0 {
		return nil, errors.Join(errorsOf(problems)...)
	}
	if len(namespaces) == 0 { // audit: the graphs' namespaces
		for _, d := range docs {
			if sg := d.graph(); sg != nil {
				namespaces = append(namespaces, sg.Namespace)
			}
		}
	}
	if len(namespaces) > 0 && !slices.ContainsFunc(docs, func(d document) bool { _, _, _, ok := podTemplate(d.obj); return ok }) {
		live, err := liveDocuments(kubeconfig, namespaces, docs)
		if err != nil {
			return nil, err
		}
		docs = append(live, docs...)
	}
	return buildWorld(docs, in)
}

// liveDocuments reads the cluster's part of a traffic world.
func liveDocuments(kubeconfig string, namespaces []string, files []document) ([]document, error) {
	c, _, err := liveClient(kubeconfig, "", namespaces[0])
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	replaced := map[string]bool{}
	for _, d := range files {
		if sg := d.graph(); sg != nil {
			replaced[sg.Namespace+"/"+sg.Name] = true
		}
	}
	var docs []document
	add := func(o object.Object) {
		if l := o.GetLabels(); l[compiler.LabelManagedBy] == compiler.ManagedByValue && replaced[o.GetNamespace()+"/"+l[compiler.LabelGraph]] {
			return
		}
		docs = append(docs, document{file: "cluster", obj: o})
	}
	var nsList corev1.NamespaceList
	if err := c.List(ctx, &nsList); err != nil {
		return nil, err
	}
	for i := range nsList.Items {
		add(&nsList.Items[i])
	}
	read := append(slices.Clone(namespaces), compiler.DefaultIstiodNS)
	slices.Sort(read)
	for _, ns := range slices.Compact(read) {
		lists := []client.ObjectList{&corev1.PodList{}, &corev1.ServiceList{}, &gatewayv1.GatewayList{}, &networkingv1.NetworkPolicyList{},
			&securityv1.PeerAuthenticationList{}, &securityv1.AuthorizationPolicyList{}}
		for _, list := range lists {
			if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
				if meta.IsNoMatchError(err) {
					continue // Istio or the Gateway API is not installed: nothing of that kind applies
				}
				return nil, err
			}
			items, err := meta.ExtractList(list)
			if err != nil {
				return nil, err
			}
			for _, item := range items {
				o := item.(object.Object)
				if pod, ok := o.(*corev1.Pod); ok && (pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed) {
					continue
				}
				if gvk, err := apiutil.GVKForObject(o, c.Scheme()); err == nil {
					o.GetObjectKind().SetGroupVersionKind(gvk) // typed lists leave their items' kind unset
				}
				add(o)
			}
		}
	}
	return docs, nil
}

// notePod remembers the name Istio's metrics give a pod's workload.
func (w *World) notePod(wl *eval.Workload, pod *corev1.Pod) {
	if w.workloadNames == nil {
		w.workloadNames = map[*eval.Workload]string{}
	}
	w.workloadNames[wl] = traffic.WorkloadName(pod)
}

// inventory is what discover and audit know of a world's workloads and Services: its pods grouped
// by the workload Istio names them after, and its other workloads as they are.
func (w *World) inventory() *traffic.Inventory {
	inv := &traffic.Inventory{Namespaces: w.cluster.Namespaces}
	index := map[string]int{}
	for _, wl := range w.workloads {
		name := wl.Name
		if n, ok := w.workloadNames[wl]; ok {
			name = n
		}
		key := wl.Namespace + "/" + name
		i, seen := index[key]
		if !seen {
			i = len(inv.Workloads)
			index[key] = i
			inv.Workloads = append(inv.Workloads, traffic.Workload{Namespace: wl.Namespace, Name: name, Labels: wl.Labels,
				ServiceAccount: wl.ServiceAccount, Ports: wl.Ports, Meshed: wl.Meshed})
		}
		if wl.IP != "" {
			inv.Workloads[i].IPs = append(inv.Workloads[i].IPs, wl.IP)
		}
	}
	if w.mesh != nil {
		for _, list := range w.mesh.services {
			for _, svc := range list {
				inv.Services = append(inv.Services, *svc)
			}
		}
	}
	slices.SortFunc(inv.Services, func(a, b corev1.Service) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return inv
}

// keepMissing turns each proposal into its namespace's base graph plus the edges it does not allow
// (as check judges them).
func keepMissing(e *env, proposals []*traffic.Proposal, base string) error {
	bw, err := offlineWorld(&input{files: stringList{base}, namesOnly: true}, e.stdin)
	if err != nil {
		return err
	}
	for _, p := range proposals {
		for _, sg := range bw.graphs {
			if sg.Namespace != p.Namespace {
				continue
			}
			if err := p.Against(sg, bw.cluster); err != nil {
				return err
			}
		}
	}
	return nil
}
