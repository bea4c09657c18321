package traffic

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	promapi "github.com/prometheus/client_golang/api"
)

// Source reads the flows into or out of namespaces over a window.
type Source interface {
	Flows(ctx context.Context, namespaces []string) ([]Flow, error)
}

// SourceOptions are what every source may need besides its own argument.
type SourceOptions struct {
	// Window is how far back to look, Now when the window ends (zero: now).
	Window time.Duration
	Now    time.Time
	// BearerTokenFile and CAFile authenticate to an HTTP source.
	BearerTokenFile, CAFile string
	// Stdin is what a file source reads for "-"; Warn receives what it skipped.
	Stdin io.Reader
	Warn  io.Writer
}

// SourceKind is one kind of traffic source: the flag that names it and how to open it. Adding a
// source is one more entry.
type SourceKind struct {
	Flag, Usage string
	Open        func(arg string, opts SourceOptions) (Source, error)
}

// Sources are the kinds of traffic source, in the order the commands list them.
var Sources = []SourceKind{
	{Flag: "prometheus", Usage: "a Prometheus server's URL holding Istio's standard metrics (istio_requests_total, istio_tcp_connections_opened_total)", Open: openPrometheus},
	{Flag: "flows", Usage: "Hubble flows: files (comma-separated; - for standard input) written by 'hubble observe -o json' " +
		"(or -o jsonpb) or Hubble's exporter, read whole (--since does not apply): exact ports, pods' labels and ServiceAccounts; replies skipped, " +
		"dropped flows kept and marked", Open: openHubble},
	{Flag: "access-log", Usage: "Istio sidecars' access logs: files (comma-separated; - for standard input) in Istio's JSON " +
		"(accessLogEncoding: JSON) or default text format, read whole (--since does not apply); only the destinations' inbound " +
		"lines count. Callers are known by address unless the format adds \"" + PeerSANKey + "\": \"%DOWNSTREAM_PEER_URI_SAN%\" " +
		"(see docs/traffic-sources.md)", Open: openAccessLog},
}

func openPrometheus(url string, opts SourceOptions) (Source, error) {
	rt, err := httpTransport(opts)
	if err != nil {
		return nil, err
	}
	p, err := NewPrometheus(url, promapi.Config{RoundTripper: rt})
	if err != nil {
		return nil, err
	}
	p.Window, p.Now = opts.Window, opts.Now
	return promSource{p: p, rt: rt}, nil
}

// httpTransport trusts the CA file's certificates too and sends the token file's bearer token
// (read on every request: a mounted token rotates).
func httpTransport(opts SourceOptions) (http.RoundTripper, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, err
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no certificate", opts.CAFile)
		}
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if opts.BearerTokenFile == "" {
		return t, nil
	}
	if _, err := os.Stat(opts.BearerTokenFile); err != nil {
		return nil, err
	}
	return bearer{next: t, file: opts.BearerTokenFile}, nil
}

type bearer struct {
	next http.RoundTripper
	file string
}

func (b bearer) CloseIdleConnections() { closeIdle(b.next) }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	token, err := os.ReadFile(b.file)
	if err != nil {
		return nil, err
	}
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	return b.next.RoundTrip(r)
}

type promSource struct {
	p  *Prometheus
	rt http.RoundTripper
}

// Flows reads once and lets the connections go: a source is opened per command, and a process
// that runs many (tests, a long-lived tool) would keep every one idle.
func (s promSource) Flows(ctx context.Context, namespaces []string) ([]Flow, error) {
	defer closeIdle(s.rt)
	return s.p.Flows(ctx, namespaces, false)
}

func closeIdle(rt http.RoundTripper) {
	if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
