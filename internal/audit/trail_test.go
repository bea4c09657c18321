package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// The trail is added to the manager as a Runnable that runs on the leader.
var (
	_ manager.Runnable               = (*Trail)(nil)
	_ manager.LeaderElectionRunnable = (*Trail)(nil)
	_ Sink                           = (*Trail)(nil)
	_ Sink                           = Nop
)

// collector is a webhook endpoint that records what it receives and answers with respond.
type collector struct {
	mu       sync.Mutex
	requests []received
	respond  func(n int, w http.ResponseWriter, r *http.Request) // n counts requests from 1
}

type received struct {
	at          time.Time
	contentType string
	header      http.Header
	body        []byte
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.requests = append(c.requests, received{at: time.Now(), contentType: r.Header.Get("Content-Type"), header: r.Header.Clone(), body: body})
	n := len(c.requests)
	c.mu.Unlock()
	if c.respond != nil {
		c.respond(n, w, r)
		return
	}
	w.WriteHeader(http.StatusCreated) // Fluent Bit's http input answers 201
}

func (c *collector) received() []received {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.requests)
}

// records decodes every record received so far, each body being a JSON array of records.
func (c *collector) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range c.received() {
		var batch []map[string]any
		if err := json.Unmarshal(r.body, &batch); err != nil {
			t.Fatalf("body is not a JSON array of objects: %v\n%s", err, r.body)
		}
		out = append(out, batch...)
	}
	return out
}

func quiet() *logr.Logger {
	l := funcr.New(func(string, string) {}, funcr.Options{})
	return &l
}

// start runs the trail's sender; the returned function cancels it and waits until Start returns.
func start(t *testing.T, trail *Trail) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- trail.Start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Start() = %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Start did not return after its context was cancelled")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func value(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func dropped(t *testing.T, m *Metrics, reason string) float64 {
	return value(t, m.Dropped.WithLabelValues(reason))
}

