package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/eval"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
	"github.com/servicegraph/servicegraph-operator/internal/object"
	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// Exit statuses of check: a CI assertion reads them.
const (
	ExitAllowed = 0
	ExitDenied  = 1
)

func runCheck(e *env, args []string) int {
	fs, in := newFlagSet(e, "check", "FROM TO:PORT[/PATH] [--method M] [--protocol P] (-f FILE... | --kubeconfig FILE [--context C])",
		"Says what the policies do with one new connection, layer by layer: the source's egress and the\n"+
			"destination's ingress NetworkPolicies (and Cilium's), the mutual TLS mode Istio applies, and the\n"+
			"AuthorizationPolicies (DENY before ALLOW), each with the object and rule that decided.\n"+
			"FROM and TO are services of a graph or workloads, as NAME, NAMESPACE/NAME or a label selector\n"+
			"([NAMESPACE/]app=web), in -n's namespace when they name none; FROM may be an IP address outside\n"+
			"the cluster, TO an address or a host name outside it, or a graph's external peer (its host, the\n"+
			"API server or its address). CiliumNetworkPolicies count with NetworkPolicies, as Cilium enforces\n"+
			"both; a host name is matched by their toFQDNs as Cilium's DNS proxy would have seen it.\n"+
			"Offline (-f) it compiles the graphs and adds the policies and workloads of the files; live\n"+
			"(--kubeconfig, or $KUBECONFIG) it reads the cluster's. Exits 0 when the connection is allowed,\n"+
			"1 when denied, 2 on an error.")
	method := fs.String("method", "", "the HTTP method (with a path, GET when unset)")
	protocol := fs.String("protocol", "TCP", "TCP, UDP or SCTP")
	output := fs.String("o", "text", "output format: text or json")
	fs.StringVar(output, "output", "text", "the long form of -o")
	kubeconfig := fs.String("kubeconfig", "", "check live against this cluster (default: $KUBECONFIG or ~/.kube/config when -f is not given)")
	kubeContext := fs.String("context", "", "the kubeconfig context")
	positional, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	if err != nil {
		return ExitUsage
	}
	if len(positional) != 2 {
		return usageError(e, fs, "want FROM and TO:PORT[/PATH], got %d arguments", len(positional))
	}
	req, err := parseTarget(positional[1], *method, *protocol)
	if err != nil {
		return usageError(e, fs, "%v", err)
	}
	if *output != "text" && *output != "json" {
		return usageError(e, fs, "--output must be text or json, not %q", *output)
	}
	in.namesOnly = true
	var w *World
	if len(in.files) > 0 {
		w, err = offlineWorld(in, e.stdin)
	} else {
		w, err = liveWorld(*kubeconfig, *kubeContext, in.namespace, positional[0], req.to)
	}
	if err != nil {
		printErrors(e, []error{err})
		return ExitUsage
	}
	r, err := w.request(positional[0], req)
	if err != nil {
		printErrors(e, []error{err})
		return ExitUsage
	}
	v := w.cluster.Check(r)
	out := renderCheck(r, v, *output)
	code := ExitAllowed
	if !v.Allowed {
		code = ExitDenied
	}
	if _, err := e.stdout.Write(out); err != nil {
		return ExitUsage
	}
	return code
}

// parseInterspersed parses flags that may come after the positional arguments, as kubectl's do.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// target is TO:PORT[/PATH] as written.
type target struct {
	to       string
	port     int32
	portName string
	protocol corev1.Protocol
	http     *eval.HTTP
}

