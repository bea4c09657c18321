// Package lint checks ServiceGraphs and hand-written NetworkPolicies, CiliumNetworkPolicies and
// CiliumClusterwideNetworkPolicies, Istio AuthorizationPolicies and PeerAuthentications for
// security and correctness problems. It is pure: it takes decoded
// objects with the place they were read from and returns findings in a deterministic order; the
// caller reads files and prints reports.
//
// Each rule is a small named check over one object (a chain per kind, as in cert-manager's
// certificate policies); the rules that need more than one object (NP005 and CNP009, default-deny;
// CNP008, toFQDNs and DNS rules; those that read policies against Services and workloads) run
// over the whole input.
package lint

import (
	"cmp"
	"reflect"
	"slices"
	"strings"

	"github.com/servicegraph/servicegraph-operator/internal/object"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/cilium"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
)

// AnnotationIgnore on an object lists rule IDs (separated by commas or spaces) not to report for
// it: for a deliberate exception, such as a public endpoint, that a reviewer has accepted.
const AnnotationIgnore = "policy.servicegraph.io/lint-ignore"

// Object is one manifest object and where it was read.
type Object struct {
	// File names the file as the user gave it.
	File string
	// Line is the 1-based line where the object's YAML document starts.
	Line int
	// Object is a *v1alpha1.ServiceGraph, *networkingv1.NetworkPolicy,
	// *cilium.CiliumNetworkPolicy, *cilium.CiliumClusterwideNetworkPolicy,
	// *securityv1.AuthorizationPolicy or *securityv1.PeerAuthentication (Istio's v1beta1 manifests
	// decode into the v1 types: the spec is the same), or a *corev1.Service, which the graphs of its
	// namespace are checked against, or a *corev1.PodTemplate for a workload (Pod, Deployment, ...;
	// its TypeMeta is the workload's) whose Template holds its pods' labels, annotations and
	// container ports, which policies' selectors and ports are checked against, or an
	// *unstructured.Unstructured that says what pods are for (a webhook configuration, APIService,
	// CRD, ServiceMonitor, PodMonitor, Ingress or Gateway: see roles.go).
	Object object.Object
}

// Finding is one problem in one object.
type Finding struct {
	Rule      string   `json:"rule"`
	Severity  Severity `json:"severity"`
	File      string   `json:"file"`
	Line      int      `json:"line"`
	Kind      string   `json:"kind"`
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	// Message says what is wrong, on one line.
	Message string `json:"message"`
	// Hint says how to fix it, on one line.
	Hint string `json:"hint"`
}

// Options are the facts about the cluster the manifests do not say.
type Options struct {
	// RootNamespace is Istio's root namespace, where a policy without a selector applies to the
	// whole mesh.
	RootNamespace string
	// Workloads says the input holds every workload of the namespaces it has policies for, so a
	// policy that selects none of them applies to nothing (WL001), wherever they were read from.
	Workloads bool
	// services are the input's Services by namespace, set by Lint: they tell which protocol Istio
	// sees on a port.
	services map[string][]compiler.KubeService
	// ambient are the namespaces of the input labelled istio.io/dataplane-mode=ambient, set by Lint.
	ambient map[string]bool
}

// DefaultOptions are Istio's defaults.
func DefaultOptions() Options {
	return Options{RootNamespace: compiler.DefaultIstiodNS}
}

// problem is what a check finds in one object; Lint adds where it is.
type problem struct {
	rule    *Rule
	message string
	// severity, when set, is the finding's instead of the rule's.
	severity Severity
	// opening is what the problem opens, when its pods' roles may need it (roles.go).
	opening *opening
}

// check is a named check of one kind of object.
type check[T any] func(obj T, opts Options) []problem

// runChecks runs a kind's chain of checks in order.
func runChecks[T any](checks []check[T], obj T, opts Options) []problem {
	var out []problem
	for _, c := range checks {
		out = append(out, c(obj, opts)...)
	}
	return out
}

