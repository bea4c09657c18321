package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

const (
	// LoggerName is the name of the logger every record is written under (the "logger" key of
	// the manager's JSON log lines). Nothing else logs under it.
	LoggerName = "audit"
	// LogKey is the key whose value is the whole record, as a JSON object, in every log line.
	LogKey = "record"
	// webhookLoggerName is the logger of the webhook sender's own messages (failures, drops), so
	// that a filter on LoggerName sees records only.
	webhookLoggerName = "audit-webhook"
)

// Defaults of Options.
const (
	DefaultQueueSize    = 1000
	DefaultBatchSize    = 100
	DefaultTimeout      = 10 * time.Second
	DefaultMaxAttempts  = 5
	DefaultBackoffBase  = 500 * time.Millisecond
	DefaultBackoffMax   = 30 * time.Second
	DefaultFlushTimeout = 5 * time.Second
)

// Sink receives the operator's audit records.
type Sink interface {
	// Emit writes one record. It never blocks on I/O other than the log's own write.
	Emit(ctx context.Context, rec Record)
}

// Nop is a Sink that drops every record.
var Nop Sink = nop{}

type nop struct{}

func (nop) Emit(context.Context, Record) {}

// Options configure a Trail. Zero values take the defaults.
type Options struct {
	// WebhookURL is an http(s) URL that records are POSTed to as JSON arrays; empty writes
	// records to the log only.
	WebhookURL string
	// Header is added to every POST (for example an Authorization header the collector wants).
	Header http.Header
	// QueueSize bounds the records waiting for the webhook; Emit drops a record when it is full.
	QueueSize int
	// BatchSize bounds the records of one POST.
	BatchSize int
	// Timeout bounds one POST, response included.
	Timeout time.Duration
	// MaxAttempts bounds the POSTs of one batch, the first included, before it is dropped.
	MaxAttempts int
	// BackoffBase is the wait before the first retry; it doubles with every retry (with jitter:
	// a wait is between half and all of its nominal value) up to BackoffMax. A Retry-After header
	// on a 429 or 503 answer is honoured up to BackoffMax.
	BackoffBase, BackoffMax time.Duration
	// FlushTimeout bounds how long Start goes on delivering queued records (one attempt per batch)
	// once its context is cancelled.
	FlushTimeout time.Duration
	// HTTPClient sends the POSTs; nil uses a client of its own with http.DefaultTransport.
	HTTPClient *http.Client
	// Logger is the logger records are written to, under LoggerName; nil uses controller-runtime's
	// logger (logf.Log), the one ctrl.SetLogger sets.
	Logger *logr.Logger
	// Metrics are the counters to update; nil uses DefaultMetrics, registered with RegisterMetrics.
	Metrics *Metrics
	// Now is the clock of records emitted without a time; nil is time.Now.
	Now func() time.Time
}

// Trail writes audit records to the log and, when a webhook URL is set, to an HTTP collector
// through a bounded queue that a background sender drains. It is a controller-runtime Runnable:
// add it to the manager (mgr.Add) so the sender starts and stops with the manager.
type Trail struct {
	log, webhookLog logr.Logger
	metrics         *Metrics
	now             func() time.Time

	url          string
	header       http.Header
	client       *http.Client
	queue        chan Record // nil without a webhook
	batchSize    int
	timeout      time.Duration
	attempts     int
	base, limit  time.Duration
	flushTimeout time.Duration

	started atomic.Bool
	// mu orders Emit's enqueue against the sender's final stop: once stopped is set, no record
	// enters the queue.
	mu      sync.RWMutex
	stopped bool
}

