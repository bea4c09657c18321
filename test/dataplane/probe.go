package dataplane

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Probe is one new connection from a pod to a port of another pod.
type Probe struct {
	From, To *Pod
	Port     Port
	// Want is the verdict expected, when the probe checks one.
	Want bool
}

func (p Probe) String() string {
	return fmt.Sprintf("%s -> %s:%s", p.From.Key(), p.To.Key(), p.Port)
}

// Result is a probe and the verdict the dataplane gave.
type Result struct {
	Probe
	Connected bool
}

// Timeouts: an answered connection takes well under a millisecond here; a refused one is a SYN
// (or datagram) the enforcer dropped, seen as silence.
const (
	ProbeTimeout = 800 * time.Millisecond
	parallel     = 96
)

// Run dials every probe, many at once. A probe expected to connect that gets no answer is tried
// once more, so a packet lost under load does not read as a refusal; a connection that should
// have been refused is never retried.
func Run(probes []Probe) []Result {
	results := make([]Result, len(probes))
	var wg sync.WaitGroup
	limit := make(chan struct{}, parallel)
	for i, p := range probes {
		wg.Add(1)
		limit <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-limit }()
			ok := Dial(p.From.Slot, p.To.Slot.IP, p.Port, ProbeTimeout)
			if !ok && p.Want {
				ok = Dial(p.From.Slot, p.To.Slot.IP, p.Port, ProbeTimeout)
			}
			results[i] = Result{Probe: p, Connected: ok}
		}()
	}
	wg.Wait()
	return results
}

// Mismatches lists the results whose verdict is not the one wanted.
func Mismatches(results []Result) []string {
	var out []string
	for _, r := range results {
		if r.Connected != r.Want {
			out = append(out, fmt.Sprintf("%s: %s, want %s", r.Probe, verdict(r.Connected), verdict(r.Want)))
		}
	}
	sort.Strings(out)
	return out
}

func verdict(connected bool) string {
	if connected {
		return "connected"
	}
	return "refused"
}

// Count is how many results connected and how many were refused.
func Count(results []Result) (connected, refused int) {
	for _, r := range results {
		if r.Connected {
			connected++
		} else {
			refused++
		}
	}
	return connected, refused
}

// Matrix prints the results as one grid (MatrixTable), each refusal's reason the NetworkPolicies
// that select the pod on the side that refused it (which the enforcer's log confirms when it logs
// decisions).
func (c *Cluster) Matrix(ctx context.Context, results []Result) (string, error) {
	var policies networkingv1.NetworkPolicyList
	if err := c.Client.List(ctx, &policies); err != nil {
		return "", err
	}
	return MatrixTable(results, func(p Probe) string { return c.decidedBy(p, policies.Items) }), nil
}

// decidedBy names what refused a connection: the egress policies of the source or the ingress
// policies of the destination, from the enforcer's decision log when it has one.
func (c *Cluster) decidedBy(p Probe, policies []networkingv1.NetworkPolicy) string {
	direction := ""
	if e := c.currentEnforcer(); e != nil {
		direction = e.refusingSide(p)
	}
	selecting := func(pod *Pod, t networkingv1.PolicyType) []string {
		var names []string
		for _, np := range policies {
			sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
			if err == nil && np.Namespace == pod.Namespace && sel.Matches(labels.Set(pod.Labels)) && hasType(np, t) {
				names = append(names, np.Name)
			}
		}
		return names
	}
	egress, ingress := selecting(p.From, networkingv1.PolicyTypeEgress), selecting(p.To, networkingv1.PolicyTypeIngress)
	source := "the enforcer's log"
	if direction == "" {
		source = "no decision logged; by the selecting policies"
	}
	switch {
	case direction == "egress" || (direction == "" && len(egress) > 0 && len(ingress) == 0):
		return fmt.Sprintf("egress of %s: no rule of %s allows it (%s)", p.From.Key(), strings.Join(egress, ", "), source)
	case direction == "ingress" || (direction == "" && len(ingress) > 0):
		return fmt.Sprintf("ingress of %s: no rule of %s allows it (%s)", p.To.Key(), strings.Join(ingress, ", "), source)
	}
	return "no NetworkPolicy selects either pod: not refused by policy"
}

func hasType(np networkingv1.NetworkPolicy, t networkingv1.PolicyType) bool {
	if len(np.Spec.PolicyTypes) == 0 {
		return t == networkingv1.PolicyTypeIngress || len(np.Spec.Egress) > 0
	}
	for _, pt := range np.Spec.PolicyTypes {
		if pt == t {
			return true
		}
	}
	return false
}

func (c *Cluster) currentEnforcer() *Enforcer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.enforcer
}