func written(t *testing.T, m *Metrics, sink string) float64 {
	return value(t, m.Records.WithLabelValues(sink))
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func sample(i int) Record {
	return Record{Graph: graph, Revision: "abc123", Action: ActionCreate, Reason: "missing object created",
		Object: Object{Group: "networking.k8s.io", Version: "v1", Kind: "NetworkPolicy", Namespace: "shop", Name: fmt.Sprintf("np-%d", i)}}
}

func TestWebhookReceivesRecordsWithTheSchema(t *testing.T) {
	c := &collector{}
	srv := httptest.NewServer(c)
	defer srv.Close()
	m := NewMetrics()
	clock := time.Date(2026, 3, 4, 12, 0, 0, 5, time.UTC)
	trail, err := New(Options{WebhookURL: srv.URL + "/audit", Metrics: m, Logger: quiet(),
		Header: http.Header{"authorization": {"Bearer t0ken"}}, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	if !trail.WebhookEnabled() {
		t.Fatal("WebhookEnabled() = false with a URL")
	}
	start(t, trail)
	for i := range 3 {
		trail.Emit(context.Background(), sample(i))
	}
	eventually(t, "3 records at the collector", func() bool { return len(c.records(t)) == 3 })

	for _, r := range c.received() {
		if r.contentType != "application/json" {
			t.Errorf("Content-Type = %q, want application/json", r.contentType)
		}
		if got := r.header.Get("Authorization"); got != "Bearer t0ken" {
			t.Errorf("Authorization = %q, want the configured header", got)
		}
	}
	for i, got := range c.records(t) {
		want := map[string]any{
			"schemaVersion": "v1",
			"time":          "2026-03-04T12:00:00.000000005Z",
			"graph":         map[string]any{"namespace": "shop", "name": "shop", "uid": "0b7c", "generation": float64(4)},
			"revision":      "abc123",
			"object":        map[string]any{"group": "networking.k8s.io", "version": "v1", "kind": "NetworkPolicy", "namespace": "shop", "name": fmt.Sprintf("np-%d", i)},
			"action":        "create",
			"reason":        "missing object created",
			"operator":      "servicegraph-operator",
		}
		if diff := cmpJSON(want, got); diff != "" {
			t.Errorf("record %d: %s", i, diff)
		}
	}
	if got := written(t, m, SinkWebhook); got != 3 {
		t.Errorf("records_total{sink=webhook} = %v, want 3", got)
	}
	if got := written(t, m, SinkLog); got != 3 {
		t.Errorf("records_total{sink=log} = %v, want 3", got)
	}
}

func cmpJSON(want, got map[string]any) string {
	w, _ := json.Marshal(want)
	g, _ := json.Marshal(got)
	if !bytes.Equal(w, g) {
		return fmt.Sprintf("\n got: %s\nwant: %s", g, w)
	}
	return ""
}

func TestRecordsAreBatched(t *testing.T) {
	c := &collector{}
	srv := httptest.NewServer(c)
	defer srv.Close()
	trail, err := New(Options{WebhookURL: srv.URL, Metrics: NewMetrics(), Logger: quiet(), BatchSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 { // queued before the sender starts: it takes them in batches of 4
		trail.Emit(context.Background(), sample(i))
	}
	start(t, trail)
	eventually(t, "10 records", func() bool { return len(c.records(t)) == 10 })
	var sizes []int
	for _, r := range c.received() {
		var batch []Record
		if err := json.Unmarshal(r.body, &batch); err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(batch))
	}
	if !slices.Equal(sizes, []int{4, 4, 2}) {
		t.Errorf("batch sizes = %v, want [4 4 2]", sizes)
	}
	for i, r := range c.records(t) {
		if name := r["object"].(map[string]any)["name"]; name != fmt.Sprintf("np-%d", i) {
			t.Errorf("record %d is %v: order lost", i, name)
		}
	}
}

func TestFailingSinkIsRetriedWithBackoffThenDropped(t *testing.T) {
	c := &collector{respond: func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}}
	srv := httptest.NewServer(c)
	defer srv.Close()
	m := NewMetrics()
	trail, err := New(Options{WebhookURL: srv.URL, Metrics: m, Logger: quiet(),
		MaxAttempts: 4, BackoffBase: 20 * time.Millisecond, BackoffMax: 60 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start(t, trail)
	trail.Emit(context.Background(), sample(0))
	trail.Emit(context.Background(), sample(1)) // likely in the same batch; counted either way
	eventually(t, "2 records dropped as send_failed", func() bool { return dropped(t, m, DropSendFailed) == 2 })

	reqs := c.received()
	batches := map[string][]time.Time{}
	for _, r := range reqs {
		batches[string(r.body)] = append(batches[string(r.body)], r.at)
	}
	var retries int
	for body, at := range batches {
		if len(at) != 4 {
			t.Errorf("batch %s sent %d times, want MaxAttempts = 4", body, len(at))
		}
		retries += len(at) - 1
		// Nominal waits 20, 40, 60 (capped) ms; jitter keeps at least half of each.
		for i, min := range []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 30 * time.Millisecond} {
			if i+1 < len(at) {
				if gap := at[i+1].Sub(at[i]); gap < min {
					t.Errorf("wait before retry %d = %v, want at least %v", i+1, gap, min)
				}
			}
		}
	}
	if got := value(t, m.Retries); got != float64(retries) || retries == 0 {
		t.Errorf("webhook_retries_total = %v, want %d (> 0)", got, retries)
	}
	if got := written(t, m, SinkWebhook); got != 0 {
		t.Errorf("records_total{sink=webhook} = %v, want 0", got)
	}
}

func TestSinkThatIsDownIsRetriedThenDropped(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more: connection refused
	m := NewMetrics()
	trail, err := New(Options{WebhookURL: url, Metrics: m, Logger: quiet(), MaxAttempts: 3, BackoffBase: time.Millisecond, BackoffMax: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start(t, trail)
	trail.Emit(context.Background(), sample(0))
	eventually(t, "the record dropped as send_failed", func() bool { return dropped(t, m, DropSendFailed) == 1 })
	if got := value(t, m.Retries); got != 2 {
		t.Errorf("webhook_retries_total = %v, want 2", got)
	}
}

func TestSinkThatRecoversGetsTheRecord(t *testing.T) {
	c := &collector{respond: func(n int, w http.ResponseWriter, _ *http.Request) {
		if n <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}}
	srv := httptest.NewServer(c)
	defer srv.Close()
	m := NewMetrics()
	trail, err := New(Options{WebhookURL: srv.URL, Metrics: m, Logger: quiet(), BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start(t, trail)
	trail.Emit(context.Background(), sample(0))
	eventually(t, "the record delivered", func() bool { return written(t, m, SinkWebhook) == 1 })
	if got := value(t, m.Retries); got != 2 {
		t.Errorf("webhook_retries_total = %v, want 2", got)
	}
	for _, reason := range []string{DropQueueFull, DropSendFailed, DropShutdown} {
		if got := dropped(t, m, reason); got != 0 {
			t.Errorf("dropped_total{reason=%s} = %v, want 0", reason, got)
		}
	}
}

func TestRefusedRecordsAreNotRetried(t *testing.T) {
	c := &collector{respond: func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadRequest) }}
	srv := httptest.NewServer(c)
	defer srv.Close()
	m := NewMetrics()
	trail, err := New(Options{WebhookURL: srv.URL, Metrics: m, Logger: quiet(), BackoffBase: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start(t, trail)
	trail.Emit(context.Background(), sample(0))
	eventually(t, "the record dropped", func() bool { return dropped(t, m, DropSendFailed) == 1 })
	if n := len(c.received()); n != 1 {
		t.Errorf("a 400 was retried: %d requests, want 1", n)
	}
	if got := value(t, m.Retries); got != 0 {
		t.Errorf("webhook_retries_total = %v, want 0", got)
	}
}

// TestSlowSinkNeverBlocksEmit holds the collector's answer while the queue fills: Emit keeps
// returning at once, and what does not fit is counted, not waited for.
func TestSlowSinkNeverBlocksEmit(t *testing.T) {
	inFlight := make(chan struct{}, 1)
	release := make(chan struct{})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	c := &collector{respond: func(_ int, w http.ResponseWriter, r *http.Request) {
		select {
		case inFlight <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
	}}
	srv := httptest.NewServer(c)
	defer srv.Close()
	defer free()
	m := NewMetrics()
	const queue = 5
	trail, err := New(Options{WebhookURL: srv.URL, Metrics: m, Logger: quiet(), QueueSize: queue, BatchSize: 1, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	start(t, trail)
	trail.Emit(context.Background(), sample(0))
	<-inFlight // the sender holds record 0 and waits for the collector

	const more = 200
	emitted := make(chan time.Duration)
	go func() {
		var slowest time.Duration
		for i := 1; i <= more; i++ {
			began := time.Now()
			trail.Emit(context.Background(), sample(i))
			slowest = max(slowest, time.Since(began))
		}
		emitted <- slowest
	}()
	select {
	case slowest := <-emitted:
		// Milliseconds, not the collector's minute-long POST timeout; room left for a busy machine.
		if slowest > 25*time.Millisecond {
			t.Errorf("slowest Emit took %v while the collector hung: Emit must not wait for it", slowest)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Emit blocked while the collector hung")
	}
	if got := dropped(t, m, DropQueueFull); got != more-queue {
		t.Errorf("dropped_total{reason=queue_full} = %v, want %d", got, more-queue)
	}
	if got := written(t, m, SinkLog); got != more+1 {
		t.Errorf("records_total{sink=log} = %v, want %d: every record is logged, dropped or not", got, more+1)
	}
	free() // the collector answers again
	eventually(t, "the queued records delivered", func() bool { return written(t, m, SinkWebhook) == 1+queue })
}

func TestCancelStopsTheSender(t *testing.T) {
	hung := make(chan struct{})
	defer close(hung)
	c := &collector{respond: func(_ int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-hung:
		case <-r.Context().Done():
		}
	}}
	srv := httptest.NewServer(c)
	defer srv.Close()
	m := NewMetrics()
	trail, err := New(Options{WebhookURL: srv.URL, Metrics: m, Logger: quiet(), Timeout: time.Minute, FlushTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, trail)
	trail.Emit(context.Background(), sample(0))
	eventually(t, "the POST in flight", func() bool { return len(c.received()) == 1 })

	began := time.Now()
	stop() // fails the test if Start does not return
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("Start took %v to return after cancel with a hung collector, want about FlushTimeout", took)
	}
	if got := dropped(t, m, DropShutdown); got != 1 {
		t.Errorf("dropped_total{reason=shutdown} = %v, want 1 (the record the hung collector never accepted)", got)
	}
	// Stopped: records are still logged, and counted as dropped for the webhook.
	trail.Emit(context.Background(), sample(1))
	if got := dropped(t, m, DropShutdown); got != 2 {
		t.Errorf("dropped_total{reason=shutdown} after Emit on a stopped trail = %v, want 2", got)
	}
	if got := written(t, m, SinkLog); got != 2 {
		t.Errorf("records_total{sink=log} = %v, want 2", got)
	}
	if err := trail.Start(context.Background()); err == nil {
		t.Error("a second Start succeeded")
	}
}

func TestShutdownFlushesTheQueue(t *testing.T) {
	c := &collector{}
	srv := httptest.NewServer(c)
	defer srv.Close()
	m := NewMetrics()
	trail, err := New(Options{WebhookURL: srv.URL, Metrics: m, Logger: quiet(), BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		trail.Emit(context.Background(), sample(i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the manager is already stopping when the sender gets to run
	if err := trail.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(c.records(t)); got != 5 {
		t.Errorf("%d records delivered at shutdown, want 5", got)
	}
	if got := dropped(t, m, DropShutdown); got != 0 {
		t.Errorf("dropped_total{reason=shutdown} = %v, want 0", got)
	}
}

func TestWithoutWebhookOnlyLogs(t *testing.T) {
	m := NewMetrics()
	trail, err := New(Options{Metrics: m, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if trail.WebhookEnabled() {
		t.Error("WebhookEnabled() = true without a URL")
	}
	stop := start(t, trail)
	for i := range 3000 { // more than any queue: nothing is queued, nothing dropped
		trail.Emit(context.Background(), sample(i))
	}
	stop()
	if got := written(t, m, SinkLog); got != 3000 {
		t.Errorf("records_total{sink=log} = %v, want 3000", got)
	}
	for _, reason := range []string{DropQueueFull, DropSendFailed, DropShutdown} {
		if got := dropped(t, m, reason); got != 0 {
			t.Errorf("dropped_total{reason=%s} = %v, want 0", reason, got)
		}
	}
}

// TestLogLine checks the log stream with the manager's own production logger: JSON lines under
// the logger "audit", the record whole under "record", and no sampling of a burst of records
// (controller-runtime's production logger keeps only 1 in 100 of a message repeated more than
// 100 times a second).
func TestLogLine(t *testing.T) {
	var buf syncBuffer
	log := zap.New(zap.WriteTo(&buf)) // production defaults: JSON, info level, sampling on
	trail, err := New(Options{Metrics: NewMetrics(), Logger: &log})
	if err != nil {
		t.Fatal(err)
	}
	const burst = 500
	for i := range burst {
		trail.Emit(context.Background(), sample(i))
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != burst {
		t.Fatalf("%d log lines for %d records: the logger dropped some", len(lines), burst)
	}
	var line struct {
		Level  string `json:"level"`
		Logger string `json:"logger"`
		Msg    string `json:"msg"`
		Record Record `json:"record"`
	}
	if err := json.Unmarshal([]byte(lines[7]), &line); err != nil {
		t.Fatalf("log line is not JSON: %v\n%s", err, lines[7])
	}
	if line.Logger != "audit" || line.Level != "info" || line.Msg != "create NetworkPolicy shop/np-7" {
		t.Errorf("logger, level, msg = %q, %q, %q; want audit, info, create NetworkPolicy shop/np-7\n%s", line.Logger, line.Level, line.Msg, lines[7])
	}
	want := sample(7)
	want.SchemaVersion, want.Operator, want.Time = SchemaVersion, Operator, line.Record.Time
	if line.Record != want || line.Record.Time.IsZero() {
		t.Errorf("logged record = %+v, want %+v", line.Record, want)
	}
	// The raw form is nested JSON under "record", as docs/audit.md shows.
	if !strings.Contains(lines[7], `"record":{"schemaVersion":"v1","time":"`) {
		t.Errorf("record not logged as a JSON object: %s", lines[7])
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestNewRefusesBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"relative URL", Options{WebhookURL: "/audit"}},
		{"no scheme", Options{WebhookURL: "collector:9880"}},
		{"other scheme", Options{WebhookURL: "ftp://collector/audit"}},
		{"no host", Options{WebhookURL: "http:///audit"}},
		{"unparsable", Options{WebhookURL: "http://[::1"}},
		{"negative queue", Options{WebhookURL: "http://collector", QueueSize: -1}},
		{"negative timeout", Options{Timeout: -time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Metrics, tc.opts.Logger = NewMetrics(), quiet()
			if _, err := New(tc.opts); err == nil {
				t.Errorf("New(%+v) succeeded", tc.opts)
			}
		})
	}
	trail, err := New(Options{WebhookURL: "https://collector.example:9880/audit?tag=sg", Metrics: NewMetrics(), Logger: quiet()})
	if err != nil || !trail.WebhookEnabled() {
		t.Errorf("New with an https URL: %v", err)
	}
	if cap(trail.queue) != DefaultQueueSize {
		t.Errorf("queue capacity = %d, want the default %d", cap(trail.queue), DefaultQueueSize)
	}
}

func TestBackoff(t *testing.T) {
	trail := &Trail{base: 100 * time.Millisecond, limit: time.Second}
	for _, tc := range []struct {
		attempt    int
		retryAfter time.Duration
		lo, hi     time.Duration
	}{
		{1, 0, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 0, 100 * time.Millisecond, 200 * time.Millisecond},
		{3, 0, 200 * time.Millisecond, 400 * time.Millisecond},
		{5, 0, 500 * time.Millisecond, time.Second}, // 1.6 s capped at 1 s
		{60, 0, 500 * time.Millisecond, time.Second},
		{1, 700 * time.Millisecond, 700 * time.Millisecond, 700 * time.Millisecond}, // Retry-After wins
		{1, time.Hour, time.Second, time.Second},                                    // up to the cap
	} {
		for range 50 {
			if d := trail.backoff(tc.attempt, tc.retryAfter); d < tc.lo || d > tc.hi {
				t.Errorf("backoff(%d, %v) = %v, want within [%v, %v]", tc.attempt, tc.retryAfter, d, tc.lo, tc.hi)
				break
			}
		}
	}
}

func TestRegisterMetrics(t *testing.T) {
	if err := RegisterMetrics(); err != nil {
		t.Fatal(err)
	}
	if err := RegisterMetrics(); err != nil {
		t.Errorf("second RegisterMetrics() = %v, want the first call's nil", err)
	}
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"servicegraph_audit_records_total":         {"log", "webhook"},
		"servicegraph_audit_dropped_total":         {"queue_full", "send_failed", "shutdown"},
		"servicegraph_audit_webhook_retries_total": nil,
	}
	for _, f := range families {
		labels, ok := want[f.GetName()]
		if !ok {
			continue
		}
		delete(want, f.GetName())
		var got []string
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				got = append(got, l.GetValue())
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, labels) {
			t.Errorf("%s series %v, want %v at zero from the start", f.GetName(), got, labels)
		}
	}
	if len(want) > 0 {
		t.Errorf("not on controller-runtime's registry: %v", want)
	}
}