// New makes a Trail. It refuses a webhook URL that is not an absolute http or https URL, and
// negative sizes and durations.
func New(opts Options) (*Trail, error) {
	if opts.QueueSize < 0 || opts.BatchSize < 0 || opts.MaxAttempts < 0 || opts.Timeout < 0 ||
		opts.BackoffBase < 0 || opts.BackoffMax < 0 || opts.FlushTimeout < 0 {
		return nil, errors.New("audit: sizes and durations must not be negative")
	}
	t := &Trail{
		log:          logf.Log,
		metrics:      opts.Metrics,
		now:          opts.Now,
		header:       opts.Header.Clone(),
		client:       opts.HTTPClient,
		batchSize:    orDefault(opts.BatchSize, DefaultBatchSize),
		timeout:      orDefault(opts.Timeout, DefaultTimeout),
		attempts:     orDefault(opts.MaxAttempts, DefaultMaxAttempts),
		base:         orDefault(opts.BackoffBase, DefaultBackoffBase),
		limit:        orDefault(opts.BackoffMax, DefaultBackoffMax),
		flushTimeout: orDefault(opts.FlushTimeout, DefaultFlushTimeout),
	}
	if opts.Logger != nil {
		t.log = *opts.Logger
	}
	t.webhookLog = t.log.WithName(webhookLoggerName)
	t.log = t.log.WithName(LoggerName)
	if t.metrics == nil {
		t.metrics = DefaultMetrics
		if err := RegisterMetrics(); err != nil {
			return nil, fmt.Errorf("audit: registering metrics: %w", err)
		}
	}
	if t.now == nil {
		t.now = time.Now
	}
	if t.client == nil {
		t.client = &http.Client{}
	}
	if opts.WebhookURL != "" {
		u, err := url.Parse(opts.WebhookURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("audit: webhook URL %q is not an absolute http(s) URL", opts.WebhookURL)
		}
		t.url = u.String()
		t.queue = make(chan Record, orDefault(opts.QueueSize, DefaultQueueSize))
	}
	return t, nil
}

func orDefault[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// WebhookEnabled tells whether records also go to a webhook.
func (t *Trail) WebhookEnabled() bool { return t.queue != nil }

// Emit writes rec to the log and queues it for the webhook, filling in schemaVersion, operator
// and time when they are empty. It never waits for the webhook: with the queue full, or the trail
// stopped, the record is counted as dropped (it is in the log all the same).
//
// The log line's message is "<action> <Kind> <namespace>/<name>", distinct per object: the
// manager's production logger samples repeated messages (the first 100 per second, then one in
// 100), which a fixed message would make it do to a burst of records.
func (t *Trail) Emit(_ context.Context, rec Record) {
	rec = t.complete(rec)
	t.log.Info(fmt.Sprintf("%s %s %s/%s", rec.Action, rec.Object.Kind, rec.Object.Namespace, rec.Object.Name), LogKey, rec)
	t.metrics.Records.WithLabelValues(SinkLog).Inc()
	if t.queue == nil {
		return
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.stopped {
		t.metrics.Dropped.WithLabelValues(DropShutdown).Inc()
		return
	}
	select {
	case t.queue <- rec:
	default:
		t.metrics.Dropped.WithLabelValues(DropQueueFull).Inc()
	}
}

func (t *Trail) complete(rec Record) Record {
	if rec.SchemaVersion == "" {
		rec.SchemaVersion = SchemaVersion
	}
	if rec.Operator == "" {
		rec.Operator = Operator
	}
	if rec.Time.IsZero() {
		rec.Time = t.now()
	}
	rec.Time = rec.Time.UTC()
	return rec
}

// NeedLeaderElection is true: records come only from the reconcilers, which run on the leader
// alone, so the sender runs (and holds a connection to the collector) where they run, starts when
// they start and is stopped together with them. A standby replica sends nothing.
func (t *Trail) NeedLeaderElection() bool { return true }

// Start runs the webhook sender until ctx is cancelled, then delivers what is queued for up to
// FlushTimeout (one attempt per batch) and stops: records emitted after that are dropped. Without a
// webhook it only waits for ctx. It returns nil; a Trail starts once.
func (t *Trail) Start(ctx context.Context) error {
	if !t.started.CompareAndSwap(false, true) {
		return errors.New("audit: trail already started")
	}
	if t.queue == nil {
		<-ctx.Done()
		return nil
	}
	var pending []Record
	for pending == nil && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case rec := <-t.queue:
			if batch := t.collect(rec); !t.deliver(ctx, batch) {
				pending = batch // interrupted by the shutdown: the flush tries it once more
			}
		}
	}
	t.flush(pending)
	return nil
}

