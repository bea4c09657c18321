package eval

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/servicegraph/servicegraph-operator/internal/cilium"
	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// CiliumNetworkPolicies. Cilium enforces them together with Kubernetes NetworkPolicies, which it
// reads into the same rules: a pod is isolated in a direction when a policy of either kind
// isolates it, and a connection is allowed when a rule of either kind admits it. A CNP rule may
// narrow what it admits to the HTTP requests its HTTP rules match (Cilium's proxy checks each), or
// to the DNS lookups its DNS rules match; a rule of either kind that admits the same connection
// without such rules lets everything through. The policies' own semantics are
// semantics.Cilium*.

// ciliumAdmit is a rule that admits a connection, and what it lets through.
type ciliumAdmit struct {
	by        string
	admission semantics.CiliumAdmission
}

// ciliumVerdict is what the Cilium policies do with one direction of a connection.
type ciliumVerdict struct {
	// selecting are the policies that put the pod in default deny in that direction.
	selecting []string
	// denied is the step when a deny rule refuses the connection: it wins over every allow rule.
	denied *Step
	// decided is the step when an allow rule admits the connection (or admits it and its HTTP
	// rules refuse the request); nil when none admits it.
	decided *Step
	// notes say what a denial should explain: policies Cilium refuses, names it cannot see, peers
	// a check cannot resolve.
	notes []string
}

// ciliumPolicies are the cluster's CiliumNetworkPolicies and CiliumClusterwideNetworkPolicies.
func (c *Cluster) ciliumPolicies() []semantics.CiliumPolicy {
	out := make([]semantics.CiliumPolicy, 0, len(c.CiliumNetworkPolicies)+len(c.CiliumClusterwideNetworkPolicies))
	for _, p := range c.CiliumNetworkPolicies {
		out = append(out, semantics.CiliumPolicyOf(p))
	}
	for _, p := range c.CiliumClusterwideNetworkPolicies {
		out = append(out, semantics.CiliumClusterwidePolicyOf(p))
	}
	return out
}

// cilium decides one direction of a connection with the Cilium policies: the subject's (the
// source's for egress, the destination's for ingress) and the peer, as the NetworkPolicy step
// sees them.
func (c *Cluster) cilium(r Request, dir Layer, subject *Workload, peer Endpoint) ciliumVerdict {
	var out ciliumVerdict
	policies := c.ciliumPolicies()
	if len(policies) == 0 {
		return out
	}
	pod := c.ciliumEndpoint(subject, "", "")
	other := c.ciliumPeer(subject, peer, dir, &out.notes)
	port := semantics.CiliumPort{Number: r.Port, Name: r.PortName, Protocol: r.Protocol}
	var admits []ciliumAdmit
	var optedOut []string
	for _, p := range policies {
		rules := c.enforced(p, pod, semantics.Direction(dir), &out.notes)
		isolates := false
		for _, rule := range rules {
			isolates = isolates || semantics.CiliumDefaultDeny(rule.Rule, semantics.Direction(dir))
			if by, denied := ciliumDenies(p, rule, dir, other, port); denied {
				out.denied = &Step{Layer: dir, Allowed: false, Applies: true, By: by, Detail: "a deny rule wins over every allow rule"}
				return out
			}
			admits = append(admits, ciliumAdmits(p, rule, dir, other, port)...)
		}
		switch {
		case isolates:
			out.selecting = append(out.selecting, ciliumShortName(p))
		case len(rules) > 0:
			optedOut = append(optedOut, fmt.Sprintf("%s selects %s with enableDefaultDeny.%s false", p, subject, dir))
		}
	}
	slices.Sort(out.selecting)
	if len(out.selecting) == 0 {
		out.notes = append(out.notes, optedOut...)
	}
	out.decided = ciliumDecide(admits, r.HTTP, dir)
	return out
}

