package audit

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Sink names, the values of servicegraph_audit_records_total's sink label.
const (
	SinkLog     = "log"
	SinkWebhook = "webhook"
)

// Drop reasons, the values of servicegraph_audit_dropped_total's reason label.
const (
	// DropQueueFull is a record Emit found no room for in the webhook queue.
	DropQueueFull = "queue_full"
	// DropSendFailed is a record the collector did not accept after every attempt, or refused
	// with a status no retry changes (4xx other than 408 and 429).
	DropSendFailed = "send_failed"
	// DropShutdown is a record still queued, or emitted, when the trail stopped and its flush
	// time ran out.
	DropShutdown = "shutdown"
)

// Metrics are the audit trail's counters. Every trail of a process shares DefaultMetrics unless
// its Options name others (tests do, to count one trail alone).
type Metrics struct {
	// Records counts records written, by sink: every Emit for "log", every record the collector
	// accepted (2xx) for "webhook".
	Records *prometheus.CounterVec
	// Dropped counts records the webhook sink lost, by reason; they are still in the log.
	Dropped *prometheus.CounterVec
	// Retries counts webhook POSTs repeated after a failure.
	Retries prometheus.Counter
}

// NewMetrics makes a set of counters, every label value at zero.
func NewMetrics() *Metrics {
	m := &Metrics{
		Records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "servicegraph_audit_records_total",
			Help: "Audit records written, by sink: log (every record) and webhook (records the collector accepted).",
		}, []string{"sink"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "servicegraph_audit_dropped_total",
			Help: "Audit records the webhook sink lost (still in the log), by reason: queue_full, send_failed, shutdown.",
		}, []string{"reason"}),
		Retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "servicegraph_audit_webhook_retries_total",
			Help: "Audit webhook POSTs repeated after a failure.",
		}),
	}
	// Series that exist at zero let an alert use rate() before the first drop.
	for _, s := range []string{SinkLog, SinkWebhook} {
		m.Records.WithLabelValues(s)
	}
	for _, r := range []string{DropQueueFull, DropSendFailed, DropShutdown} {
		m.Dropped.WithLabelValues(r)
	}
	return m
}

// Register adds the counters to a registry.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	var errs []error
	for _, c := range []prometheus.Collector{m.Records, m.Dropped, m.Retries} {
		errs = append(errs, reg.Register(c))
	}
	return errors.Join(errs...)
}

// DefaultMetrics are the counters of the trails that name none; RegisterMetrics serves them.
var DefaultMetrics = NewMetrics()

var (
	registerOnce sync.Once
	registerErr  error
)

// RegisterMetrics registers DefaultMetrics on controller-runtime's metrics registry (served on the
// manager's metrics endpoint), once per process; later calls return the first call's result. New
// calls it for trails that use DefaultMetrics.
func RegisterMetrics() error {
	registerOnce.Do(func() { registerErr = DefaultMetrics.Register(metrics.Registry) })
	return registerErr
}
