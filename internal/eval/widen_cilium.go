package eval

import (
	"cmp"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/internal/cilium"
	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// A foreign CiliumNetworkPolicy widens like a NetworkPolicy: Cilium adds up the allow rules of
// both kinds, so its rules can admit what a graph of either kind refuses. Its deny rules only
// narrow, so only its allow rules name probes (the deny rules still take part in the check).

// ciliumNetworkPolicy asks the connections a foreign CiliumNetworkPolicy's allow rules name. A
// policy Cilium refuses enforces nothing, so it widens nothing.
func (j *judge) ciliumNetworkPolicy(p *cilium.CiliumNetworkPolicy) *Widening {
	pol := semantics.CiliumPolicyOf(p)
	if len(semantics.CiliumRefusals(pol)) > 0 {
		return nil
	}
	var probes []probe
	for rule := range pol.Rules() {
		if rule.NodeSelector != nil {
			continue // selects nodes, which no probe is
		}
		subjects := j.ciliumSelected(pol, rule)
		for _, in := range rule.Ingress {
			sources := j.ciliumPeers(in.FromEndpoints, in.FromCIDR, in.FromCIDRSet, in.FromEntities, nil)
			for _, to := range subjects {
				for _, src := range sources {
					for _, pp := range j.ciliumPorts(in.ToPorts, to) {
						probes = append(probes, pp.probe(src.Endpoint, to, src.namespaces))
					}
				}
			}
		}
		for _, eg := range rule.Egress {
			for _, dst := range j.ciliumDestinations(eg) {
				for _, from := range subjects {
					for _, pp := range j.ciliumPorts(eg.ToPorts, dst.Workload) {
						probes = append(probes, pp.probe(Endpoint{Workload: from}, dst.Workload, dst.namespaces))
					}
				}
			}
		}
	}
	return j.firstOpened(fmt.Sprintf("CiliumNetworkPolicy %s/%s", p.Namespace, p.Name), L4Layers, j.withObject(p), probes)
}

// ciliumSelected lists the namespace's workloads a rule selects (as Cilium labels them), and a
// pod made to match its endpointSelector.
func (j *judge) ciliumSelected(pol semantics.CiliumPolicy, rule semantics.CiliumRule) []*Workload {
	var out []*Workload
	for _, w := range j.local {
		if pol.Selects(rule, j.graph.ciliumEndpoint(w, "", "")) {
			out = append(out, w)
		}
	}
	made, _ := ciliumWitness(j.namespace, rule.EndpointSelector)
	made.Workload.Namespace = j.namespace // a namespaced policy selects its own namespace's pods only
	return append(out, made.Workload)
}

// ciliumPeers lists the endpoints a rule's peers match, then every stranger and the namespace's
// own workloads (what "all" and "cluster" select, and what a rule with ports only admits).
func (j *judge) ciliumPeers(endpoints []metav1.LabelSelector, cidrs []string, cidrSet []cilium.CIDRRule, entities []string, hosts []string) []source {
	var out []source
	for _, sel := range endpoints {
		if s, ok := ciliumWitness(j.namespace, sel); ok {
			out = append(out, s)
		}
	}
	for _, c := range cidrs {
		cidrSet = append(cidrSet, cilium.CIDRRule{Cidr: c})
	}
	for _, c := range cidrSet {
		if c.Cidr == "" {
			continue // a CiliumCIDRGroup: its ranges are not known here
		}
		cidr := c.Cidr
		if !strings.Contains(cidr, "/") { // a bare address
			cidr += map[bool]string{true: "/128", false: "/32"}[strings.Contains(cidr, ":")]
		}
		if ip, ok := addressIn(cidr, c.ExceptCIDRs); ok {
			out = append(out, source{Endpoint: Endpoint{IP: ip}})
		}
	}
	for _, e := range entities {
		switch e {
		case cilium.EntityWorld, "world-ipv4":
			out = append(out, source{Endpoint: Endpoint{IP: outsideAddress}})
		case cilium.EntityKubeAPIServer:
			out = append(out, source{Endpoint: Endpoint{Workload: &Workload{Name: "kube-apiserver", IP: "192.0.2.1", APIServer: true}}})
		}
	}
	for _, h := range hosts {
		out = append(out, source{Endpoint: Endpoint{Workload: &Workload{Name: h, Host: h}}})
	}
	return j.withStrangersAndLocals(out, true)
}

// ciliumDestinations lists what an egress rule's peers match, as ciliumPeers does: an address or a
// host is a workload without a namespace.
func (j *judge) ciliumDestinations(r cilium.EgressRule) []source {
	var hosts []string
	for _, f := range r.ToFQDNs {
		hosts = append(hosts, cmp.Or(f.MatchName, strings.ReplaceAll(f.MatchPattern, "*", "x")))
	}
	var out []source
	for _, s := range j.ciliumPeers(r.ToEndpoints, r.ToCIDR, r.ToCIDRSet, r.ToEntities, hosts) {
		if s.Workload == nil {
			s = source{Endpoint: Endpoint{Workload: &Workload{IP: s.IP}}}
		}
		out = append(out, s)
	}
	return out
}

// ciliumWitness makes a pod that a Cilium selector matches, its keys read as Cilium reads them:
// the pod's namespace, its ServiceAccount, its namespace's labels, or its own labels. A selector
// on reserved labels (no pod) makes none. A pod of another namespace needs that namespace's labels.
func ciliumWitness(namespace string, sel metav1.LabelSelector) (source, bool) {
	ns, sa := namespace, "default"
	pod, nsLabels := map[string]string{}, map[string]string{}
	for k, v := range semantics.LabelsMatching(&sel) {
		key := k
		if i := strings.Index(k, ":"); i >= 0 {
			if k[:i] != "k8s" && k[:i] != "any" {
				return source{}, false
			}
			key = k[i+1:]
		}
		switch {
		case "k8s:"+key == cilium.LabelNamespace:
			ns = v
		case "k8s:"+key == cilium.LabelServiceAccount:
			sa = v
		case strings.HasPrefix("k8s:"+key, cilium.NamespaceLabelPrefix):
			nsLabels[strings.TrimPrefix("k8s:"+key, cilium.NamespaceLabelPrefix)] = v
		default:
			pod[key] = v
		}
	}
	if len(nsLabels) > 0 && ns == namespace {
		// Namespace labels without a namespace: any namespace wearing them.
		ns = cmp.Or(nsLabels[corev1.LabelMetadataName], "namespace"+labelText(nsLabels))
	}
	name := "pod" + labelText(pod)
	if sa != "default" {
		name += "{serviceAccount=" + sa + "}"
	}
	w := &Workload{Namespace: ns, Name: name, Labels: pod, ServiceAccount: sa, Meshed: true}
	if len(nsLabels) == 0 {
		return source{Endpoint: Endpoint{Workload: w}}, true
	}
	nsLabels[corev1.LabelMetadataName] = ns
	return source{Endpoint: Endpoint{Workload: w}, namespaces: map[string]map[string]string{ns: nsLabels}}, true
}

// ciliumPort is a port to probe and the HTTP request to send it (nil: a plain connection).
type ciliumPort struct {
	probePort
	http *HTTP
}

func (p ciliumPort) probe(from Endpoint, to *Workload, namespaces map[string]map[string]string) probe {
	return probe{from: from, to: to, port: p.port, portName: p.name, protocol: p.protocol, http: p.http, namespaces: namespaces}
}

// ciliumPorts lists the ports a rule's toPorts name (a number, a name, a range's first port and
// the graph's ports inside it, every port for 0 or none), each with a request each of the port
// rule's HTTP rules matches.
func (j *judge) ciliumPorts(rules []cilium.PortRule, to *Workload) []ciliumPort {
	if len(rules) == 0 {
		return plainPorts(j.allPorts(to), nil)
	}
	var out []ciliumPort
	for _, r := range rules {
		requests := []*HTTP{nil}
		if r.Rules != nil && len(r.Rules.HTTP) > 0 {
			requests = requests[:0]
			for _, h := range r.Rules.HTTP {
				if req, ok := ciliumRequest(h); ok {
					requests = append(requests, req)
				}
			}
		}
		ports := r.Ports
		if len(ports) == 0 {
			ports = []cilium.PortProtocol{{}}
		}
		for _, pp := range ports {
			for _, req := range requests {
				out = append(out, plainPorts(j.ciliumPortNumbers(pp, to), req)...)
			}
		}
	}
	return out
}

func plainPorts(ports portSet, req *HTTP) []ciliumPort {
	out := make([]ciliumPort, len(ports))
	for i, p := range ports {
		out[i] = ciliumPort{probePort: p, http: req}
	}
	return out
}

// ciliumPortNumbers is what one port of a port rule covers, over its protocol (ANY: TCP).
func (j *judge) ciliumPortNumbers(pp cilium.PortProtocol, to *Workload) portSet {
	proto := corev1.Protocol(strings.ToUpper(pp.Protocol))
	if proto == "" || proto == "ANY" {
		proto = corev1.ProtocolTCP
	}
	n, err := strconv.ParseInt(pp.Port, 10, 32)
	switch {
	case pp.Port != "" && err != nil:
		return portSet{{name: strings.ToLower(pp.Port), protocol: proto}}
	case n == 0:
		var out portSet
		for _, q := range j.allPorts(to) {
			out = append(out, probePort{port: q.port, protocol: proto})
		}
		return out
	}
	out := portSet{{port: int32(n), protocol: proto}}
	for _, g := range j.ports {
		if pp.EndPort > int32(n) && g > int32(n) && g <= pp.EndPort {
			out = append(out, probePort{port: g, protocol: proto})
		}
	}
	return out
}

// ciliumRequest makes an HTTP request an HTTP rule matches: its method and path with their
// regular expressions' wildcards filled in. Rules on headers or hosts are tried with what the
// request can say; none is made when the guesses do not match.
func ciliumRequest(h cilium.PortRuleHTTP) (*HTTP, bool) {
	for _, method := range []string{fillRegex(h.Method), "GET", "POST"} {
		for _, path := range []string{fillRegex(h.Path), "/", "/x"} {
			req := &HTTP{Method: cmp.Or(method, "GET"), Path: cmp.Or(path, "/"), Host: cmp.Or(fillRegex(h.Host), "x")}
			if ok, _ := semantics.CiliumHTTPMatches(h, req); ok {
				return req, true
			}
		}
	}
	return nil, false
}

var (
	regexOptional = regexp.MustCompile(`\([^()]*\)\?`)
	regexAny      = regexp.MustCompile(`\.[*+]|\[[^\]]*\][*+]?`)
)

// fillRegex turns a regular expression into a string it most likely matches: optional groups
// dropped, wildcards and classes made "x", anchors and escapes removed.
func fillRegex(expr string) string {
	s := regexOptional.ReplaceAllString(expr, "")
	s = regexAny.ReplaceAllString(s, "x")
	s = strings.NewReplacer("^", "", "$", "", `\`, "").Replace(s)
	return s
}
