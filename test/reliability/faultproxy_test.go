package reliability

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// Faults the proxy injects, in equal shares.
const (
	faultInternal = "500"
	faultThrottle = "429"
	faultConflict = "409"
	faultReset    = "reset"
)

var faultKinds = []string{faultInternal, faultThrottle, faultConflict, faultReset}

// faultProxy is a reverse proxy in front of the API server that answers a share of the requests
// itself with an error, or resets their connection, and delays the others. Watches pass through
// untouched: they are long-lived streams, and breaking them tests client-go's reflector rather
// than the operator.
type faultProxy struct {
	server   *httptest.Server
	proxy    *httputil.ReverseProxy
	rate     atomic.Uint64 // share of non-watch requests that fail, in thousandths
	latency  time.Duration // each non-watch request is delayed by up to this much
	mu       sync.Mutex
	rng      *rand.Rand
	requests atomic.Int64
	writes   atomic.Int64 // non-read requests passed on to the API server, Events aside
	faults   sync.Map     // kind → *atomic.Int64
}

// newFaultProxy proxies to the API server of upstream with upstream's TLS settings and
// credentials; the proxy itself serves plain HTTP on 127.0.0.1 and asks for no credentials.
func newFaultProxy(upstream *rest.Config, seed uint64, rate float64, latency time.Duration) *faultProxy {
	GinkgoHelper()
	target, err := url.Parse(upstream.Host)
	Expect(err).NotTo(HaveOccurred())
	transport, err := rest.TransportFor(upstream)
	Expect(err).NotTo(HaveOccurred())
	p := &faultProxy{latency: latency, rng: rand.New(rand.NewPCG(seed, seed))}
	p.setRate(rate)
	p.proxy = &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target) },
		Transport:     transport,
		FlushInterval: -1, // stream watch events as they come
	}
	p.server = httptest.NewServer(p)
	DeferCleanup(p.server.Close)
	return p
}

// config is a rest.Config that reaches the API server through the proxy.
func (p *faultProxy) config() *rest.Config {
	return &rest.Config{Host: p.server.URL, QPS: -1}
}

func (p *faultProxy) setRate(rate float64) { p.rate.Store(uint64(rate * 1000)) }

// count is how many faults of a kind were injected (all kinds when kind is "").
func (p *faultProxy) count(kind string) int64 {
	var n int64
	p.faults.Range(func(k, v any) bool {
		if kind == "" || k == kind {
			n += v.(*atomic.Int64).Load()
		}
		return true
	})
	return n
}

// decide draws the fate of one request: a delay, and a fault kind or "".
func (p *faultProxy) decide() (time.Duration, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delay := time.Duration(p.rng.Int64N(int64(p.latency) + 1))
	if p.rng.Uint64N(1000) >= p.rate.Load() {
		return delay, ""
	}
	return delay, faultKinds[p.rng.IntN(len(faultKinds))]
}

func isWatch(r *http.Request) bool {
	w := r.URL.Query().Get("watch")
	return w == "true" || w == "1" || strings.Contains(r.URL.Path, "/watch/")
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	if isWatch(r) {
		p.proxy.ServeHTTP(w, r)
		return
	}
	delay, fault := p.decide()
	time.Sleep(delay) // the injected latency
	if fault == "" {
		// Events are left out: the recorder re-sends ones that failed, on its own schedule.
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !strings.Contains(r.URL.Path, "/events") {
			p.writes.Add(1)
		}
		p.proxy.ServeHTTP(w, r)
		return
	}
	n, _ := p.faults.LoadOrStore(fault, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
	switch fault {
	case faultInternal:
		writeStatus(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, "injected fault: internal error")
	case faultThrottle:
		w.Header().Set("Retry-After", "1")
		writeStatus(w, http.StatusTooManyRequests, metav1.StatusReasonTooManyRequests, "injected fault: too many requests")
	case faultConflict:
		writeStatus(w, http.StatusConflict, metav1.StatusReasonConflict, "injected fault: the object has been modified; please apply your changes to the latest version and try again")
	case faultReset:
		// Close the connection without an answer; SO_LINGER 0 makes it a TCP reset.
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(fmt.Sprintf("hijacking: %v", err))
		}
		if tcp, ok := conn.(*net.TCPConn); ok {
			_ = tcp.SetLinger(0)
		}
		_ = conn.Close()
	}
}

// writeStatus answers like the API server does: a metav1.Status in JSON.
func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(&metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Code: int32(code), Reason: reason, Message: msg,
	})
}