// Lint checks every object, then every namespace, and returns the findings sorted by file, line,
// rule and object.
func Lint(objs []Object, opts Options) []Finding {
	var out []Finding
	opts.services = servicesByNamespace(objs)
	opts.ambient = ambientNamespaces(objs)
	made := madeByInput(objs)
	roles := newRoleIndex(objs)
	for _, o := range objs {
		if made[o] {
			continue // its ServiceGraph is checked instead
		}
		problems := roles.weigh(o, checkObject(o.Object, opts), opts)
		if generated(o.Object) {
			problems = append(problems, ruleClaimsGenerated.problemf("labelled %s=%s, but no ServiceGraph of the input generates this %s: linted as written by hand",
				compiler.LabelManagedBy, compiler.ManagedByValue, kindOf(o.Object)))
		}
		_, unknown := ignoredRules(o.Object.GetAnnotations()[AnnotationIgnore])
		out = append(out, locate(o, append(problems, unknown...))...)
	}
	out = append(out, duplicateFindings(objs)...)
	out = append(out, defaultDenyFindings(objs)...)
	out = append(out, fqdnWithoutDNSFindings(objs)...)
	out = append(out, protocolMismatchFindings(objs)...)
	out = append(out, graphsPerNamespaceFindings(objs)...)
	out = append(out, customProviderFindings(objs, opts)...)
	out = append(out, selectsNoWorkloadFindings(objs, opts)...)
	out = append(out, servicePortFindings(objs, roles)...)
	out = append(out, sameNamespacePeerFindings(objs, roles, opts)...)
	out = append(out, clusterIPFindings(objs, roles)...)
	out = append(out, hostNetworkFindings(objs, roles, opts)...)
	out = append(out, wideningFindings(objs, made)...)
	Sort(out)
	return out
}

// Sort orders findings by file, line, rule, object and message: the order of every report.
func Sort(findings []Finding) {
	slices.SortFunc(findings, func(a, b Finding) int {
		return cmp.Or(strings.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), strings.Compare(a.Rule, b.Rule),
			strings.Compare(a.Kind, b.Kind), strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name),
			strings.Compare(a.Message, b.Message))
	})
}

// checkObject runs the chain for the object's kind.
func checkObject(obj object.Object, opts Options) []problem {
	switch o := obj.(type) {
	case *v1alpha1.ServiceGraph:
		return checkGraph(o, opts)
	case *networkingv1.NetworkPolicy:
		return runChecks(networkPolicyChecks, o, opts)
	case *securityv1.AuthorizationPolicy:
		return runChecks(authorizationPolicyChecks, o, opts)
	case *securityv1.PeerAuthentication:
		return runChecks(peerAuthenticationChecks, o, opts)
	case *cilium.CiliumNetworkPolicy, *cilium.CiliumClusterwideNetworkPolicy:
		p, _ := asCiliumPolicy(o)
		return runChecks(ciliumChecks, p, opts)
	}
	return nil
}

func generated(obj object.Object) bool {
	return obj.GetLabels()[compiler.LabelManagedBy] == compiler.ManagedByValue
}

// locate turns an object's problems into findings, less those its annotation ignores.
func locate(o Object, problems []problem) []Finding {
	ignored, _ := ignoredRules(o.Object.GetAnnotations()[AnnotationIgnore])
	var out []Finding
	for _, p := range problems {
		if slices.Contains(ignored, p.rule.ID) {
			continue
		}
		out = append(out, Finding{
			Rule:      p.rule.ID,
			Severity:  cmp.Or(p.severity, p.rule.Severity),
			File:      o.File,
			Line:      o.Line,
			Kind:      kindOf(o.Object),
			Namespace: o.Object.GetNamespace(),
			Name:      o.Object.GetName(),
			Message:   p.message,
			Hint:      p.rule.Hint,
		})
	}
	return out
}

// kindOf names the object's kind: its TypeMeta's when set (a workload read as its pod template
// keeps its own kind), else the Go type's name, which is the kind for every type the linter
// checks and is set on objects built in code too.
func kindOf(obj object.Object) string {
	if kind := obj.GetObjectKind().GroupVersionKind().Kind; kind != "" {
		return kind
	}
	return reflect.TypeOf(obj).Elem().Name()
}

// Count returns how many findings are at or above a severity.
func Count(findings []Finding, at Severity) int {
	n := 0
	for _, f := range findings {
		if f.Severity.AtLeast(at) {
			n++
		}
	}
	return n
}
