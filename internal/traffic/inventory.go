package traffic

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// Inventory is what the cluster, or the manifests given, say of the namespaces: their workloads
// and the Services in front of them.
type Inventory struct {
	Workloads []Workload
	Services  []corev1.Service
	// Namespaces are the namespaces' labels.
	Namespaces map[string]map[string]string
}

// Workload is a set of pods alike: a Deployment's, a StatefulSet's, a bare pod.
type Workload struct {
	Namespace, Name string
	// Labels are its pods' labels, ServiceAccount their identity, Ports their container ports.
	Labels         map[string]string
	ServiceAccount string
	Ports          []corev1.ContainerPort
	// IPs are its pods' addresses, when known.
	IPs []string
	// Meshed tells whether Istio handles its traffic (a sidecar or ambient mode).
	Meshed bool
}

// Waypoint tells whether the workload is an ambient waypoint, as Istio marks its pods (istio/istio
// IsWaypointWorkload): what it sends on is the second hop of requests it reported itself.
func (w *Workload) Waypoint() bool {
	return w.Labels["gateway.istio.io/managed"] == "istio.io-mesh-controller"
}

// Account is the workload's ServiceAccount, "default" when unset.
func (w *Workload) Account() string {
	if w.ServiceAccount == "" {
		return "default"
	}
	return w.ServiceAccount
}

// find resolves a party to a workload of the inventory: by namespace and workload name (Istio names
// a Deployment's pods by the Deployment), else by its identity when one workload of the namespace
// runs under it, else by address. nil for a party outside the inventory.
func (inv *Inventory) find(p Party) *Workload {
	if p.Known() {
		for i := range inv.Workloads {
			if w := &inv.Workloads[i]; w.Namespace == p.Namespace && w.Name == p.Workload {
				return w
			}
		}
	}
	if _, ns, sa, ok := semantics.ParsePrincipal(p.Principal); ok {
		var found []*Workload
		for i := range inv.Workloads {
			if w := &inv.Workloads[i]; w.Namespace == ns && w.Account() == sa {
				found = append(found, w)
			}
		}
		if len(found) == 1 {
			return found[0]
		}
	}
	if p.Namespace != "" && len(p.Labels) > 0 {
		for i := range inv.Workloads {
			// Labels set per pod (pod-template-hash...) are not in every source's (Cilium's
			// identities leave them out).
			if w := &inv.Workloads[i]; w.Namespace == p.Namespace && compiler.Selects(stableLabels(w.Labels), p.Labels) {
				return w
			}
		}
	}
	if p.IP != "" {
		for i := range inv.Workloads {
			if w := &inv.Workloads[i]; slices.Contains(w.IPs, p.IP) {
				return w
			}
		}
	}
	return nil
}

// canonical names each end of the flows by the workload of the inventory it is, when it is one
// (a pod's address, its labels or its identity become the workload), so flows of one workload's
// pods merge into one; the caller's identity stays. A caller the source names fully (namespace,
// workload, labels, identity) but the inventory does not hold, as a gateway of a namespace not read,
// is adopted as a workload: the returned inventory holds it, so discover declares it as a peer and
// audit judges it as the pods it is.
func (inv *Inventory) canonical(flows []Flow) (*Inventory, []Flow) {
	out := make([]Flow, len(flows))
	wider := inv
	for i, f := range flows {
		w := wider.find(f.From)
		if w == nil && f.From.Known() && len(f.From.Labels) > 0 && f.From.account() != "" {
			if wider == inv {
				copied := *inv
				copied.Workloads = slices.Clone(inv.Workloads)
				wider = &copied
			}
			wider.Workloads = append(wider.Workloads, Workload{Namespace: f.From.Namespace, Name: f.From.Workload,
				Labels: f.From.Labels, ServiceAccount: f.From.account(), Meshed: f.Security == MutualTLS})
			w = &wider.Workloads[len(wider.Workloads)-1]
		}
		if w != nil {
			f.From = Party{Namespace: w.Namespace, Workload: w.Name, Principal: f.From.Principal, ServiceAccount: f.From.ServiceAccount}
		}
		if w := wider.find(f.To); w != nil {
			f.To = Party{Namespace: w.Namespace, Workload: w.Name}
		}
		out[i] = f
	}
	return wider, Merge(out)
}

// PortChoice is what the inventory says of the port a flow without one reached.
type PortChoice struct {
	// Ports are the destination pod ports it may have been: one when known, several when
	// ambiguous, none when nothing says.
	Ports []int32
	// Why says where they come from.
	Why string
}

// Ambiguous tells whether several ports are possible.
func (c PortChoice) Ambiguous() bool { return len(c.Ports) > 1 }

// Ports says which destination pod port a flow reached: the one it saw; else, for a flow to a
// Service, the ports it targets (resolved through the destination's container ports); else the
// destination's container ports when it has one.
func (inv *Inventory) Ports(f Flow, to *Workload) PortChoice {
	if f.Port != 0 {
		return PortChoice{Ports: []int32{f.Port}, Why: "port observed"}
	}
	var ports []int32
	var services []string
	for _, svc := range inv.Services {
		if to == nil || svc.Namespace != to.Namespace || f.Service != "" && svc.Name != f.Service || !compiler.Selects(svc.Spec.Selector, to.Labels) {
			continue
		}
		services = append(services, svc.Name)
		for _, sp := range svc.Spec.Ports {
			if sp.Protocol != "" && sp.Protocol != f.Protocol {
				continue
			}
			if n, ok := targetNumber(sp, to); ok {
				ports = append(ports, n)
			}
		}
	}
	slices.Sort(ports)
	ports = slices.Compact(ports)
	switch {
	case len(ports) == 1:
		return PortChoice{Ports: ports, Why: "port from Service " + strings.Join(services, ", ")}
	case len(ports) > 1:
		return PortChoice{Ports: ports, Why: "AMBIGUOUS: Service " + strings.Join(services, ", ") + " has several ports and the source does not say which was used"}
	}
	if to != nil && len(to.Ports) == 1 {
		return PortChoice{Ports: []int32{to.Ports[0].ContainerPort}, Why: "port from the pods' only container port"}
	}
	return PortChoice{Why: "no port: the source does not say and no Service tells"}
}

// targetNumber is the pod port a Service port sends to.
func targetNumber(sp corev1.ServicePort, to *Workload) (int32, bool) {
	t := compiler.TargetPort(compiler.KubeServicePort{Port: sp.Port, TargetPort: sp.TargetPort})
	if t.Type == intstr.Int {
		return t.IntVal, true
	}
	for _, p := range to.Ports {
		if p.Name == t.StrVal {
			return p.ContainerPort, true
		}
	}
	return 0, false
}