// enforced are the rules of a policy that select a pod and have rules for a direction; none when
// Cilium refuses the policy (noted: it enforces nothing). What of them a check cannot see is
// noted.
func (c *Cluster) enforced(p semantics.CiliumPolicy, pod semantics.CiliumEndpoint, dir semantics.Direction, notes *[]string) []semantics.CiliumRule {
	var out []semantics.CiliumRule
	for r := range p.Rules() {
		if p.Selects(r, pod) && semantics.CiliumHasRules(r.Rule, dir) {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil
	}
	if refused := semantics.CiliumRefusals(p); len(refused) > 0 {
		*notes = append(*notes, fmt.Sprintf("%s enforces nothing: Cilium refuses it (%s)", p, refused[0]))
		return nil
	}
	for _, n := range semantics.CiliumUnevaluated(p) {
		if strings.Contains(n, "."+string(dir)) {
			*notes = append(*notes, fmt.Sprintf("%s %s", p, n))
		}
	}
	return out
}

// ciliumDenies finds a deny rule of a policy's rule that refuses the connection.
func ciliumDenies(p semantics.CiliumPolicy, rule semantics.CiliumRule, dir Layer, peer semantics.CiliumEndpoint, port semantics.CiliumPort) (string, bool) {
	if dir == Ingress {
		for i, x := range rule.IngressDeny {
			if semantics.CiliumIngressDenies(p.Namespace, x, peer, port) {
				return fmt.Sprintf("%s %s.ingressDeny[%d]", p, rule.Where(), i), true
			}
		}
		return "", false
	}
	for i, x := range rule.EgressDeny {
		if semantics.CiliumEgressDenies(p.Namespace, x, peer, port) {
			return fmt.Sprintf("%s %s.egressDeny[%d]", p, rule.Where(), i), true
		}
	}
	return "", false
}

// ciliumAdmits are the allow rules of a policy's rule that admit the connection.
func ciliumAdmits(p semantics.CiliumPolicy, rule semantics.CiliumRule, dir Layer, peer semantics.CiliumEndpoint, port semantics.CiliumPort) []ciliumAdmit {
	var out []ciliumAdmit
	if dir == Ingress {
		for i, x := range rule.Ingress {
			if a, ok := semantics.CiliumIngressAdmits(p.Namespace, x, peer, port); ok {
				out = append(out, ciliumAdmit{fmt.Sprintf("%s %s.ingress[%d]", p, rule.Where(), i), a})
			}
		}
		return out
	}
	for i, x := range rule.Egress {
		if a, ok := semantics.CiliumEgressAdmits(p.Namespace, x, peer, port); ok {
			out = append(out, ciliumAdmit{fmt.Sprintf("%s %s.egress[%d]", p, rule.Where(), i), a})
		}
	}
	return out
}

// ciliumShortName names a policy among those selecting a pod: a namespaced one by its name (the
// pod's namespace is its), a clusterwide one as such.
func ciliumShortName(p semantics.CiliumPolicy) string {
	if p.Namespace == "" {
		return "clusterwide " + p.Name
	}
	return p.Name
}

// ciliumEndpoint is a workload as Cilium labels it: a pod, the API server, or an address outside
// the cluster (ip when the workload has none) with the name it was looked up by.
func (c *Cluster) ciliumEndpoint(w *Workload, ip, host string) semantics.CiliumEndpoint {
	switch {
	case w == nil:
		return semantics.CiliumWorld(ip, "")
	case w.APIServer:
		return semantics.CiliumAPIServer(cmp.Or(w.IP, ip))
	case w.Namespace == "":
		return semantics.CiliumWorld(cmp.Or(w.IP, ip), host)
	}
	return semantics.CiliumPod(w.Namespace, w.ServiceAccount, w.Labels, c.Namespaces[w.Namespace])
}

// ciliumPeer is the other end of a direction. A destination outside the cluster carries its name
// only when Cilium's DNS proxy saw the source look it up: toFQDNs rules match the addresses Cilium
// learnt from such lookups, which a DNS rule in the source's egress policies sends through the
// proxy.
func (c *Cluster) ciliumPeer(subject *Workload, peer Endpoint, dir Layer, notes *[]string) semantics.CiliumEndpoint {
	host := ""
	if w := peer.Workload; dir == Egress && w != nil && w.Namespace == "" && w.Host != "" {
		if c.lookedUp(subject, w.Host) {
			host = w.Host
		} else {
			*notes = append(*notes, fmt.Sprintf("toFQDNs cannot match %s: no DNS rule of the CiliumNetworkPolicies selecting %s lets Cilium's DNS proxy see it looked up", w.Host, subject))
		}
	}
	return c.ciliumEndpoint(peer.Workload, peer.IP, host)
}

// lookedUp tells whether a DNS rule of an egress policy selecting the pod matches the name.
func (c *Cluster) lookedUp(subject *Workload, name string) bool {
	var ignored []string
	pod := c.ciliumEndpoint(subject, "", "")
	for _, p := range c.ciliumPolicies() {
		for _, rule := range c.enforced(p, pod, semantics.Egress, &ignored) {
			for _, r := range rule.Egress {
				for _, pr := range r.ToPorts {
					if pr.Rules != nil && slices.ContainsFunc(pr.Rules.DNS, func(d cilium.PortRuleDNS) bool { return semantics.CiliumDNSMatches(d, name) }) {
						return true
					}
				}
			}
		}
	}
	return false
}

// ciliumDecide is the step of the admitting rules: allowed by the first that lets everything
// through; else, with HTTP rules, by the first whose HTTP rules match the request (allowed at
// layer 4 when the request does not tell what they need, denied when none matches); with DNS rules
// only, allowed at layer 4. What the admitting rule requires and a check cannot see is noted.
func ciliumDecide(admits []ciliumAdmit, req *HTTP, dir Layer) *Step {
	if len(admits) == 0 {
		return nil
	}
	allow := func(a ciliumAdmit, detail string) *Step {
		if len(a.admission.Assumed) > 0 {
			detail = strings.TrimPrefix(detail+"; assumed: "+strings.Join(a.admission.Assumed, "; "), "; ")
		}
		return &Step{Layer: dir, Allowed: true, Applies: true, By: a.by, Detail: detail}
	}
	if i := slices.IndexFunc(admits, func(a ciliumAdmit) bool { return !a.admission.Restricted() }); i >= 0 {
		return allow(admits[i], "")
	}
	var http []ciliumAdmit
	var rules []cilium.PortRuleHTTP
	for _, a := range admits {
		if a.admission.HTTP != nil {
			http = append(http, a)
			rules = append(rules, a.admission.HTTP...)
		}
	}
	if len(http) == 0 {
		var names []string
		for _, d := range admits[0].admission.DNS {
			names = append(names, cmp.Or(d.MatchName, d.MatchPattern))
		}
		return allow(admits[0], "DNS rules: Cilium's DNS proxy answers lookups of "+strings.Join(names, ", ")+" only")
	}
	layer4 := func(why string) *Step {
		return allow(http[0], fmt.Sprintf("admitted at layer 4; Cilium's proxy admits only HTTP requests matching %s (%s)", describeHTTP(rules), why))
	}
	if req == nil {
		return layer4("the connection carries no HTTP request to check")
	}
	var unknown string
	for _, a := range http {
		for _, h := range a.admission.HTTP {
			ok, why := semantics.CiliumHTTPMatches(h, req)
			if ok {
				return allow(a, "HTTP rule "+describeHTTP([]cilium.PortRuleHTTP{h})+" matches")
			}
			unknown = cmp.Or(unknown, why)
		}
	}
	if unknown != "" {
		return layer4(unknown)
	}
	return &Step{Layer: dir, Allowed: false, Applies: true, By: "no HTTP rule matches",
		Detail: fmt.Sprintf("%s admits the connection; Cilium's proxy refuses %s %s: HTTP rules %s", http[0].by, req.Method, req.Path, describeHTTP(rules))}
}

// describeHTTP writes HTTP rules as METHOD PATH, their regular expressions ("any" for none), with
// the host when one is required.
func describeHTTP(rules []cilium.PortRuleHTTP) string {
	out := make([]string, len(rules))
	for i, h := range rules {
		out[i] = cmp.Or(h.Method, "any method") + " " + cmp.Or(h.Path, "any path")
		if h.Host != "" {
			out[i] += " host " + h.Host
		}
		if h.Headers != nil || h.HeaderMatches != nil {
			out[i] += " with headers"
		}
	}
	return strings.Join(slices.Compact(out), ", ")
}
