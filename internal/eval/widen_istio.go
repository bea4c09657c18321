package eval

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// istioSelector is an Istio workload selector as a label selector; nil selects every workload.
func istioSelector(sel *typev1beta1.WorkloadSelector) *metav1.LabelSelector {
	if semantics.NamespaceWide(sel) {
		return nil
	}
	return &metav1.LabelSelector{MatchLabels: sel.GetMatchLabels()}
}

// peerAuthentication asks whether a foreign PeerAuthentication lets a caller without identity
// through where the graph's mode refuses it: on the workloads it selects, on every port and on
// the ports it names.
func (j *judge) peerAuthentication(pa *securityv1.PeerAuthentication) *Widening {
	unmeshed := []Endpoint{{Workload: &Workload{Namespace: strangerNamespace, Name: "any-pod-without-sidecar"}}, {IP: outsideAddress}}
	var probes []probe
	for _, to := range j.selected(istioSelector(pa.Spec.GetSelector())) {
		ports := j.allPorts(to)
		for port := range pa.Spec.GetPortLevelMtls() {
			ports = append(ports, probePort{port: int32(port), protocol: corev1.ProtocolTCP})
		}
		slices.SortFunc(ports, func(a, b probePort) int { return cmp.Compare(a.port, b.port) })
		for _, from := range unmeshed {
			for _, p := range ports {
				probes = append(probes, probe{from: from, to: to, port: p.port, protocol: p.protocol})
			}
		}
	}
	return j.firstOpened(fmt.Sprintf("PeerAuthentication %s/%s", pa.Namespace, pa.Name), MTLSLayers, j.withObject(pa), probes)
}

// authorizationPolicy asks the connections a foreign ALLOW policy's rules admit: from callers
// made to match each rule's sources however they are spelled (principals, serviceAccounts,
// namespaces, trust domains, addresses), to the workloads it selects, on the ports, paths,
// methods and hosts it names. DENY, AUDIT and CUSTOM never admit more, dry runs enforce nothing,
// and targetRef policies apply to gateways and waypoints.
func (j *judge) authorizationPolicy(ap *securityv1.AuthorizationPolicy) *Widening {
	if ap.Spec.GetAction() != securityv1beta1.AuthorizationPolicy_ALLOW || semantics.TargetsRefs(ap) || !semantics.Enforced(ap) {
		return nil
	}
	var probes []probe
	for _, r := range ap.Spec.GetRules() {
		rule := semantics.ReadRule(r, ap.Namespace)
		callers := j.istioCallers(rule)
		for _, to := range j.selected(istioSelector(ap.Spec.GetSelector())) {
			for _, op := range j.istioOperations(rule, to) {
				for _, src := range callers {
					probes = append(probes, probe{from: src.Endpoint, to: to, port: op.port, protocol: corev1.ProtocolTCP, http: op.http, namespaces: src.namespaces})
				}
			}
		}
	}
	return j.firstOpened(fmt.Sprintf("AuthorizationPolicy %s/%s", ap.Namespace, ap.Name), AuthorizationLayers, j.withObject(ap), probes)
}

// identity is a made-up caller's mesh identity.
type identity struct{ trustDomain, namespace, serviceAccount string }

// istioCallers lists callers each of the rule's source alternatives admits: every combination of
// the identities and addresses its values name, kept when the alternative's identity and address
// clauses match it; strangers when an alternative names no caller; then the namespace's own
// workloads.
func (j *judge) istioCallers(rule semantics.Rule) []source {
	var out []source
	namesNone := false
	for _, alt := range rule.Callers {
		found := j.callersOf(alt)
		namesNone = namesNone || len(found) == 0
		out = append(out, found...)
	}
	return j.withStrangersAndLocals(out, namesNone)
}

// callersOf makes the callers one source alternative admits.
func (j *judge) callersOf(alt []semantics.Clause) []source {
	td := j.graph.trustDomain()
	var ids []identity
	var ips []string
	for _, c := range alt {
		for _, v := range c.Values {
			switch c.Attribute {
			case semantics.AttrPrincipal:
				ids = append(ids, principalWitnesses(v, td)...)
			case semantics.AttrServiceAccount:
				ns, sa := semantics.ServiceAccountNamespace(c.PolicyNamespace, v)
				ids = append(ids, identity{td, ns, sa})
			case semantics.AttrNamespace:
				ids = append(ids, identity{td, witnessText(v, strangerNamespace), "default"})
			case semantics.AttrTrustDomain:
				ids = append(ids, identity{witnessText(v, td), strangerNamespace, "default"})
			case semantics.AttrSourceIP, semantics.AttrRemoteIP:
				if p, err := semantics.IstioCIDR(v); err == nil {
					if ip, ok := addressIn(p.Masked().String(), nil); ok {
						ips = append(ips, ip)
					}
				}
			}
		}
	}
	ids = combine(ids)
	var out []source
	for _, id := range ids {
		for _, ip := range append([]string{""}, ips...) {
			name := "pod{serviceAccount=" + id.serviceAccount + "}"
			if id.serviceAccount == "default" {
				name = "any-pod"
			}
			w := &Workload{Namespace: id.namespace, Name: name, ServiceAccount: id.serviceAccount, Meshed: true, IP: ip}
			if id.trustDomain != td {
				w.TrustDomain = id.trustDomain
			}
			out = append(out, source{Endpoint: Endpoint{Workload: w, IP: ip}})
		}
	}
	for _, ip := range ips {
		out = append(out, source{Endpoint: Endpoint{IP: ip}})
	}
	return slices.DeleteFunc(out, func(s source) bool { return !j.callerMatches(alt, s.Endpoint) })
}