// refusingSide reads the enforcer's decision log for the last decision on a connection like the
// probe's: "egress" or "ingress" for the side whose NetworkPolicies refused it, "" when it logged
// none. At -v=2 kube-network-policies logs, per packet, the pods, then the packet as
// "[ID] SRC:PORT DST:PORT PROTO" on a line of its own, then each side's verdict with that ID.
func (e *Enforcer) refusingSide(p Probe) string {
	want := fmt.Sprintf("%s:%d %s", p.To.Slot.IP, p.Port.Number, p.Port.Protocol)
	pods := `srcPod="` + p.From.Key() + `" dstPod="` + p.To.Key() + `"`
	side, id, podsMatch := "", "", false
	for _, line := range e.log.Lines() {
		switch {
		case strings.Contains(line, `"Evaluating packet"`):
			podsMatch, id = strings.Contains(line, pods), ""
		case podsMatch && strings.HasPrefix(strings.TrimSpace(line), "[") && strings.HasSuffix(line, want):
			id = strings.Trim(strings.Fields(line)[0], "[]")
		case id != "" && logValue(line, "id") == id && strings.Contains(line, "allowed=false"):
			if strings.Contains(line, `"Egress NetworkPolicies"`) {
				side = "egress"
			} else if strings.Contains(line, `"Ingress NetworkPolicies"`) {
				side = "ingress"
			}
		}
	}
	return side
}

// logValue is the value of key=value in a klog text line.
func logValue(line, key string) string {
	_, rest, ok := strings.Cut(line, " "+key+"=")
	if !ok {
		return ""
	}
	value, _, _ := strings.Cut(rest, " ")
	return strings.Trim(value, `"`)
}

// The canary: a pod whose every ingress a NetworkPolicy denies, and a prober pod that tries it. The
// enforcer is live once the canary refuses the prober.
const canaryNamespace = "dataplane-canary"

// Canary creates the canary, its policy and the prober.
func (c *Cluster) Canary(ctx context.Context) (prober, canary *Pod, err error) {
	prober = &Pod{Namespace: canaryNamespace, Name: "prober", Labels: map[string]string{"app": "prober"}}
	canary = &Pod{Namespace: canaryNamespace, Name: "canary", Labels: map[string]string{"app": "canary"},
		Ports: []Port{{Number: 80, Protocol: corev1.ProtocolTCP}}}
	if err := c.AddPods(ctx, prober, canary); err != nil {
		return nil, nil, err
	}
	deny := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: canaryNamespace, Name: "canary-deny-ingress"},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: canary.Labels},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	}
	if err := c.Client.Create(ctx, deny); client.IgnoreAlreadyExists(err) != nil {
		return nil, nil, err
	}
	return prober, canary, nil
}

// WaitEnforcing waits until the canary refuses the prober, or says the enforcer enforces nothing.
func (c *Cluster) WaitEnforcing(prober, canary *Pod, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if !Dial(prober.Slot, canary.Slot.IP, canary.Ports[0], 300*time.Millisecond) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	log := ""
	if e := c.currentEnforcer(); e != nil {
		log = strings.Join(e.log.Lines("error"), "\n")
	}
	return fmt.Errorf("the enforcer still lets a connection its NetworkPolicy forbids through after %s: it enforces nothing (a dead enforcer); its errors:\n%s", within, log)
}

// TimeToVerdict makes a change and returns how long it took until new connections got the
// verdict the probe wants: probes start every 10 ms after the change begins, and the answer is
// the start of the first of three probes in a row with that verdict.
func TimeToVerdict(p Probe, change func() error, within time.Duration) (time.Duration, error) {
	const every, confirm = 10 * time.Millisecond, 3
	start := time.Now()
	if err := change(); err != nil {
		return 0, err
	}
	type sample struct {
		at   time.Duration
		done bool
		ok   bool
	}
	var (
		mu      sync.Mutex
		samples []*sample
	)
	for time.Since(start) < within {
		s := &sample{at: time.Since(start)}
		mu.Lock()
		samples = append(samples, s)
		mu.Unlock()
		go func() {
			ok := Dial(p.From.Slot, p.To.Slot.IP, p.Port, 250*time.Millisecond)
			mu.Lock()
			s.ok, s.done = ok, true
			mu.Unlock()
		}()
		time.Sleep(every)
		mu.Lock()
		run, first := 0, time.Duration(0)
		for _, s := range samples {
			if !s.done {
				break
			}
			if s.ok != p.Want {
				run = 0
				continue
			}
			if run == 0 {
				first = s.at
			}
			if run++; run == confirm {
				mu.Unlock()
				return first, nil
			}
		}
		mu.Unlock()
	}
	return 0, fmt.Errorf("%s: still not %s %s after the change", p, verdict(p.Want), within)
}
