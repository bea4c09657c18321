package controllers

import (
	"context"
	"errors"
	"slices"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/controllers/summary"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
)

// APIDetector tells which outputs' APIs the cluster serves, and starts watching an output's kind
// the first time it is served, so CRDs installed after the operator (Istio's, typically) are
// picked up without a restart.
type APIDetector struct {
	discovery discovery.DiscoveryInterface
	summaries *summary.Caches
	client    client.Client
	outputs   compiler.Registry

	// foreign, when set, holds the policies the operator did not generate; their changes enqueue
	// the graphs of their namespace through onForeign.
	foreign   cache.Cache
	onForeign handler.EventHandler

	mu         sync.Mutex
	controller controller.Controller
	served     map[schema.GroupKind]bool
}

// NewAPIDetector asks discovery about the outputs' APIs; the generated objects are watched
// through their summaries.
func NewAPIDetector(dc discovery.DiscoveryInterface, summaries *summary.Caches, cl client.Client, outputs compiler.Registry) *APIDetector {
	return &APIDetector{discovery: dc, summaries: summaries, client: cl, outputs: outputs, served: map[schema.GroupKind]bool{}}
}

// Missing lists the output kinds whose API is not served. Once a kind is served the answer is
// remembered and its objects are watched.
func (d *APIDetector) Missing(ctx context.Context) ([]schema.GroupKind, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var missing []schema.GroupKind
	var newlyServed []*compiler.Output
	kinds := map[schema.GroupVersion][]string{} // discovery answers, one request per group version
	for _, o := range d.outputs {
		if d.served[o.GroupKind()] {
			continue
		}
		gv := o.GVK.GroupVersion()
		if _, asked := kinds[gv]; !asked {
			resources, err := d.discovery.ServerResourcesForGroupVersion(gv.String())
			if err != nil && !apierrors.IsNotFound(err) {
				return nil, err
			}
			kinds[gv] = []string{}
			if resources != nil {
				for _, r := range resources.APIResources {
					kinds[gv] = append(kinds[gv], r.Kind)
				}
			}
		}
		if !slices.Contains(kinds[gv], o.GVK.Kind) {
			missing = append(missing, o.GroupKind())
			continue
		}
		newlyServed = append(newlyServed, o)
	}
	// Each kind's cache lists every generated object of the kind: at a restart the lists run side
	// by side rather than one after another.
	errs := make([]error, len(newlyServed))
	var wg sync.WaitGroup
	for i, o := range newlyServed {
		wg.Go(func() { errs[i] = d.watch(ctx, o) })
	}
	wg.Wait()
	for i, o := range newlyServed {
		if errs[i] == nil {
			d.served[o.GroupKind()] = true // watched: never twice
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return missing, nil
}

// watch makes changes to an output's generated objects (drift, deletion) enqueue their graph.
func (d *APIDetector) watch(ctx context.Context, o *compiler.Output) error {
	summaries, err := d.summaries.For(ctx, o.GVK)
	if err != nil {
		return err
	}
	owner := handler.TypedEnqueueRequestForOwner[client.Object](d.client.Scheme(), d.client.RESTMapper(),
		&v1alpha1.ServiceGraph{}, handler.OnlyControllerOwner())
	if err := d.controller.Watch(source.Kind(summaries, client.Object(summary.New(o.GVK)), owner, skipCreates)); err != nil {
		return err
	}
	if _, judged := foreignKinds[o.GroupKind()]; !judged && !o.UsersMatter || d.foreign == nil {
		return nil
	}
	foreignMeta := &metav1.PartialObjectMetadata{}
	foreignMeta.SetGroupVersionKind(o.GVK)
	if err := d.controller.Watch(source.Kind(d.foreign, client.Object(foreignMeta), d.onForeign)); err != nil {
		return err
	}
	// An object carrying the operator's label without a graph controlling it is foreign too, and
	// the owner handler above never enqueues a graph for it.
	unowned := predicate.NewPredicateFuncs(func(o client.Object) bool { return metav1.GetControllerOf(o) == nil })
	return d.controller.Watch(source.Kind(summaries, client.Object(summary.New(o.GVK)), d.onForeign, unowned))
}

// attach gives the detector the controller whose queue the watches feed, and the handler of
// foreign policies.
func (d *APIDetector) attach(c controller.Controller, onForeign handler.EventHandler) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.controller, d.onForeign = c, onForeign
}
