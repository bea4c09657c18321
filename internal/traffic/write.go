package traffic

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
)

// Write prints a proposal as a ServiceGraph manifest whose every edge carries its evidence as a
// comment: one edge string per port list, or a connection for paths, methods or a protocol other
// than TCP; ambiguous ports and plain-text callers said in the comment; TODOs at the end.
func (p *Proposal) Write() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Proposed by `servicegraph discover` from observed traffic. Review every edge: each says what was seen.\n")
	fmt.Fprintf(&b, "apiVersion: %s\nkind: ServiceGraph\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n", v1alpha1.GroupVersion, scalar(p.Name), scalar(p.Namespace))
	b.WriteString("  services:\n")
	if p.Base != nil {
		b.WriteString(items(p.Base.Spec.Services))
	}
	if len(p.Services) == 0 && p.Base == nil {
		b.WriteString("  # TODO: no workload of the namespace was seen in the traffic\n")
	}
	for _, s := range p.Services {
		fmt.Fprintf(&b, "  - name: %s\n", scalar(s.Name))
		if s.Namespace != "" {
			fmt.Fprintf(&b, "    namespace: %s\n", scalar(s.Namespace))
		}
		if len(s.Labels) != 1 || s.Labels["app"] != s.Name {
			fmt.Fprintf(&b, "    selector:\n      matchLabels:\n")
			for _, k := range slices.Sorted(maps.Keys(s.Labels)) {
				fmt.Fprintf(&b, "        %s: %s\n", scalar(k), scalar(s.Labels[k]))
			}
		}
		if s.ServiceAccount != s.Name {
			fmt.Fprintf(&b, "    serviceAccount: %s\n", scalar(s.ServiceAccount))
		}
	}
	if len(p.External) > 0 || p.Base != nil && len(p.Base.Spec.External) > 0 {
		b.WriteString("  external:\n")
		if p.Base != nil {
			b.WriteString(items(p.Base.Spec.External))
		}
		for _, x := range p.External {
			fmt.Fprintf(&b, "  # %s\n  - name: %s\n", x.Why, scalar(x.Name))
			if len(x.Namespaces) > 0 {
				fmt.Fprintf(&b, "    namespaces:\n      names: [%s]\n", list(x.Namespaces))
			}
			if len(x.CIDRs) > 0 {
				fmt.Fprintf(&b, "    cidrs: [%s]\n", list(x.CIDRs))
			}
			if x.Unmeshed {
				b.WriteString("    unmeshed: true\n")
			}
		}
	}
	var edges, connections []ProposedEdge
	for _, e := range p.Edges {
		if len(e.Paths) > 1 || len(e.Paths) == 1 && !strings.HasPrefix(e.Paths[0], "/") || len(e.Methods) > 0 || e.Protocol != corev1.ProtocolTCP {
			connections = append(connections, e)
		} else {
			edges = append(edges, e)
		}
	}
	var baseEdges []string
	var baseConnections []v1alpha1.Connection
	if p.Base != nil {
		baseEdges, baseConnections = p.Base.Spec.Edges, p.Base.Spec.Connections
	}
	if len(edges)+len(baseEdges) > 0 || len(connections)+len(baseConnections) == 0 {
		b.WriteString("  edges:\n")
	}
	for _, e := range baseEdges {
		fmt.Fprintf(&b, "  - %s\n", scalar(e))
	}
	for _, e := range edges {
		fmt.Fprintf(&b, "  # %s\n", e.Evidence)
		s := fmt.Sprintf("%s->%s:%s", e.From, e.To, ports(e.Ports))
		if len(e.Paths) == 1 {
			s += e.Paths[0]
		}
		fmt.Fprintf(&b, "  - %s\n", scalar(s))
	}
	if len(connections)+len(baseConnections) > 0 {
		b.WriteString("  connections:\n")
		b.WriteString(items(baseConnections))
	}
	for _, e := range connections {
		fmt.Fprintf(&b, "  # %s\n  - from: %s\n    to: %s\n    ports:\n", e.Evidence, scalar(e.From), scalar(e.To))
		for _, port := range e.Ports {
			fmt.Fprintf(&b, "    - port: %d\n", port)
			if e.Protocol != corev1.ProtocolTCP {
				fmt.Fprintf(&b, "      protocol: %s\n", e.Protocol)
			}
		}
		if len(e.Paths) > 0 {
			fmt.Fprintf(&b, "    paths: [%s]\n", list(e.Paths))
		}
		if len(e.Methods) > 0 {
			fmt.Fprintf(&b, "    methods: [%s]\n", list(e.Methods))
		}
	}
	for _, t := range p.TODO {
		fmt.Fprintf(&b, "  # TODO: %s\n", t)
	}
	return b.Bytes()
}

// Empty tells whether the proposal has nothing to write: no edge and no existing graph.
func (p *Proposal) Empty() bool { return p.Base == nil && len(p.Edges) == 0 }

// items prints a list of the base graph as YAML list items under spec; "" when empty.
func items[T any](list []T) string {
	if len(list) == 0 {
		return ""
	}
	out, err := yaml.Marshal(list)
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		b.WriteString("  " + line + "\n")
	}
	return b.String()
}

func ports(ps []int32) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = strconv.Itoa(int(p))
	}
	return strings.Join(out, ",")
}

func list(values []string) string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = scalar(v)
	}
	return strings.Join(out, ", ")
}

// scalar is a YAML scalar: plain when YAML reads it back as the same string in a flow list too,
// quoted otherwise.
func scalar(s string) string {
	var back []string
	if err := yaml.Unmarshal([]byte("["+s+"]"), &back); err == nil && len(back) == 1 && back[0] == s && !strings.Contains(s, " #") {
		return s
	}
	return strconv.Quote(s)
}