// collect adds to first the records queued behind it, up to a batch.
func (t *Trail) collect(first Record) []Record {
	batch := []Record{first}
	for len(batch) < t.batchSize {
		select {
		case rec := <-t.queue:
			batch = append(batch, rec)
		default:
			return batch
		}
	}
	return batch
}

// deliver POSTs a batch until the collector accepts it, refuses it for good or the attempts run
// out (both drop it), or ctx is cancelled: then it returns false, the batch in neither state.
func (t *Trail) deliver(ctx context.Context, batch []Record) bool {
	for attempt := 1; ; attempt++ {
		retryAfter, err := t.post(ctx, batch)
		switch {
		case err == nil:
			return true
		case ctx.Err() != nil:
			return false
		case !retryable(err) || attempt >= t.attempts:
			t.drop(DropSendFailed, batch, err, attempt)
			return true
		}
		t.metrics.Retries.Inc()
		timer := time.NewTimer(t.backoff(attempt, retryAfter))
		select {
		case <-ctx.Done():
			timer.Stop()
			return false
		case <-timer.C:
		}
	}
}

// flush delivers the records still queued once the sender is told to stop, one attempt per batch
// within FlushTimeout, then closes the queue to Emit.
func (t *Trail) flush(pending []Record) {
	ctx, cancel := context.WithTimeout(context.Background(), t.flushTimeout)
	defer cancel()
	once := func(batch []Record) {
		if ctx.Err() != nil {
			t.drop(DropShutdown, batch, ctx.Err(), 0)
			return
		}
		if _, err := t.post(ctx, batch); err != nil {
			reason := DropShutdown
			if !retryable(err) {
				reason = DropSendFailed
			}
			t.drop(reason, batch, err, 1)
		}
	}
	if pending != nil {
		once(pending)
	}
	for drained := false; !drained; {
		select {
		case rec := <-t.queue:
			once(t.collect(rec))
		default:
			drained = true
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	for n := 0; ; n++ {
		select {
		case <-t.queue:
			t.metrics.Dropped.WithLabelValues(DropShutdown).Inc()
		default:
			if n > 0 {
				t.webhookLog.Info("audit records dropped at shutdown", "records", n)
			}
			return
		}
	}
}

func (t *Trail) drop(reason string, batch []Record, err error, attempts int) {
	t.metrics.Dropped.WithLabelValues(reason).Add(float64(len(batch)))
	t.webhookLog.Error(err, "audit records not delivered to the webhook", "records", len(batch), "reason", reason, "attempts", attempts)
}

// statusError is an answer other than 2xx.
type statusError struct {
	code int
}

func (e statusError) Error() string { return fmt.Sprintf("webhook answered %d", e.code) }

// retryable tells whether another attempt may succeed: a transport failure, a timeout, or an
// answer that says "later" (408, 429, 5xx). Other 4xx answers say the request itself is wrong.
func retryable(err error) bool {
	var se statusError
	if !errors.As(err, &se) {
		return true
	}
	return se.code == http.StatusRequestTimeout || se.code == http.StatusTooManyRequests || se.code >= 500
}

// post sends one batch as a JSON array. It returns the wait a Retry-After header asks for.
func (t *Trail) post(ctx context.Context, batch []Record) (time.Duration, error) {
	body, err := json.Marshal(batch)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	for k, vs := range t.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", Operator+"-audit/"+SchemaVersion)
	resp, err := t.client.Do(req)
	if err != nil {
		return 0, err
	}
	// Read a little of the body so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		t.metrics.Records.WithLabelValues(SinkWebhook).Add(float64(len(batch)))
		return 0, nil
	}
	var after time.Duration
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		after = time.Duration(s) * time.Second
	}
	return after, statusError{code: resp.StatusCode}
}

// backoff is the wait before retry number attempt: BackoffBase doubled per earlier retry, capped
// at BackoffMax, with jitter; a longer Retry-After wins, up to BackoffMax.
func (t *Trail) backoff(attempt int, retryAfter time.Duration) time.Duration {
	d := t.base
	for i := 1; i < attempt && d < t.limit; i++ {
		d *= 2
	}
	d = min(d, t.limit)
	d = d/2 + rand.N(d/2+1)
	if retryAfter > d {
		d = min(retryAfter, t.limit)
	}
	return d
}
