// Package traffic reads observed connections from the sources users already have (Istio's
// metrics in Prometheus, Hubble flows, Envoy access logs), ties them to the cluster's workloads
// and Services, proposes the ServiceGraph they imply (discover) and judges a graph against them
// (audit): which observed connections it would refuse, which plain-text callers STRICT would cut,
// which declared edges no traffic used. Reading a source is I/O; everything after is pure.
package traffic

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// Party is one end of an observed connection, as much as the source saw of it.
type Party struct {
	// Namespace and Workload name a workload of the cluster ("" when the source did not see one:
	// an address, or Istio's "unknown").
	Namespace, Workload string
	// Principal is the mutual-TLS identity, TRUST_DOMAIN/ns/NAMESPACE/sa/NAME ("" when none).
	Principal string
	// ServiceAccount is the pods' ServiceAccount when the source names it (Hubble's label).
	ServiceAccount string
	// IP is the address when the source saw it.
	IP string
	// Labels are the pods' labels when the source carries them (Hubble).
	Labels map[string]string
}

// Known tells whether the party is a workload of the cluster.
func (p Party) Known() bool { return p.Namespace != "" && p.Workload != "" }

// account is the party's ServiceAccount: named, or read from its principal.
func (p Party) account() string {
	if p.ServiceAccount != "" {
		return p.ServiceAccount
	}
	if _, _, sa, ok := semantics.ParsePrincipal(p.Principal); ok {
		return sa
	}
	return ""
}

func (p Party) String() string {
	switch {
	case p.Known():
		return p.Namespace + "/" + p.Workload
	case p.Principal != "":
		return p.Principal
	case p.IP != "":
		return p.IP
	}
	return "unknown"
}

// Security is how a connection reached its destination.
type Security string

const (
	MutualTLS Security = "mutual_tls"
	Plaintext Security = "none"
	// Unknown: the source does not say.
	Unknown Security = ""
)

// Flow is what a source saw of the connections from one party to another over a window.
type Flow struct {
	From, To Party
	// Protocol is TCP, UDP or SCTP.
	Protocol corev1.Protocol
	// Port is the destination pod's port when the source saw it, 0 when not (Istio's standard
	// metrics carry none: the destination's Service tells, see Inventory.Ports).
	Port int32
	// Service names the destination's Kubernetes Service when the source saw it.
	Service string
	// Paths and Methods are the HTTP requests' when the source saw them; HTTP is set for HTTP
	// traffic even without them.
	HTTP           bool
	Paths, Methods []string
	// Count is the number of connections or requests seen.
	Count float64
	// First and Last are when the source first and last saw it (zero when it does not say).
	First, Last time.Time
	Security    Security
	// Source names where it was seen: prometheus, hubble, access-log.
	Source string
	// DryRun is set on what Istio's dry-run policies would have refused, which names no caller:
	// "allow" (no dry-run ALLOW policy matched) or "deny" (a dry-run DENY policy matched).
	DryRun string
}

func (f Flow) String() string {
	port := "?"
	if f.Port != 0 {
		port = fmt.Sprint(f.Port)
	}
	return fmt.Sprintf("%s -> %s %s/%s", f.From, f.To, cmp.Or(f.Protocol, corev1.ProtocolTCP), port)
}

// key identifies flows that merge: same ends (a workload, else its identity, else its address),
// protocol and port.
func (f Flow) key() string {
	return strings.Join([]string{f.From.String(), f.To.String(), string(f.Protocol), fmt.Sprint(f.Port), f.Service, f.DryRun}, "|")
}

// Merge adds up flows seen between the same parties on the same port, from one source or several:
// counts add, the window widens, paths and methods join, and plain text seen once stays seen.
func Merge(flows []Flow) []Flow {
	index := map[string]int{}
	var out []Flow
	for _, f := range flows {
		i, ok := index[f.key()]
		if !ok {
			index[f.key()] = len(out)
			f.Paths, f.Methods = slices.Clone(f.Paths), slices.Clone(f.Methods)
			out = append(out, f)
			continue
		}
		m := &out[i]
		m.Count += f.Count
		m.HTTP = m.HTTP || f.HTTP
		m.Paths = union(m.Paths, f.Paths)
		m.Methods = union(m.Methods, f.Methods)
		if !f.First.IsZero() && (m.First.IsZero() || f.First.Before(m.First)) {
			m.First = f.First
		}
		if f.Last.After(m.Last) {
			m.Last = f.Last
		}
		if f.Security == Plaintext || m.Security == Unknown {
			m.Security = f.Security
		}
		if !strings.Contains(m.Source, f.Source) {
			m.Source += "," + f.Source
		}
	}
	slices.SortFunc(out, func(a, b Flow) int { return strings.Compare(a.key(), b.key()) })
	return out
}

func union(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}