func parseTarget(s, method, protocol string) (target, error) {
	to, rest, ok := strings.Cut(s, ":")
	if !ok || to == "" {
		return target{}, fmt.Errorf("%q: want TO:PORT[/PATH]", s)
	}
	port, path, hasPath := strings.Cut(rest, "/")
	t := target{to: to, protocol: corev1.Protocol(strings.ToUpper(protocol))}
	if n, err := strconv.Atoi(port); err == nil {
		if n < 1 || n > 65535 {
			return target{}, fmt.Errorf("%q: port must be 1-65535", s)
		}
		t.port = int32(n)
	} else {
		t.portName = port
	}
	if !slices.Contains([]corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}, t.protocol) {
		return target{}, fmt.Errorf("--protocol must be TCP, UDP or SCTP, not %q", protocol)
	}
	if hasPath || method != "" {
		t.http = &eval.HTTP{Path: "/" + path, Method: strings.ToUpper(method)}
		if t.http.Method == "" {
			t.http.Method = "GET"
		}
	}
	return t, nil
}

// World is a cluster to check in: its policies and the workloads names resolve to.
type World struct {
	cluster   *eval.Cluster
	workloads []*eval.Workload
	namespace string
	// graphs are the ServiceGraphs of the input, mesh its Services and waypoints.
	graphs []*v1alpha1.ServiceGraph
	mesh   *meshObjects
	// workloadNames are the names Istio's metrics give pods' traffic (their Deployment's...).
	workloadNames map[*eval.Workload]string
}

// request resolves FROM and the target's TO into a connection.
func (w *World) request(from string, t target) (eval.Request, error) {
	r := eval.Request{Port: t.port, PortName: t.portName, Protocol: t.protocol, HTTP: t.http}
	if _, err := netip.ParseAddr(from); err == nil {
		r.From = eval.Endpoint{IP: from}
	} else {
		src, err := w.find(from)
		if err != nil {
			return r, err
		}
		r.From = eval.Endpoint{Workload: src, IP: src.IP}
	}
	dst, err := w.find(t.to)
	if err != nil {
		x, ok := w.external(t.to)
		if !ok {
			return r, err
		}
		dst = x
	}
	r.To = dst
	if t.portName != "" && !slices.ContainsFunc(dst.Ports, func(p corev1.ContainerPort) bool { return p.Name == t.portName }) {
		return r, fmt.Errorf("%s has no container port named %q", dst, t.portName)
	}
	return r, nil
}

// find resolves NAME, NAMESPACE/NAME or a label selector ([NAMESPACE/]app=web,tier!=db) to one
// workload; without a namespace it looks in -n's, or in every namespace when the name is unique.
// A selector may match several pods when they are alike (replicas): same namespace, labels,
// ServiceAccount, ports and sidecar.
func (w *World) find(name string) (*eval.Workload, error) {
	ns, n, qualified := strings.Cut(name, "/")
	if !qualified {
		ns, n = w.namespace, name
	}
	match := func(wl *eval.Workload) bool { return wl.Name == n }
	isSelector := strings.ContainsAny(n, "=!(), ") // what no object name holds
	if isSelector {
		sel, err := labels.Parse(n)
		if err != nil {
			return nil, fmt.Errorf("%q: not a name nor a label selector: %w", name, err)
		}
		match = func(wl *eval.Workload) bool { return sel.Matches(labels.Set(wl.Labels)) }
	}
	var found []*eval.Workload
	for _, wl := range w.workloads {
		if match(wl) && (ns == "" || wl.Namespace == ns) {
			found = append(found, wl)
		}
	}
	switch {
	case len(found) == 1, len(found) > 1 && isSelector && alike(found):
		return found[0], nil
	case len(found) == 0:
		return nil, fmt.Errorf("no service or workload %q: name a service of a graph or a workload of the input, as NAME, NAMESPACE/NAME or a label selector", name)
	case isSelector:
		names := make([]string, len(found))
		for i, wl := range found {
			names[i] = wl.String()
		}
		return nil, fmt.Errorf("%q matches workloads that differ (%s): narrow the selector or name one", name, strings.Join(names, ", "))
	}
	return nil, fmt.Errorf("%q is in several namespaces: write NAMESPACE/NAME or pass -n", name)
}

// alike tells whether workloads look the same to every policy but an ipBlock on pod addresses.
func alike(workloads []*eval.Workload) bool {
	key := func(wl *eval.Workload) eval.Workload {
		k := *wl
		k.Name, k.IP = "", ""
		return k
	}
	first := key(workloads[0])
	for _, wl := range workloads[1:] {
		if !reflect.DeepEqual(key(wl), first) {
			return false
		}
	}
	return true
}

