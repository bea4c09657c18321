package traffic

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/eval"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
	"github.com/servicegraph/servicegraph-operator/internal/object"
)

// The operator's TrafficCovered condition. Reading Prometheus and the cluster is the controller's;
// what the condition says of one graph is decided here, from what was read.

// Observation is what the operator last read of one namespace's traffic.
type Observation struct {
	// Answered is set once a query answered; Flows, Inventory and Policies are the last answer's.
	Answered  bool
	Flows     []Flow
	Inventory *Inventory
	// Policies are the NetworkPolicies, PeerAuthentications and AuthorizationPolicies of the
	// namespace and of Istio's root namespace that no graph generated: Enforce mode adds to them.
	Policies []any
	// Failures counts the queries that failed since the last answer; FailingSince is when the
	// first of them ran and Err what it returned (the first error: it stays put during an outage,
	// so the message does not change with every failed query).
	Failures     int
	FailingSince time.Time
	Err          error
	// Window is how far back the queries look.
	Window time.Duration
}

// FailuresBeforeUnknown is how many queries in a row must fail before the condition turns Unknown.
// One failed query after an answer keeps that answer: a Prometheus restart or one slow query must
// not flap the condition (and write every graph's status twice); an outage of a whole interval
// does turn it Unknown.
const FailuresBeforeUnknown = 2

// Decided tells whether the observation says anything yet: an answer, or failures enough to say
// Unknown. Until then the condition the graph has stands, so a restarted operator whose first
// query fails keeps the last run's answer rather than flapping to Unknown and back.
func (o *Observation) Decided() bool {
	return o.Answered || o.Failures >= FailuresBeforeUnknown
}

// Usable tells whether the last answer still stands.
func (o *Observation) Usable() bool {
	return o.Answered && o.Failures < FailuresBeforeUnknown
}

// Coverage is the TrafficCovered condition of one graph.
type Coverage struct {
	Status          metav1.ConditionStatus
	Reason, Message string
	// Refused counts the distinct observed connections the graph refuses, plain-text callers that
	// STRICT mutual TLS cuts included; meaningful only when Status is not Unknown.
	Refused int
}

// Known tells whether the observation said something about the graph.
func (c Coverage) Known() bool { return c.Status != metav1.ConditionUnknown }

// RefusedLimit is how many refused connections the condition's message names.
const RefusedLimit = 10

// Assess decides the TrafficCovered condition of graph g, judged by judge (see EnforceJudge),
// from its namespace's observation: the same judgement as `servicegraph audit`.
func Assess(o *Observation, judge Judge, g *graph.Graph) Coverage {
	window := model.Duration(o.Window).String()
	if !o.Usable() {
		msg := "Prometheus has not answered"
		if !o.FailingSince.IsZero() {
			msg += " since " + o.FailingSince.UTC().Format(time.RFC3339)
		}
		if o.Err != nil {
			msg += ": " + o.Err.Error()
		}
		return Coverage{Status: metav1.ConditionUnknown, Reason: v1alpha1.ReasonPrometheusUnreachable, Message: msg}
	}
	r := Audit(o.Flows, o.Inventory, judge, []*graph.Graph{g})
	if r.Flows == 0 {
		return Coverage{Status: metav1.ConditionUnknown, Reason: v1alpha1.ReasonNoTrafficData, Message: fmt.Sprintf(
			"Prometheus holds no connection into or out of the namespace's workloads in the last %s (Istio's istio_requests_total and istio_tcp_connections_opened_total, reported by the destination or its waypoint)", window)}
	}
	undecided := ""
	if n := len(r.Undecided); n > 0 {
		undecided = fmt.Sprintf("; %d undecided (the metrics say too little to judge them: `servicegraph audit` lists them)", n)
	}
	refused := append(slices.Clone(r.Refused), r.Plaintext...)
	if len(refused) == 0 {
		return Coverage{Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonTrafficCovered, Message: fmt.Sprintf(
			"Enforce mode lets through all %d %s observed in the last %s%s", r.Flows, map[bool]string{true: "connection", false: "connections"}[r.Flows == 1], window, undecided)}
	}
	named := refused[:min(len(refused), RefusedLimit)]
	parts := make([]string, len(named))
	for i, f := range named {
		parts[i] = fmt.Sprintf("%s (%s, refused at %s by %s)", f, approxCount(f.Flow), f.Layer, f.By)
	}
	more := ""
	if len(refused) > len(named) {
		more = fmt.Sprintf("; and %d more", len(refused)-len(named))
	}
	return Coverage{Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonObservedTrafficRefused, Refused: len(refused), Message: fmt.Sprintf(
		"Enforce mode would refuse %d of the %d connections observed in the last %s: %s%s%s",
		len(refused), r.Flows, window, strings.Join(parts, "; "), more, undecided)}
}

