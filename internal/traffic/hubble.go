package traffic

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Hubble reads Cilium's Hubble flows as `hubble observe -o json` or `-o jsonpb` writes them, and as
// Hubble's exporter logs them: one JSON object per line (a pretty-printed stream, as jq writes it,
// works too), either the GetFlowsResponse wrapper {"flow":{...},"node_name":...,"time":...} or a
// bare flow (cilium/cilium api/v1/flow/flow.proto).
//
// What a flow becomes:
//   - ends: the endpoints' namespace, their pods' labels (the "k8s:" ones, without Cilium's own),
//     the ServiceAccount from Cilium's label io.cilium.k8s.policy.serviceaccount, the workload
//     from workloads[] (else the pod's name), the address from IP.source/destination;
//   - port: l4's TCP, UDP or SCTP destination_port, exact (ICMP and events without l4 have none
//     and are skipped);
//   - direction: is_reply flows (and L7 responses) are the answer of a connection already
//     counted the other way round, and are skipped;
//   - count: TCP, UDP and SCTP connections are counted once per 5-tuple, not per SYN: a capture
//     that began after a connection opened, or a field mask without flags, still counts it, and
//     the several flows Cilium reports per connection (SYN, ACK, FIN, at each observation point)
//     count once; HTTP requests (L7 flows) are counted each;
//   - verdict: DROPPED (and ERROR) flows are kept: a refused flow is still a connection someone
//     tried, which discover must show and audit must judge; an edge only ever seen refused says so
//     in its evidence ("every attempt refused: DROPPED POLICY_DENIED"). AUDIT, REDIRECTED and the
//     others passed;
//   - security: Hubble does not see mutual TLS, so Unknown;
//   - the node's own connections (identity 1, reserved:host: the kubelet's probes) are skipped:
//     NetworkPolicies always allow them, and they are no edge of the graph.
//
// Socket-translation events (Type SOCK) are skipped: they show the Service address before the
// translation, not the pod's port.
type Hubble struct {
	Files []string
	// Warn receives one line per file on the flows skipped (nil: none).
	Warn io.Writer
	// Stdin is what "-" reads (nil: the process's).
	Stdin io.Reader
}

