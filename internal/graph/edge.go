// Package graph turns a ServiceGraph into a validated, normalised model: its services with the
// compiler's defaults applied and its edges, whether written in the compact form of spec.edges
// ("web->api:8080") or the structured form of spec.connections, as one Edge type. It is pure: no
// client, no clock, deterministic output.
package graph

import (
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
)

// Edge is one allowed connection from a service to a service.
type Edge struct {
	// FromNamespace is the calling service's namespace: as written ("" when the edge names none);
	// once the edge belongs to a Graph, set for a caller in another namespace only.
	FromNamespace string
	// From names the calling service.
	From string
	// ToNamespace is the called service's namespace: as written in a parsed edge ("" when the edge
	// names none), always set once the edge belongs to a Graph.
	ToNamespace string
	// To names the called service.
	To string
	// Ports are the destination pod's ports, in the order written (sorted once in a Graph).
	Ports []Port
	// Paths and Methods restrict HTTP requests; empty means any.
	Paths   []string
	Methods []string
}

// Port is one destination port and what it speaks.
type Port struct {
	// Port is a number (1-65535) or a container port name.
	Port intstr.IntOrString
	// Protocol is empty in a parsed edge; a Graph fills in the default (TCP, or HTTP when the edge
	// has paths or methods).
	Protocol v1alpha1.Protocol
}

// L4 is the protocol a NetworkPolicy sees: HTTP and GRPC run over TCP.
func (p Port) L4() corev1.Protocol {
	switch p.Protocol {
	case v1alpha1.ProtocolUDP:
		return corev1.ProtocolUDP
	case v1alpha1.ProtocolSCTP:
		return corev1.ProtocolSCTP
	default:
		return corev1.ProtocolTCP
	}
}

// Meshed reports whether Istio's sidecar intercepts the port's traffic; it does not intercept UDP
// or SCTP, so those ports get NetworkPolicy rules only.
func (p Port) Meshed() bool {
	return p.L4() == corev1.ProtocolTCP
}

// HTTP reports whether Istio may match paths and methods on the port.
func (p Port) HTTP() bool {
	return p.Protocol == v1alpha1.ProtocolHTTP || p.Protocol == v1alpha1.ProtocolGRPC
}

// Named reports whether the port is a container port name rather than a number.
func (p Port) Named() bool {
	return p.Port.Type == intstr.String
}

// defaultProtocol is the protocol of a port the edge leaves unspecified: HTTP fields imply HTTP.
func (e *Edge) defaultProtocol() v1alpha1.Protocol {
	if len(e.Paths) > 0 || len(e.Methods) > 0 {
		return v1alpha1.ProtocolHTTP
	}
	return v1alpha1.ProtocolTCP
}

// Compact reports whether String renders the edge in the compact grammar that ParseEdge reads:
// at most one path, no methods, and only default protocols.
func (e *Edge) Compact() bool {
	if len(e.Paths) > 1 || len(e.Methods) > 0 {
		return false
	}
	def := e.defaultProtocol()
	for _, p := range e.Ports {
		if p.Protocol != "" && p.Protocol != def {
			return false
		}
	}
	return true
}

// String renders the edge as "[NS/]FROM->[NS/]TO:PORT[,PORT...][/PATH]" when it is Compact, so that
// ParseEdge reads it back to the same edge. Other edges get the same shape with protocols in
// parentheses and methods and paths in brackets, for messages only:
// "dns->api:53(UDP)" or "web->api:8080(HTTP) [GET,POST /a,/b*]".
func (e *Edge) String() string {
	var b strings.Builder
	if e.FromNamespace != "" {
		b.WriteString(e.FromNamespace)
		b.WriteByte('/')
	}
	b.WriteString(e.From)
	b.WriteString("->")
	if e.ToNamespace != "" {
		b.WriteString(e.ToNamespace)
		b.WriteByte('/')
	}
	b.WriteString(e.To)
	b.WriteByte(':')
	b.WriteString(e.Target())
	return b.String()
}

// Target renders what the edge lets its caller reach on the callee, as String does after the
// colon: "8080/data", or "8080(HTTP) [GET /orders*]".
func (e *Edge) Target() string {
	var b strings.Builder
	compact := e.Compact()
	for i, p := range e.Ports {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p.Port.String())
		if !compact && p.Protocol != "" {
			b.WriteString("(" + string(p.Protocol) + ")")
		}
	}
	switch {
	case compact && len(e.Paths) == 1:
		b.WriteString(e.Paths[0])
	case !compact && (len(e.Methods) > 0 || len(e.Paths) > 0):
		b.WriteString(" [")
		b.WriteString(strings.Join(e.Methods, ","))
		if len(e.Methods) > 0 && len(e.Paths) > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strings.Join(e.Paths, ","))
		b.WriteByte(']')
	}
	return b.String()
}

// key identifies an edge up to the order of its ports, paths and methods: two edges with the same
// key are duplicates. The edge must be normalised (sorted, namespace and protocols resolved).
func (e *Edge) key() string {
	b := make([]byte, 0, 64)
	b = append(b, e.From...)
	b = append(b, ' ')
	b = append(b, e.ToNamespace...)
	b = append(b, '/')
	b = append(b, e.To...)
	for _, p := range e.Ports {
		b = append(b, ' ')
		if p.Named() {
			b = append(b, p.Port.StrVal...)
		} else { // zero-padded so that keys sort numerically; a name has a letter, a number none
			n := p.Port.IntVal
			b = append(b, byte('0'+n/10000), byte('0'+n/1000%10), byte('0'+n/100%10), byte('0'+n/10%10), byte('0'+n%10))
		}
		b = append(b, '/')
		b = append(b, p.Protocol...)
	}
	// NUL cannot occur in a name, port, method or path, so the key is unambiguous.
	for _, m := range e.Methods {
		b = append(b, 0, 'm')
		b = append(b, m...)
	}
	for _, p := range e.Paths {
		b = append(b, 0, 'p')
		b = append(b, p...)
	}
	return string(b)
}

// portLess orders numbers before names, then by protocol.
func portLess(a, b Port) int {
	if a.Named() != b.Named() {
		if a.Named() {
			return 1
		}
		return -1
	}
	if c := strings.Compare(portSortKey(a), portSortKey(b)); c != 0 {
		return c
	}
	return strings.Compare(string(a.Protocol), string(b.Protocol))
}

// portSortKey pads numbers so that they sort numerically as strings.
func portSortKey(p Port) string {
	if p.Named() {
		return p.Port.StrVal
	}
	s := strconv.Itoa(int(p.Port.IntVal))
	return strings.Repeat("0", 5-min(len(s), 5)) + s
}