// offlineWorld compiles the graphs of the files and adds their policies, namespaces and workloads.
// A graph service with no workload of the input runs as pods with the graph's labels, in the mesh
// when the graph uses Istio. Each graph is compiled with what the files say of its namespace (its
// labels, Services, waypoints and workloads), as the operator would.
func offlineWorld(in *input, stdin io.Reader) (*World, error) {
	docs, _, problems := readDocuments(in, stdin, checkKinds)
	if len(problems) > 0 {
		return nil, errors.Join(errorsOf(problems)...)
	}
	return buildWorld(docs, in)
}

// buildWorld is offlineWorld's world of documents read.
func buildWorld(docs []document, in *input) (*World, error) {
	mesh := newMeshObjects(true)
	w := &World{cluster: &eval.Cluster{Namespaces: map[string]map[string]string{}}, namespace: in.namespace, mesh: mesh}
	for _, d := range docs {
		if ns, ok := d.obj.(*corev1.Namespace); ok {
			w.cluster.Namespaces[ns.Name] = ns.Labels
		}
	}
	for _, d := range docs {
		if d.graph() == nil {
			w.add(d.obj)
			mesh.collect(d.obj)
		}
	}
	for _, d := range docs {
		sg := d.graph()
		if sg == nil {
			continue
		}
		if in.enforce {
			sg = sg.DeepCopy()
			sg.Spec.Enforcement = v1alpha1.EnforcementEnforce
		}
		w.graphs = append(w.graphs, sg)
		res, err := compiler.Compile(sg, compiler.DefaultOptions(), w.facts(sg, mesh))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d, err)
		}
		for _, o := range res.Objects() {
			w.cluster.Add(o)
			mesh.collect(o)
		}
		mesh.enroll(res)
		w.addGraphServices(sg)
	}
	w.attachWaypoints(mesh)
	return w, nil
}

// add puts a policy or a workload into the world; the namespaces' labels must be known.
func (w *World) add(o object.Object) {
	w.cluster.Add(o)
	meta, pod, spec, ok := podTemplate(o)
	if !ok {
		return
	}
	nsLabels := w.cluster.Namespaces[meta.Namespace]
	ip, injectedNamespace := "", meshedNamespace(nsLabels)
	if p, isPod := o.(*corev1.Pod); isPod {
		// A pod the API server has (it has a UID) was injected or not when it was created: its
		// containers say which, whatever its namespace's label says now.
		ip, injectedNamespace = p.Status.PodIP, injectedNamespace && p.UID == ""
	}
	wl := workloadOf(meta, pod, spec, ip, injectedNamespace)
	ambientDataplane(wl, nsLabels, pod.Annotations, hasProxy(spec))
	w.workloads = append(w.workloads, wl)
	if p, isPod := o.(*corev1.Pod); isPod {
		w.notePod(wl, p)
	}
}

// podTemplate reads a workload of any kind check reads: the object's metadata, its pods' metadata
// and spec (a pod's own, a CronJob's from its jobTemplate); ok is false for another kind.
func podTemplate(o object.Object) (meta, pod *metav1.ObjectMeta, spec *corev1.PodSpec, ok bool) {
	var t *corev1.PodTemplateSpec
	switch x := o.(type) {
	case *corev1.Pod:
		return &x.ObjectMeta, &x.ObjectMeta, &x.Spec, true
	case *appsv1.Deployment:
		meta, t = &x.ObjectMeta, &x.Spec.Template
	case *appsv1.StatefulSet:
		meta, t = &x.ObjectMeta, &x.Spec.Template
	case *appsv1.DaemonSet:
		meta, t = &x.ObjectMeta, &x.Spec.Template
	case *appsv1.ReplicaSet:
		meta, t = &x.ObjectMeta, &x.Spec.Template
	case *batchv1.Job:
		meta, t = &x.ObjectMeta, &x.Spec.Template
	case *batchv1.CronJob:
		meta, t = &x.ObjectMeta, &x.Spec.JobTemplate.Spec.Template
	default:
		return nil, nil, nil, false
	}
	return meta, &t.ObjectMeta, &t.Spec, true
}

