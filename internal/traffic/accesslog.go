package traffic

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// AccessLog reads Envoy's access logs from Istio's sidecars: JSON lines with the keys of Istio's
// default JSON format (meshConfig.accessLogEncoding: JSON; istio/istio
// pilot/pkg/model/telemetry_logging.go EnvoyJSONLogFormatIstio), or lines of Istio's default text
// format (EnvoyTextLogFormat, the same file).
//
// Only a destination's own lines are read (upstream_cluster inbound|PORT|... or
// InboundPassthroughCluster): they carry the pod's address and port (downstream_local_address:
// the pod port NetworkPolicies and AuthorizationPolicies use, not the Service's), the caller's
// address (downstream_remote_address) and, when the format has it, the caller's certificate
// (PeerSANKey). A caller's outbound lines would count each request twice and name the Service, not
// the pod. Other lines (outbound, a gateway's, the proxy's own log) are skipped and counted.
//
// The caller is its principal when the format has PeerSANKey, else its address, which the
// inventory resolves to a pod. Security is mutual TLS when a peer certificate, or Istio's
// outbound_ SNI, is seen; plain text when PeerSANKey is in the format and empty (no Istio
// certificate: STRICT refuses it); unknown otherwise. Requests an AuthorizationPolicy refused
// (response_code_details rbac_access_denied...) are kept, like Hubble's dropped flows, and an
// edge only ever refused says so in its evidence.
type AccessLog struct {
	Files []string
	// Warn receives one line per file on the lines skipped (nil: none).
	Warn io.Writer
	// Stdin is what "-" reads (nil: the process's).
	Stdin io.Reader
}

// PeerSANKey is the JSON key read for the caller's certificate URI SAN: a format must add
// "downstream_peer_uri_san": "%DOWNSTREAM_PEER_URI_SAN%" (Istio's default format has no identity;
// see docs/traffic-sources.md).
const PeerSANKey = "downstream_peer_uri_san"

// accessLine is one access-log line, the fields read. null and "-" both mean empty.
type accessLine struct {
	StartTime        string    `json:"start_time"`
	Method           string    `json:"method"`
	Path             string    `json:"path"`
	UpstreamCluster  string    `json:"upstream_cluster"`
	DownstreamLocal  string    `json:"downstream_local_address"`
	DownstreamRemote string    `json:"downstream_remote_address"`
	ServerName       string    `json:"requested_server_name"`
	Details          string    `json:"response_code_details"`
	PeerSAN          optString `json:"downstream_peer_uri_san"`
}

// optString tells a key present with an empty value from an absent one.
type optString struct {
	Set   bool
	Value string
}

func (o *optString) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(b) == "null" {
		return nil
	}
	return json.Unmarshal(b, &o.Value)
}

// istioText reads Istio's default text format (EnvoyTextLogFormat): the time, the request line,
// then, after the last quoted field (%UPSTREAM_HOST%), upstream cluster, upstream local address,
// downstream local and remote addresses, SNI and route.
var istioText = regexp.MustCompile(`^\[([^\]]+)\] "(\S+) (\S+) [^"]*" .*"[^"]*" (\S+) \S+ (\S+) (\S+) (\S+) \S+$`)