// combine adds to the identities every mix of their trust domains, namespaces and service
// accounts: a source may name each in a field of its own, and all must match.
func combine(ids []identity) []identity {
	var tds, nss, sas []string
	for _, id := range ids {
		tds, nss, sas = append(tds, id.trustDomain), append(nss, id.namespace), append(sas, id.serviceAccount)
	}
	out := slices.Clone(ids)
	for _, td := range compact(tds) {
		for _, ns := range compact(nss) {
			for _, sa := range compact(sas) {
				if id := (identity{td, ns, sa}); !slices.Contains(out, id) {
					out = append(out, id)
				}
			}
		}
	}
	return out
}

func compact(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// callerMatches tells whether the identity and address clauses of a source alternative admit a
// caller (the request's own clauses are for its operations).
func (j *judge) callerMatches(alt []semantics.Clause, e Endpoint) bool {
	req := (&Cluster{TrustDomain: j.graph.TrustDomain}).attributes(Request{From: e, To: &Workload{}}, e.Workload != nil)
	for _, c := range alt {
		if c.Attribute.HTTPOnly {
			continue
		}
		if ok, known := c.Matches(req); !ok || !known {
			return false
		}
	}
	return true
}

// principalWitnesses makes principals a pattern matches: itself, or, with a wildcard, the
// pattern completed into TRUST_DOMAIN/ns/NAMESPACE/sa/NAME in each way it can be.
func principalWitnesses(pattern, td string) []identity {
	var candidates []string
	switch {
	case pattern == "*":
		candidates = []string{semantics.Principal(td, strangerNamespace, "default")}
	case strings.HasPrefix(pattern, "*"):
		for _, head := range []string{td, td + "/", td + "/ns", td + "/ns/", td + "/ns/x", td + "/ns/x/", td + "/ns/x/sa", td + "/ns/x/sa/", td + "/ns/x/sa/x"} {
			candidates = append(candidates, head+pattern[1:])
		}
	case strings.HasSuffix(pattern, "*"):
		for _, tail := range []string{"x", "/x", "x/sa/x", "/sa/x", "sa/x", "ns/x/sa/x", "/ns/x/sa/x", "x/ns/x/sa/x"} {
			candidates = append(candidates, strings.TrimSuffix(pattern, "*")+tail)
		}
	default:
		candidates = []string{pattern}
	}
	var out []identity
	for _, p := range candidates {
		if t, ns, sa, ok := semantics.ParsePrincipal(p); ok && semantics.PatternMatches(pattern, p) {
			out = append(out, identity{t, ns, sa})
		}
	}
	return out
}

// witnessText fills a pattern's wildcards; "*" alone becomes the given value.
func witnessText(pattern, whole string) string {
	if pattern == "*" {
		return whole
	}
	return strings.ReplaceAll(pattern, "*", "x")
}

// operation is a port and an HTTP request (nil for a TCP connection) to probe.
type operation struct {
	port int32
	http *HTTP
}

// istioOperations lists what each operation alternative of a rule admits on a workload: its ports
// (or every port), with an HTTP request made to match its HTTP fields and the rule's HTTP-only
// caller conditions when it has any.
func (j *judge) istioOperations(rule semantics.Rule, to *Workload) []operation {
	var out []operation
	for _, alt := range rule.Operations {
		var ports []int32
		for _, c := range alt {
			if c.Attribute == semantics.AttrPort {
				for _, v := range c.Values {
					if p, err := semantics.IstioPort(v); err == nil {
						ports = append(ports, p)
					}
				}
			}
		}
		if len(ports) == 0 {
			for _, p := range j.allPorts(to) {
				ports = append(ports, p.port)
			}
		}
		http := requestOf(rule, alt)
		for _, p := range ports {
			out = append(out, operation{port: p, http: http})
		}
	}
	return out
}

// requestOf makes an HTTP request that an operation alternative's HTTP fields and the rule's
// HTTP-only caller conditions match, or nil when neither names any.
func requestOf(rule semantics.Rule, alt []semantics.Clause) *HTTP {
	clauses := slices.Clone(alt)
	for _, callers := range rule.Callers {
		clauses = append(clauses, callers...)
	}
	if !slices.ContainsFunc(clauses, func(c semantics.Clause) bool { return c.Attribute.HTTPOnly }) {
		return nil
	}
	h := &HTTP{Path: "/", Method: "GET", Host: "x"}
	for _, c := range clauses {
		if len(c.Values) == 0 {
			continue
		}
		v := c.Values[0]
		switch c.Attribute {
		case semantics.AttrPath:
			h.Path = PathExample(v)
		case semantics.AttrMethod:
			h.Method = witnessText(v, "GET")
		case semantics.AttrHost:
			h.Host = witnessText(v, "x")
		case semantics.AttrHeader:
			name := strings.Trim(c.Name, "[]")
			h.Headers = map[string]string{name: witnessText(v, "x")}
		case semantics.AttrRequestPrincipal:
			iss, sub, _ := strings.Cut(witnessText(v, "x/x"), "/")
			h.JWT = &JWT{Issuer: iss, Subject: cmp.Or(sub, "x")}
		}
	}
	return h
}

// PathExample makes a path a path pattern or template matches.
func PathExample(p string) string {
	p = strings.NewReplacer("{**}", "x", "{*}", "x").Replace(p)
	switch {
	case p == "*":
		return "/x"
	case strings.HasPrefix(p, "*"):
		return "/x" + p[1:]
	case strings.HasSuffix(p, "*"):
		return strings.TrimSuffix(p, "*") + "x"
	}
	return p
}

// JWT is a request's verified token.
type JWT = semantics.JWT
