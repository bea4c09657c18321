package lint

import (
	"slices"
	"strconv"
	"strings"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Roles: what the input says a workload's pods are for, and the openings that role needs. A
// webhook or API backend must be reachable by the API server, which is no pod (so from anywhere,
// and in plain text for Istio); istiod by every proxy; a gateway or public front end by anyone; a
// metrics endpoint by the cluster's Prometheus (role_evidence.go reads each). An opening no wider
// than its pods' roles need is reported as a note saying why it is fine; a wider one keeps its
// severity and says what the role needed. Only a policy for named pods is judged: one for a whole
// namespace (or, from Istio's root namespace, the mesh) reaches pods the input may not hold.

// reach is how far an opening lets callers come from (or, for egress, lets pods go).
type reach int

const (
	// reachCluster: pods of any namespace.
	reachCluster reach = iota + 1
	// reachAnywhere: any address, in the cluster and out.
	reachAnywhere
)

func (r reach) describe(egress bool) string {
	switch {
	case egress && r == reachAnywhere:
		return "to anywhere"
	case egress:
		return "to the cluster"
	case r == reachAnywhere:
		return "from anywhere"
	}
	return "from the cluster"
}

// need is one opening a role needs: a pod port (a number, or a container port's name), or every
// port, and how far; for egress, the destinations' ports and how far they are.
type need struct {
	port   intstr.IntOrString
	all    bool
	reach  reach
	egress bool
	why    string
}

// opening is what a finding opens: pod ports (nil: every port) to callers from some reach, or for
// egress to destinations.
type opening struct {
	ports  []intstr.IntOrString
	reach  reach
	egress bool
}

// roleIndex holds the input's evidence of roles.
type roleIndex struct {
	workloads map[string][]*corev1.PodTemplate
	services  map[string][]*corev1.Service
	evidence  []*unstructured.Unstructured
	// workloadFiles are the namespaces each file has workloads of.
	workloadFiles map[string]map[string]bool
}

func newRoleIndex(objs []Object) *roleIndex {
	ri := &roleIndex{workloads: map[string][]*corev1.PodTemplate{}, services: map[string][]*corev1.Service{}, workloadFiles: map[string]map[string]bool{}}
	for _, o := range objs {
		switch x := o.Object.(type) {
		case *corev1.PodTemplate:
			ri.workloads[x.Namespace] = append(ri.workloads[x.Namespace], x)
			if ri.workloadFiles[o.File] == nil {
				ri.workloadFiles[o.File] = map[string]bool{}
			}
			ri.workloadFiles[o.File][x.Namespace] = true
		case *corev1.Service:
			ri.services[x.Namespace] = append(ri.services[x.Namespace], x)
		case *unstructured.Unstructured:
			ri.evidence = append(ri.evidence, x)
		}
	}
	return ri
}

// complete tells whether the input's workloads of a policy's namespace may be taken as all of them:
// --workloads complete says so, or the policy's own file holds some (as WL001 judges).
func (ri *roleIndex) complete(o Object, opts Options) bool {
	return opts.Workloads || ri.workloadFiles[o.File][namespaceOf(o.Object)]
}

// matching are a namespace's workloads in the input whose pods a selector matches.
func (ri *roleIndex) matching(namespace string, sel labels.Selector) []*corev1.PodTemplate {
	var out []*corev1.PodTemplate
	for _, w := range ri.workloads[namespace] {
		if sel.Matches(labels.Set(w.Template.Labels)) {
			out = append(out, w)
		}
	}
	return out
}

// pods are the pods a selector picks: the namespace's workloads it matches; without any in the
// input (an operator may make them, as Prometheus's), the pods of the Services whose every pod it
// selects (a Service's selector is a subset of its pods' labels, and of the labels the selector
// requires); without those, pods labelled as the selector requires (the well-known labels of Istio
// and monitoring components say the role themselves).
func (ri *roleIndex) pods(namespace string, sel labels.Selector) []*corev1.PodTemplate {
	if out := ri.matching(namespace, sel); len(out) > 0 {
		return out
	}
	required := requiredLabels(sel)
	if len(required) == 0 {
		return nil
	}
	pod := func(l map[string]string) *corev1.PodTemplate {
		p := &corev1.PodTemplate{}
		p.Namespace, p.Template.Labels = namespace, l
		return p
	}
	var out []*corev1.PodTemplate
	for _, svc := range ri.services[namespace] {
		if len(svc.Spec.Selector) > 0 && labels.SelectorFromSet(svc.Spec.Selector).Matches(required) {
			out = append(out, pod(required))
		}
	}
	if len(out) == 0 {
		out = append(out, pod(required))
	}
	return out
}

// requiredLabels are the labels every pod a selector matches has: its equalities.
func requiredLabels(sel labels.Selector) labels.Set {
	req, _ := sel.Requirements()
	out := labels.Set{}
	for _, r := range req {
		switch r.Operator() {
		case selection.Equals, selection.DoubleEquals, selection.In:
			if v, ok := r.Values().PopAny(); ok && r.Values().Len() == 1 {
				out[r.Key()] = v
			}
		}
	}
	return out
}

// judge tells whether the roles of every pod of the opening need all it opens, with the needs
// that say so; when it opens more, the needs there are (in the opening's direction).
func (ri *roleIndex) judge(namespace string, sel labels.Selector, op opening) (covered bool, needs []need) {
	pods := ri.pods(namespace, sel)
	if len(pods) == 0 {
		return false, nil
	}
	var met, all []need
	covered = true
	for _, p := range pods {
		pn := slices.DeleteFunc(ri.needsOf(p), func(n need) bool { return n.egress != op.egress })
		all = append(all, pn...)
		meets := func(port *intstr.IntOrString) bool {
			i := slices.IndexFunc(pn, func(n need) bool {
				return n.reach >= op.reach && (n.all || port != nil && samePort(p, n.port, *port))
			})
			if i >= 0 {
				met = append(met, pn[i])
			}
			return i >= 0
		}
		if op.ports == nil {
			covered = meets(nil) && covered
			continue
		}
		for _, port := range op.ports {
			covered = meets(&port) && covered
		}
	}
	if covered {
		return true, met
	}
	return false, all
}

// samePort tells whether a need's port is an opened port: equal, or a container port's name and
// its number.
func samePort(p *corev1.PodTemplate, need, opened intstr.IntOrString) bool {
	return need == opened || resolve(p, need) != 0 && resolve(p, need) == resolve(p, opened)
}

// resolve is a pod port's number: a number, or the number of the container port so named.
func resolve(p *corev1.PodTemplate, port intstr.IntOrString) int32 {
	if port.Type == intstr.Int {
		return port.IntVal
	}
	for _, c := range p.Template.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == port.StrVal {
				return cp.ContainerPort
			}
		}
	}
	return 0
}

