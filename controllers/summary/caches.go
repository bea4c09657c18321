package summary

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// syncedAfter is how long after the manager started each kind's summaries were first synced: at
// a restart, the cost of reading every generated object.
var syncedAfter = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "servicegraph_summary_cache_synced_seconds",
	Help: "Seconds from the manager's start until the cache of the generated objects of a kind was first synced.",
}, []string{"group", "kind"})

func init() { metrics.Registry.MustRegister(syncedAfter) }

// Caches hold the summaries of the generated objects, one cache per kind, each started the first
// time its kind is asked for (an output's API may be installed after the operator starts). It runs
// as a manager runnable: caches are started under the manager's context.
type Caches struct {
	config *rest.Config
	http   *http.Client
	mapper meta.RESTMapper
	label  labels.Selector

	started chan struct{}
	ctx     context.Context
	start   time.Time

	mu    sync.Mutex
	kinds map[schema.GroupVersionKind]cache.Cache
}

// NewCaches caches the objects matching label; they are read as JSON whatever the kind.
func NewCaches(config *rest.Config, httpClient *http.Client, mapper meta.RESTMapper, label labels.Selector) *Caches {
	config = rest.CopyConfig(config)
	// A summary decodes only JSON: left empty, the built-in kinds would be asked for as protobuf.
	config.ContentType = runtime.ContentTypeJSON
	return &Caches{config: config, http: httpClient, mapper: mapper, label: label,
		started: make(chan struct{}), kinds: map[schema.GroupVersionKind]cache.Cache{}}
}

// Start records the manager's context for the caches started later, and waits for it to end.
func (c *Caches) Start(ctx context.Context) error {
	c.ctx, c.start = ctx, time.Now()
	close(c.started)
	<-ctx.Done()
	return nil
}

// NeedLeaderElection is false: a standby manager keeps its caches warm, like the manager's own.
func (c *Caches) NeedLeaderElection() bool { return false }

// For returns the started, synced cache of gvk's summaries.
func (c *Caches) For(ctx context.Context, gvk schema.GroupVersionKind) (cache.Cache, error) {
	select {
	case <-c.started:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c.mu.Lock()
	kind, ok := c.kinds[gvk]
	if !ok {
		var err error
		kind, err = cache.New(c.config, cache.Options{Scheme: NewScheme(gvk), Mapper: c.mapper, HTTPClient: c.http,
			DefaultLabelSelector: c.label})
		if err != nil {
			c.mu.Unlock()
			return nil, err
		}
		c.kinds[gvk] = kind
		go func() {
			if err := kind.Start(c.ctx); err != nil {
				logf.Log.Error(err, "summary cache stopped", "kind", gvk)
			}
		}()
	}
	c.mu.Unlock()
	if _, err := kind.GetInformer(ctx, New(gvk)); err != nil {
		return nil, err
	}
	if !kind.WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("summaries of %s: cache did not sync: %w", gvk, ctx.Err())
	}
	if !ok {
		syncedAfter.WithLabelValues(gvk.Group, gvk.Kind).Set(time.Since(c.start).Seconds())
	}
	return kind, nil
}