// Flows reads every file and adds up the flows into or out of the namespaces (all when none).
func (h *Hubble) Flows(ctx context.Context, namespaces []string) ([]Flow, error) {
	t := newTally("hubble")
	for _, name := range h.Files {
		skipped := map[string]int{}
		err := readRecords(ctx, name, h.Stdin, func(line int, rec []byte, isJSON bool) error {
			if !isJSON {
				return fmt.Errorf("%s:%d: not a JSON flow: write flows with `hubble observe -o json` (or -o jsonpb), not the compact or table output", name, line)
			}
			var f hubbleFlow
			if err := decodeHubble(rec, &f); err != nil {
				return fmt.Errorf("%s:%d: %w", name, line, err)
			}
			if why := t.addHubble(&f, namespaces); why != "" {
				skipped[why]++
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		warnSkipped(h.Warn, "hubble", name, skipped)
	}
	return t.result(), nil
}

// hubbleFlow is the part of a flow read. Its JSON tags are the field names without underscores:
// foldKeys makes both spellings protojson writes (proto names like destination_port, lowerCamelCase
// like destinationPort) into the one encoding/json matches case-insensitively.
type hubbleFlow struct {
	Time       protoTime `json:"time"`
	Verdict    protoEnum `json:"verdict"`
	DropReason protoEnum `json:"dropreasondesc"`
	IP         struct {
		Source      string `json:"source"`
		Destination string `json:"destination"`
	} `json:"ip"`
	L4 struct {
		TCP  *hubblePorts `json:"tcp"`
		UDP  *hubblePorts `json:"udp"`
		SCTP *hubblePorts `json:"sctp"`
	} `json:"l4"`
	Source      hubbleEndpoint `json:"source"`
	Destination hubbleEndpoint `json:"destination"`
	Type        protoEnum      `json:"type"`
	L7          *struct {
		Type protoEnum `json:"type"`
		HTTP *struct {
			Method string `json:"method"`
			URL    string `json:"url"`
		} `json:"http"`
	} `json:"l7"`
	IsReply protoBool `json:"isreply"`
	// Reply is the deprecated field older agents still write.
	Reply bool `json:"reply"`
}

type hubblePorts struct {
	SourcePort      uint32 `json:"sourceport"`
	DestinationPort uint32 `json:"destinationport"`
}

type hubbleEndpoint struct {
	Identity  uint32   `json:"identity"`
	Namespace string   `json:"namespace"`
	Labels    []string `json:"labels"`
	PodName   string   `json:"podname"`
	Workloads []struct {
		Name string `json:"name"`
		Kind string `json:"kind"`
	} `json:"workloads"`
}

// Enum names by number (flow.proto), for producers that write enums as numbers.
var (
	verdictNames  = []string{"VERDICT_UNKNOWN", "FORWARDED", "DROPPED", "ERROR", "AUDIT", "REDIRECTED", "TRACED", "TRANSLATED"}
	flowTypeNames = []string{"UNKNOWN_TYPE", "L3_L4", "L7", "SOCK"}
	l7TypeNames   = []string{"UNKNOWN_L7_TYPE", "REQUEST", "RESPONSE", "SAMPLE"}
)

// reservedHost is Cilium's identity of the local node (pkg/identity: ReservedIdentityHost).
const reservedHost = 1

// decodeHubble reads one record: the GetFlowsResponse wrapper or a bare flow.
func decodeHubble(rec []byte, f *hubbleFlow) error {
	rec = foldKeys(rec)
	var wrapper struct {
		Flow json.RawMessage `json:"flow"`
		Time protoTime       `json:"time"`
	}
	if err := json.Unmarshal(rec, &wrapper); err != nil {
		return err
	}
	if len(wrapper.Flow) > 0 && string(wrapper.Flow) != "null" {
		rec = wrapper.Flow
	}
	if err := json.Unmarshal(rec, f); err != nil {
		return err
	}
	if f.Time.IsZero() {
		f.Time = wrapper.Time
	}
	return nil
}

// addHubble adds one flow; it says why when it skips it.
func (t *tally) addHubble(f *hubbleFlow, namespaces []string) string {
	proto, ports := corev1.ProtocolTCP, f.L4.TCP
	switch {
	case f.L4.UDP != nil:
		proto, ports = corev1.ProtocolUDP, f.L4.UDP
	case f.L4.SCTP != nil:
		proto, ports = corev1.ProtocolSCTP, f.L4.SCTP
	}
	reply := f.Reply
	if f.IsReply.Set {
		reply = f.IsReply.Value
	}
	switch {
	case reply || f.L7 != nil && f.L7.Type.Name(l7TypeNames) == "RESPONSE":
		return "replies"
	case f.Type.Name(flowTypeNames) == "SOCK":
		return "socket-translation events"
	case ports == nil || ports.DestinationPort == 0 || ports.DestinationPort > 65535:
		return "without a port (ICMP, or not a flow)"
	case f.Source.Identity == reservedHost || slices.Contains(f.Source.Labels, "reserved:host"):
		return "from the node itself (kubelet probes: NetworkPolicies always allow them)"
	}
	from, to := hubbleParty(f.Source, f.IP.Source), hubbleParty(f.Destination, f.IP.Destination)
	if len(namespaces) > 0 && !containsAny(namespaces, from.Namespace, to.Namespace) {
		return "of other namespaces"
	}
	o := observation{
		flow:  Flow{From: from, To: to, Protocol: proto, Port: int32(ports.DestinationPort), Source: "hubble", First: f.Time.Time, Last: f.Time.Time},
		tuple: fmt.Sprintf("%s|%d|%s|%d", f.IP.Source, ports.SourcePort, f.IP.Destination, ports.DestinationPort),
	}
	if f.L7 != nil && f.L7.HTTP != nil && f.L7.Type.Name(l7TypeNames) != "SAMPLE" {
		o.method, o.path, o.request = f.L7.HTTP.Method, urlPath(f.L7.HTTP.URL), true
	}
	if v := f.Verdict.Name(verdictNames); v == "DROPPED" || v == "ERROR" {
		o.refused = strings.TrimSpace(v + " " + f.DropReason.Name(nil))
	}
	t.add(o)
	return ""
}

func containsAny(list []string, values ...string) bool {
	for _, v := range values {
		for _, l := range list {
			if v != "" && v == l {
				return true
			}
		}
	}
	return false
}

// hubbleParty reads an endpoint: a pod of the cluster, or (a reserved identity: world, host) an
// address.
func hubbleParty(ep hubbleEndpoint, ip string) Party {
	p := Party{Namespace: ep.Namespace, IP: ip}
	for _, l := range ep.Labels {
		source, kv, ok := strings.Cut(l, ":")
		k, v, hasValue := strings.Cut(kv, "=")
		if !ok || !hasValue || source != "k8s" {
			continue // reserved:world, cidr:..., container:...: not a pod label
		}
		switch {
		case k == "io.cilium.k8s.policy.serviceaccount":
			p.ServiceAccount = v
		case k == "io.kubernetes.pod.namespace":
			if p.Namespace == "" {
				p.Namespace = v // a field mask kept the labels but not the namespace
			}
		case strings.HasPrefix(k, "io.cilium.k8s."):
			// Cilium's own: the namespace's labels, the cluster
		default:
			if p.Labels == nil {
				p.Labels = map[string]string{}
			}
			p.Labels[k] = v
		}
	}
	if p.Namespace == "" {
		return Party{IP: ip}
	}
	p.Workload = ep.PodName
	if len(ep.Workloads) > 0 && ep.Workloads[0].Name != "" {
		p.Workload = ep.Workloads[0].Name
		if ep.Workloads[0].Kind == "ReplicaSet" {
			p.Workload = replicaSetOwner(p.Workload)
		}
	}
	return p
}

// podTemplateHash is the suffix a Deployment gives its ReplicaSets: the pod template's hash in
// Kubernetes' safe alphabet (k8s.io/apimachinery/pkg/util/rand.SafeEncodeString).
var podTemplateHash = regexp.MustCompile(`^(.+)-[bcdfghjklmnpqrstvwxz2456789]{6,10}$`)

// replicaSetOwner is the Deployment a ReplicaSet's name comes from (older agents name the
// ReplicaSet), so that the name is the one Istio and the inventory use.
func replicaSetOwner(name string) string {
	if m := podTemplateHash.FindStringSubmatch(name); m != nil {
		return m[1]
	}
	return name
}

// urlPath is an HTTP request's path without its query.
func urlPath(raw string) string {
	if u, err := url.Parse(raw); err == nil && (u.Scheme != "" || strings.HasPrefix(raw, "/")) {
		if p := u.EscapedPath(); p != "" {
			return p
		}
		return "/"
	}
	p, _, _ := strings.Cut(raw, "?")
	return p
}

// protoTime is a protobuf Timestamp in JSON: an RFC 3339 string (protojson), or {seconds, nanos}
// (a Go struct through encoding/json). An unreadable time is left zero: the window is informative.
type protoTime struct{ time.Time }

func (t *protoTime) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		t.Time, _ = time.Parse(time.RFC3339Nano, s)
		return nil
	}
	var ts struct{ Seconds, Nanos int64 }
	if json.Unmarshal(b, &ts) == nil && ts.Seconds > 0 {
		t.Time = time.Unix(ts.Seconds, ts.Nanos).UTC()
	}
	return nil
}

// protoEnum is an enum in JSON: its name (protojson) or its number.
type protoEnum struct {
	name   string
	number int
}

func (e *protoEnum) UnmarshalJSON(b []byte) error {
	if json.Unmarshal(b, &e.name) == nil {
		return nil
	}
	return json.Unmarshal(b, &e.number)
}

// Name is the enum's name, looked up by number when it was written as one.
func (e protoEnum) Name(names []string) string {
	if e.name != "" || e.number < 0 || e.number >= len(names) {
		return e.name
	}
	return names[e.number]
}

// protoBool is a BoolValue wrapper in JSON: a bare boolean (protojson) or {"value": bool}; Set
// tells it apart from an absent one.
type protoBool struct{ Set, Value bool }

func (p *protoBool) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var wrapped struct{ Value bool }
	if err := json.Unmarshal(b, &p.Value); err != nil {
		if err := json.Unmarshal(b, &wrapped); err != nil {
			return err
		}
		p.Value = wrapped.Value
	}
	p.Set = true
	return nil
}

// foldKeys removes the underscores from a JSON text's object keys (never from values).
func foldKeys(in []byte) []byte {
	if !bytes.Contains(in, []byte("_")) {
		return in
	}
	out := make([]byte, 0, len(in))
	for i := 0; i < len(in); i++ {
		if in[i] != '"' {
			out = append(out, in[i])
			continue
		}
		end := i + 1
		for end < len(in) && in[end] != '"' {
			if in[end] == '\\' {
				end++
			}
			end++
		}
		end = min(end, len(in)-1)
		next := end + 1
		for next < len(in) && (in[next] == ' ' || in[next] == '\t' || in[next] == '\n' || in[next] == '\r') {
			next++
		}
		if next < len(in) && in[next] == ':' {
			out = append(out, bytes.ReplaceAll(in[i:end+1], []byte("_"), nil)...)
		} else {
			out = append(out, in[i:end+1]...)
		}
		i = end
	}
	return out
}