// portOf reads a port written as a string (an annotation, an Istio port): a number in 1-65535, else
// a name; false for a number out of range.
func portOf(s string) (intstr.IntOrString, bool) {
	if n, err := strconv.Atoi(s); err == nil {
		return intstr.FromInt32(int32(n)), n > 0 && n <= 65535
	}
	return intstr.FromString(s), s != ""
}

// describeNeeds says, once each, what the roles need.
func describeNeeds(needs []need) string {
	var parts []string
	for _, n := range needs {
		port := "every port"
		if !n.all {
			port = "port " + n.port.String()
		}
		if s := port + " " + n.reach.describe(n.egress) + ": " + n.why; !slices.Contains(parts, s) {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, "; ")
}

// weigh turns the problems whose opening the object's pods' roles need into notes that say why,
// and adds to the others what the roles needed. A policy for a whole namespace is judged only where
// the input's workloads of the namespace may be taken as all of them (ri.complete), and an Istio
// policy of the root namespace, which reaches the pods its selector matches in every namespace,
// only by what its selector's labels say (none for a mesh-wide one).
func (ri *roleIndex) weigh(o Object, problems []problem, opts Options) []problem {
	sel, _ := policySelector(o.Object)
	meshWide := false
	switch o.Object.(type) {
	case *securityv1.AuthorizationPolicy, *securityv1.PeerAuthentication:
		meshWide = o.Object.GetNamespace() == opts.RootNamespace
	}
	if sel == nil {
		if meshWide || !ri.complete(o, opts) {
			return problems
		}
		sel = labels.Everything()
	}
	for i, p := range problems {
		if p.opening == nil || p.severity == SeverityNote {
			continue
		}
		covered, needs := ri.judge(namespaceOf(o.Object), sel, *p.opening)
		if covered && meshWide {
			covered, needs = ri.judge(anyNamespace, sel, *p.opening)
		}
		switch {
		case covered:
			problems[i].severity = SeverityNote
			problems[i].message += "; its role needs it, " + describeNeeds(needs)
		case len(needs) > 0:
			problems[i].message += "; it opens more than its role needs, which is " + describeNeeds(needs)
		}
	}
	return problems
}

// anyNamespace names no namespace of the input: pods judged there have only their labels to say
// what they are for.
const anyNamespace = ""