// Flows reads every file; access logs name no namespace, so every inbound line is kept and the
// inventory places it.
func (a *AccessLog) Flows(ctx context.Context, _ []string) ([]Flow, error) {
	t := newTally("access-log")
	for _, name := range a.Files {
		skipped := map[string]int{}
		recognized, firstUnknown := 0, 0
		err := readRecords(ctx, name, a.Stdin, func(line int, rec []byte, isJSON bool) error {
			var l accessLine
			switch m := istioText.FindSubmatch(rec); {
			case isJSON:
				if err := json.Unmarshal(rec, &l); err != nil {
					return fmt.Errorf("%s:%d: %w", name, line, err)
				}
			case m != nil:
				l = accessLine{StartTime: string(m[1]), Method: string(m[2]), Path: string(m[3]), UpstreamCluster: string(m[4]),
					DownstreamLocal: string(m[5]), DownstreamRemote: string(m[6]), ServerName: string(m[7])}
			default:
				skipped["not an access-log line (neither JSON nor Istio's text format)"]++
				if firstUnknown == 0 {
					firstUnknown = line
				}
				return nil
			}
			recognized++
			if why := t.addAccess(l); why != "" {
				skipped[why]++
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if recognized == 0 && firstUnknown > 0 {
			return nil, fmt.Errorf("%s:%d: not an access-log line, and no line of the file is: write Istio's JSON (accessLogEncoding: JSON) or default text format", name, firstUnknown)
		}
		warnSkipped(a.Warn, "access log", name, skipped)
	}
	return t.result(), nil
}

// addAccess adds one line; it says why when it skips it.
func (t *tally) addAccess(l accessLine) string {
	if !strings.HasPrefix(l.UpstreamCluster, "inbound|") && !strings.HasPrefix(l.UpstreamCluster, "InboundPassthroughCluster") {
		return "not inbound (a caller's or a gateway's outbound line)"
	}
	host, port, err := net.SplitHostPort(l.DownstreamLocal)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil || n <= 0 || n > 65535 {
		return "without the destination's address"
	}
	from := Party{}
	if h, _, err := net.SplitHostPort(l.DownstreamRemote); err == nil {
		from.IP = h
	}
	f := Flow{From: from, To: Party{IP: host}, Protocol: corev1.ProtocolTCP, Port: int32(n), Count: 1, Source: "access-log"}
	switch san := peerPrincipal(dash(l.PeerSAN.Value)); {
	case san != "":
		f.From.Principal, f.Security = san, MutualTLS
	case strings.HasPrefix(l.ServerName, "outbound_"):
		f.Security = MutualTLS // Istio's client sidecar sets this SNI for ISTIO_MUTUAL only
	case l.PeerSAN.Set:
		f.Security = Plaintext
	}
	if ts, err := time.Parse(time.RFC3339Nano, l.StartTime); err == nil {
		f.First, f.Last = ts, ts
	}
	o := observation{flow: f}
	if method := dash(l.Method); method != "" {
		o.method, o.path, o.request = method, urlPath(dash(l.Path)), true
	}
	if strings.HasPrefix(l.Details, "rbac_access_denied") {
		o.refused = l.Details
	}
	t.add(o)
	return ""
}

// peerPrincipal is the caller's principal from its certificate's URI SANs (Envoy joins several
// with commas): the SPIFFE one, else the first.
func peerPrincipal(sans string) string {
	list := strings.Split(sans, ",")
	i := max(0, slices.IndexFunc(list, func(s string) bool { return strings.HasPrefix(strings.TrimSpace(s), semantics.SpiffePrefix) }))
	return strings.TrimPrefix(strings.TrimSpace(list[i]), semantics.SpiffePrefix)
}

// dash is Envoy's empty value ("-") as empty.
func dash(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

// Shared by the file sources (hubble.go too).

// fileArgs splits a file source's argument: files separated by commas, "-" for standard input.
// Each is checked now, so that a wrong name fails before any source is read.
func fileArgs(arg string) ([]string, error) {
	var files []string
	for _, f := range strings.Split(arg, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if f != "-" {
			if _, err := os.Stat(f); err != nil {
				return nil, err
			}
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		return nil, errors.New("no file named")
	}
	return files, nil
}

func openHubble(arg string, opts SourceOptions) (Source, error) {
	files, err := fileArgs(arg)
	return &Hubble{Files: files, Warn: opts.Warn, Stdin: opts.Stdin}, err
}

func openAccessLog(arg string, opts SourceOptions) (Source, error) {
	files, err := fileArgs(arg)
	return &AccessLog{Files: files, Warn: opts.Warn, Stdin: opts.Stdin}, err
}

// maxRecord bounds one JSON record (a flow is a few kilobytes): an object never closed is an error,
// not a file read into memory.
const maxRecord = 4 << 20

// readRecords calls fn with each record of a file and the line it starts on: a JSON object (one
// line, or several as jq pretty-prints them), or another non-blank line. A JSON object that does
// not parse is an error naming the file and line.
func readRecords(ctx context.Context, name string, stdin io.Reader, fn func(line int, rec []byte, isJSON bool) error) error {
	r := stdin
	if r == nil {
		r = os.Stdin
	}
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	start := 0
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("%s:%d: %w", name, n, err)
		}
		if n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		trimmed := bytes.TrimSpace(line)
		switch {
		case len(buf) > 0:
			buf = append(buf, line...)
		case len(trimmed) == 0:
		case trimmed[0] == '{':
			start, buf = n, append(buf, trimmed...)
		default:
			if ferr := fn(n, trimmed, false); ferr != nil {
				return ferr
			}
		}
		// A JSON object ends with "}": only then can the record be whole (its first line is checked
		// too, for text after an object).
		if len(buf) > 0 && (start == n || bytes.HasSuffix(trimmed, []byte("}"))) {
			done, jerr := wholeJSON(buf)
			switch {
			case jerr != nil:
				return fmt.Errorf("%s:%d: not JSON: %w", name, start, jerr)
			case done:
				if ferr := fn(start, buf, true); ferr != nil {
					return ferr
				}
				buf = buf[:0]
			}
		}
		if len(buf) > maxRecord {
			return fmt.Errorf("%s:%d: a JSON object of more than %d bytes", name, start, maxRecord)
		}
		if errors.Is(err, io.EOF) {
			if len(buf) > 0 {
				return fmt.Errorf("%s:%d: the JSON object that starts here does not end", name, start)
			}
			return nil
		}
	}
}

// wholeJSON tells whether buf is one whole JSON value; an error when it cannot become one.
func wholeJSON(buf []byte) (bool, error) {
	if json.Valid(buf) {
		return true, nil
	}
	dec := json.NewDecoder(bytes.NewReader(buf))
	var v json.RawMessage
	switch err := dec.Decode(&v); {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return false, nil // more lines to come
	case err != nil:
		return false, err
	}
	return false, fmt.Errorf("text after the JSON object at byte %d", dec.InputOffset())
}

func warnSkipped(w io.Writer, what, name string, skipped map[string]int) {
	if w == nil || len(skipped) == 0 {
		return
	}
	var parts []string
	for _, why := range slices.Sorted(maps.Keys(skipped)) {
		parts = append(parts, fmt.Sprintf("%d %s", skipped[why], why))
	}
	fmt.Fprintf(w, "%s %s: skipped %s\n", what, name, strings.Join(parts, ", "))
}

// maxPathsKept bounds the paths remembered per connection (discover lists at most maxPaths).
const maxPathsKept = 1000

// observation is one record a file source saw.
type observation struct {
	flow Flow
	// tuple identifies its connection (Hubble's 5-tuple), "" when each record is one.
	tuple string
	// request is an HTTP request, with its method and path.
	request      bool
	method, path string
	// refused says why the attempt was refused, "" when it passed.
	refused string
}

// tally adds up one source's observations per connection key (Flow.key: ends, protocol, port).
type tally struct {
	source string
	index  map[string]*counted
	order  []string
}

type counted struct {
	flow           Flow
	tuples         map[string]bool
	records        float64
	requests       float64
	paths, methods map[string]bool
	passed         bool
	refused        map[string]bool
}

func newTally(source string) *tally { return &tally{source: source, index: map[string]*counted{}} }

func (t *tally) add(o observation) {
	key := o.flow.key()
	c, ok := t.index[key]
	if !ok {
		c = &counted{flow: o.flow, tuples: map[string]bool{}, paths: map[string]bool{}, methods: map[string]bool{}, refused: map[string]bool{}}
		t.index[key] = c
		t.order = append(t.order, key)
	}
	if f := o.flow; !f.First.IsZero() {
		if c.flow.First.IsZero() || f.First.Before(c.flow.First) {
			c.flow.First = f.First
		}
		if f.Last.After(c.flow.Last) {
			c.flow.Last = f.Last
		}
	}
	if o.flow.Security == Plaintext || c.flow.Security == Unknown {
		c.flow.Security = cmp.Or(o.flow.Security, c.flow.Security)
	}
	if o.tuple != "" {
		c.tuples[o.tuple] = true
	} else {
		c.records++
	}
	if o.request {
		c.requests++
		if o.method != "" {
			c.methods[o.method] = true
		}
		if o.path != "" && len(c.paths) < maxPathsKept {
			c.paths[o.path] = true
		}
	}
	if o.refused == "" {
		c.passed = true
	} else {
		c.refused[o.refused] = true
	}
}

// result is one flow per connection key: connections counted per 5-tuple (or per record), HTTP
// requests each; an edge only ever refused says so in its Source, which discover's evidence shows.
func (t *tally) result() []Flow {
	out := make([]Flow, 0, len(t.order))
	for _, key := range t.order {
		c := t.index[key]
		f := c.flow
		f.Count = float64(len(c.tuples)) + c.records
		if c.requests > 0 {
			f.HTTP, f.Count = true, c.requests
			f.Paths, f.Methods = slices.Sorted(maps.Keys(c.paths)), slices.Sorted(maps.Keys(c.methods))
		}
		if !c.passed {
			f.Source = fmt.Sprintf("%s (every attempt refused: %s)", t.source, strings.Join(slices.Sorted(maps.Keys(c.refused)), ", "))
		}
		out = append(out, f)
	}
	return out
}