// approxCount is a flow's count to two significant digits. Prometheus' increase() extrapolates
// over a sliding window, so exact counts change with every query; rounded ones mostly do not, and
// the condition's message (hence the graph's status) stays put while the traffic is steady.
func approxCount(f Flow) string {
	what := "connections"
	if f.HTTP {
		what = "requests"
	}
	return "~" + strconv.FormatFloat(roundCount(f.Count), 'f', 0, 64) + " " + what
}

// roundCount rounds a count to two significant digits, and to at least 1.
func roundCount(n float64) float64 {
	if n < 100 {
		return math.Max(1, math.Round(n))
	}
	scale := math.Pow(10, math.Floor(math.Log10(n))-1)
	return math.Round(n/scale) * scale
}

// Fingerprint sums up what Assess reads of an observation (counts as the message rounds them):
// while it stays the same, so does every graph's condition, and the operator need not look again.
func (o *Observation) Fingerprint() string {
	type policy struct{ Namespace, Name, ResourceVersion string }
	var sum struct {
		Decided      bool
		Usable       bool
		FailingSince time.Time
		Err          string
		Flows        []Flow
		Inventory    *Inventory
		Policies     []policy
	}
	sum.Decided = o.Decided()
	if sum.Usable = o.Usable(); !sum.Usable {
		// The message names the first failure only (a later, different error changes nothing),
		// and the last answer says nothing any more.
		sum.FailingSince, sum.Err = o.FailingSince, fmt.Sprint(o.Err)
	} else {
		sum.Inventory = o.Inventory
		for _, f := range Merge(o.Flows) { // in a stable order: Prometheus answers in any
			f.Count = roundCount(f.Count)
			sum.Flows = append(sum.Flows, f)
		}
		for _, p := range o.Policies {
			if m, ok := p.(metav1.Object); ok {
				sum.Policies = append(sum.Policies, policy{m.GetNamespace(), m.GetName(), m.GetResourceVersion()})
			}
		}
	}
	data, _ := json.Marshal(sum)
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// EnforceJudge is the evaluator a graph is judged with: its objects as Enforce mode applies them
// (in Audit mode, what it would apply), with the policies no graph generated and the namespaces'
// labels, as `servicegraph audit` builds it.
func EnforceJudge(d *compiler.Result, policies []any, namespaces map[string]map[string]string, trustDomain string) *eval.Cluster {
	if d.Enforce != nil {
		d = d.Enforce
	}
	c := &eval.Cluster{Namespaces: namespaces, TrustDomain: trustDomain}
	for _, obj := range d.Objects() {
		c.Add(obj)
	}
	c.Add(policies...)
	return c
}

// InventoryOf groups live pods into the workloads Istio's metrics name (see WorkloadName), with
// the Services in front of them. Pods that are going away or done are left out, as audit does.
func InventoryOf(pods []corev1.Pod, services []corev1.Service, namespaces map[string]map[string]string) *Inventory {
	inv := &Inventory{Services: services, Namespaces: namespaces}
	index := map[string]int{}
	for i := range pods {
		p := &pods[i]
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		name := WorkloadName(p)
		key := p.Namespace + "/" + name
		at, seen := index[key]
		if !seen {
			at = len(inv.Workloads)
			index[key] = at
			containers := append(slices.Clone(p.Spec.InitContainers), p.Spec.Containers...)
			w := Workload{Namespace: p.Namespace, Name: name, Labels: p.Labels, ServiceAccount: p.Spec.ServiceAccountName,
				Meshed: object.IstioMarked(p.Annotations) || slices.ContainsFunc(containers, func(c corev1.Container) bool { return c.Name == "istio-proxy" })}
			for _, c := range containers {
				w.Ports = append(w.Ports, c.Ports...)
			}
			inv.Workloads = append(inv.Workloads, w)
		}
		for _, ip := range p.Status.PodIPs {
			inv.Workloads[at].IPs = append(inv.Workloads[at].IPs, ip.IP)
		}
	}
	return inv
}

// OpenPrometheus is a Prometheus source for the operator: the URL, with the bearer token and CA of
// the options, over the window of the options.
func OpenPrometheus(url string, opts SourceOptions) (*Prometheus, error) {
	rt, err := httpTransport(opts)
	if err != nil {
		return nil, err
	}
	p, err := NewPrometheus(url, promapi.Config{RoundTripper: rt})
	if err != nil {
		return nil, err
	}
	p.Window, p.Now = opts.Window, opts.Now
	return p, nil
}
