package compiler

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/servicegraph/servicegraph-operator/internal/graph"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// KubeService is what the compiler needs of a Kubernetes Service: the pods it selects and how Istio
// reads the protocol of each of its ports.
type KubeService struct {
	Name, Namespace string
	Selector        map[string]string
	Ports           []KubeServicePort
	// Labels are its labels that name a waypoint (istio.io/use-waypoint and its namespace).
	Labels map[string]string
}

// KubeServiceOf reads what the compiler needs of a Service.
func KubeServiceOf(svc *corev1.Service) KubeService {
	ks := KubeService{Name: svc.Name, Namespace: svc.Namespace, Selector: svc.Spec.Selector, Labels: WaypointLabels(svc.Labels)}
	for _, p := range svc.Spec.Ports {
		ks.Ports = append(ks.Ports, KubeServicePort{Name: p.Name, Protocol: p.Protocol, Port: p.Port,
			TargetPort: p.TargetPort, AppProtocol: ptr.Deref(p.AppProtocol, "")})
	}
	return ks
}

// KubeServicePort is one port of a Service.
type KubeServicePort struct {
	Name        string
	Protocol    corev1.Protocol
	Port        int32
	TargetPort  intstr.IntOrString
	AppProtocol string
}

// WaypointLabels keeps of an object's labels those that name a waypoint; nil when none does.
func WaypointLabels(l map[string]string) map[string]string {
	var out map[string]string
	for _, k := range []string{semantics.LabelUseWaypoint, semantics.LabelUseWaypointNamespace} {
		if v, ok := l[k]; ok {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}

// ProtocolMismatch is an edge whose HTTP paths or methods can never match: a Service in front of
// the destination tells Istio the port speaks something other than HTTP, and on such traffic Istio
// skips every rule with HTTP fields, so the caller is refused.
type ProtocolMismatch struct {
	// Edge is the edge as written in compact form.
	Edge string
	// Service and Port name the Service port, Protocol is what it declares and Source says where
	// (its name or its appProtocol).
	Service, Port, Protocol, Source string
}

func (m ProtocolMismatch) String() string {
	return fmt.Sprintf("edge %s matches HTTP paths or methods, but Service %s port %s declares %s (%s): Istio treats that traffic as %s, skips the rule and refuses the caller; name the port http-… or set appProtocol: http (grpc for gRPC), or drop the paths and methods",
		m.Edge, m.Service, m.Port, m.Protocol, m.Source, m.Protocol)
}

// ProtocolMismatches finds, for each edge of the graph into a local service with HTTP paths or
// methods, the Services selecting the service's pods whose port for that edge declares a protocol
// other than HTTP. A port whose Service declares nothing is left to Istio's protocol sniffing,
// which finds HTTP when the application speaks it.
func ProtocolMismatches(g *graph.Graph, services []KubeService) []ProtocolMismatch {
	var out []ProtocolMismatch
	for i := range g.Edges {
		e := &g.Edges[i]
		to, _ := g.Service(e.To)
		if !httpOnly(e) || !g.Local(to) {
			continue
		}
		for _, ks := range services {
			if ks.Namespace != g.Namespace || !Selects(ks.Selector, to.Labels) {
				continue
			}
			for _, p := range e.Ports {
				for _, sp := range ks.Ports {
					if !p.Meshed() || !targets(sp, p) {
						continue
					}
					if protocol, source := IstioProtocol(sp); protocol != "" && !slices.Contains(httpProtocols, protocol) {
						out = append(out, ProtocolMismatch{Edge: e.String(), Service: ks.Namespace + "/" + ks.Name,
							Port: portLabel(sp), Protocol: protocol, Source: source})
					}
				}
			}
		}
	}
	return out
}

// httpOnly tells whether an edge's rule matches attributes only HTTP carries (semantics.HTTPOnly).
func httpOnly(e *graph.Edge) bool {
	if len(e.Paths) == 0 && len(e.Methods) == 0 {
		return false // an empty operation matches on nothing (most edges: read up to five times each)
	}
	op := &securityv1beta1.Operation{Paths: e.Paths, Methods: e.Methods}
	return len(semantics.HTTPOnly(&securityv1beta1.Rule{To: []*securityv1beta1.Rule_To{{Operation: op}}})) > 0
}

// Selects tells whether a Service's selector picks every pod with these labels: its labels are a
// subset of them. A Service without a selector selects no pod by label.
func Selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// targets tells whether a Service port sends its traffic to the edge's destination port.
func targets(sp KubeServicePort, p graph.Port) bool {
	return TargetPort(sp) == p.Port
}

// TargetPort is the pods' port a Service port sends its traffic to: its targetPort, or, unset, the
// port itself.
func TargetPort(sp KubeServicePort) intstr.IntOrString {
	if sp.TargetPort.Type == intstr.Int && sp.TargetPort.IntVal == 0 && sp.TargetPort.StrVal == "" {
		return intstr.FromInt32(sp.Port)
	}
	return sp.TargetPort
}

// httpProtocols are the protocols on which Istio applies rules with HTTP fields.
var httpProtocols = []string{"HTTP", "HTTP2", "HTTP_PROXY", "GRPC", "GRPC-Web"}

// HTTPProtocol tells whether Istio applies rules with HTTP fields to a protocol.
func HTTPProtocol(protocol string) bool { return slices.Contains(httpProtocols, protocol) }

// namedProtocols are the protocols Istio reads from a name or an appProtocol, by lower-case prefix.
var namedProtocols = map[string]string{
	"tcp": "TCP", "udp": "UDP", "grpc": "GRPC", "http": "HTTP", "http_proxy": "HTTP_PROXY", "http2": "HTTP2",
	"https": "HTTPS", "tls": "TLS", "mongo": "Mongo", "redis": "Redis", "mysql": "MySQL",
}

// wellKnownTCP are the ports Istio takes for TCP when a Service declares no protocol (SMTP, DNS,
// MySQL, MongoDB): sniffing would break them.
var wellKnownTCP = []int32{25, 53, 3306, 27017}

// IstioProtocol is the protocol Istio reads from a Service port, and where it read it; "" when the
// port declares none and Istio sniffs the traffic. It follows istio.io/istio's
// pkg/config/kube.ConvertProtocol, which test/istio holds it to.
func IstioProtocol(sp KubeServicePort) (protocol, source string) {
	if sp.Protocol == corev1.ProtocolUDP {
		return "UDP", "protocol UDP"
	}
	name, source := sp.Name, "its name "+sp.Name
	if sp.AppProtocol != "" {
		name, source = sp.AppProtocol, "appProtocol "+sp.AppProtocol
		switch name {
		case "kubernetes.io/h2c":
			return "HTTP2", source
		case "kubernetes.io/ws":
			return "HTTP", source
		case "kubernetes.io/wss":
			return "HTTPS", source
		}
	}
	if len(name) >= len("grpc-web") && strings.EqualFold(name[:len("grpc-web")], "grpc-web") {
		return "GRPC-Web", source
	}
	prefix, _, _ := strings.Cut(name, "-")
	if p, ok := namedProtocols[strings.ToLower(prefix)]; ok {
		return p, source
	}
	if slices.Contains(wellKnownTCP, sp.Port) {
		return "TCP", fmt.Sprintf("well-known port %d, no protocol declared", sp.Port)
	}
	return "", ""
}

func portLabel(sp KubeServicePort) string {
	if sp.Name == "" {
		return strconv.Itoa(int(sp.Port))
	}
	return fmt.Sprintf("%d (%s)", sp.Port, sp.Name)
}