// addGraphServices adds a graph's local services that no workload of the input runs.
func (w *World) addGraphServices(sg *v1alpha1.ServiceGraph) {
	g, err := graph.Build(sg)
	if err != nil {
		return
	}
	for _, s := range g.Services {
		if s.External != nil || s.Remote != nil || slices.ContainsFunc(w.workloads, func(wl *eval.Workload) bool {
			return wl.Namespace == s.Namespace && (wl.Name == s.Name || compiler.Selects(s.Labels, wl.Labels))
		}) {
			continue
		}
		wl := &eval.Workload{Namespace: s.Namespace, Name: s.Name, Labels: s.Labels,
			ServiceAccount: s.ServiceAccount, Meshed: g.Mesh == v1alpha1.MeshIstio}
		if wl.Meshed && semantics.NamespaceDataplane(w.cluster.Namespaces[s.Namespace]) == semantics.DataplaneAmbient {
			wl.Dataplane = semantics.DataplaneAmbient
		}
		w.workloads = append(w.workloads, wl)
	}
}

// meshedNamespace tells whether Istio injects (or enrolls in ambient) the pods a namespace will get.
func meshedNamespace(l map[string]string) bool {
	return l["istio-injection"] == "enabled" || l["istio.io/rev"] != "" || l["istio.io/dataplane-mode"] == "ambient"
}

// workloadOf reads what the evaluator needs of a pod or a pod template: labels, ServiceAccount,
// ports, and whether a sidecar runs (injected or to be injected) or ambient handles it.
func workloadOf(meta, pod *metav1.ObjectMeta, spec *corev1.PodSpec, ip string, injectedNamespace bool) *eval.Workload {
	w := &eval.Workload{Namespace: meta.Namespace, Name: meta.Name, Labels: pod.Labels, IP: ip, ServiceAccount: spec.ServiceAccountName,
		Meshed: hasProxy(spec)}
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		w.Ports = append(w.Ports, c.Ports...)
	}
	inject := pod.Labels["sidecar.istio.io/inject"]
	w.Meshed = w.Meshed || object.IstioMarked(pod.Annotations) ||
		injectedNamespace && inject != "false" || inject == "true"
	return w
}

// hasProxy tells whether a pod runs Istio's sidecar container.
func hasProxy(spec *corev1.PodSpec) bool {
	return slices.ContainsFunc(append(slices.Clone(spec.InitContainers), spec.Containers...), func(c corev1.Container) bool { return c.Name == "istio-proxy" })
}

// renderCheck prints a verdict, layer by layer.
func renderCheck(r eval.Request, v eval.Verdict, format string) []byte {
	what := fmt.Sprintf("%s -> %s %s/%d", r.From, r.To, r.Protocol, r.Port)
	if r.PortName != "" {
		what += " (" + r.PortName + ")"
	}
	if r.HTTP != nil {
		what += " " + r.HTTP.Method + " " + r.HTTP.Path
	}
	if format == "json" {
		out, _ := marshalJSON(struct {
			Connection string `json:"connection"`
			eval.Verdict
		}{what, v})
		return out
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s: %s\n", what, verdictWord(v.Allowed))
	for _, s := range v.Steps {
		state := verdictWord(s.Allowed)
		if !s.Applies {
			state = "-"
		}
		fmt.Fprintf(&b, "  %-14s %-8s %s", s.Layer, state, s.By)
		if s.Detail != "" {
			fmt.Fprintf(&b, " (%s)", s.Detail)
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}

func verdictWord(allowed bool) string {
	if allowed {
		return "allowed"
	}
	return "DENIED"
}

// marshalJSON indents and leaves "<", ">" and "&" as they are: connections read "web -> api".
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	err := enc.Encode(v)
	return b.Bytes(), err
}
