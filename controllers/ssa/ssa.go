// Package ssa writes a graph's generated objects and reports what it did. The write path is the
// cheapest one that keeps ownership exact: a missing object is created with a POST (a third less
// API-server work than an apply, and it cannot take over an object someone else created
// meanwhile), a changed one is server-side applied, and one whose fields no apply can remove is
// replaced with the live resourceVersion. Every call returns a typed change.Set, like Flux's
// fluxcd/pkg/ssa ResourceManager, instead of logging.
package ssa

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"

	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/servicegraph/servicegraph-operator/controllers/summary"
	"github.com/servicegraph/servicegraph-operator/internal/change"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/object"
	"github.com/servicegraph/servicegraph-operator/internal/render"
)

// Manager writes generated objects on behalf of their owner.
type Manager struct {
	// Client reads from the cache, which holds only objects labelled as the operator's, and writes.
	Client client.Client
	// APIReader reads around the cache: foreign objects under generated names, and objects in full.
	APIReader client.Reader
	// Summaries hold the generated objects as their metadata and a digest of their spec.
	Summaries *summary.Caches
	// Foreign, when set, holds the metadata of the objects without the operator's label; nil
	// makes every look for other objects of a kind a read from the API server.
	Foreign client.Reader
	// FieldOwner is the field manager of every write.
	FieldOwner string
	// Workers bounds the concurrent writes of one step.
	Workers int

	creator *creator
	digests digestMemo
}

// Forget drops what the manager remembers of a deleted owner.
func (m *Manager) Forget(owner types.NamespacedName) { m.digests.forget(owner) }

// New returns a Manager that creates objects with raw POSTs through config and httpClient.
func New(c client.Client, apiReader client.Reader, summaries *summary.Caches, config *rest.Config, httpClient *http.Client, fieldOwner string, workers int) *Manager {
	return &Manager{Client: c, APIReader: apiReader, Summaries: summaries, FieldOwner: fieldOwner, Workers: workers,
		creator: newCreator(config, httpClient, c.RESTMapper(), c.Scheme())}
}

// Execute runs the plan of a compiled result for its owner, step by step. A conflict or an error
// stops it after the step it happened in: applying default-deny without every allow rule in place
// would cut live traffic.
func (m *Manager) Execute(ctx context.Context, owner client.Object, desired *compiler.Result) (change.Set, error) {
	ownerRef, err := m.ownerReference(owner)
	if err != nil {
		return change.Set{}, err
	}
	run := &run{Manager: m, owner: owner, ownerRef: ownerRef, outputs: desired.Outputs,
		memo: m.digests.start(client.ObjectKeyFromObject(owner), len(desired.Objects()))}
	defer m.digests.finish(client.ObjectKeyFromObject(owner), run.memo)
	var set change.Set
	for _, step := range desired.Steps() {
		var done change.Set
		if step.Prune {
			done, err = run.prune(ctx, desired, step.Only)
		} else {
			done, err = run.apply(ctx, step.Apply)
		}
		set.Append(done)
		if err != nil || len(done.Conflicts) > 0 {
			return set, err
		}
	}
	return set, nil
}

func (m *Manager) ownerReference(owner client.Object) (metav1.OwnerReference, error) {
	gvk, err := apiutil.GVKForObject(owner, m.Client.Scheme())
	if err != nil {
		return metav1.OwnerReference{}, err
	}
	return *metav1.NewControllerRef(owner, gvk), nil
}

// run is one Execute.
type run struct {
	*Manager
	owner    client.Object
	ownerRef metav1.OwnerReference
	outputs  compiler.Registry
	memo     *memoRun
}

// apply writes objs concurrently.
func (r *run) apply(ctx context.Context, objs []compiler.Object) (change.Set, error) {
	type result struct {
		action   change.Action
		conflict *change.Conflict
	}
	results := make([]result, len(objs))
	// No shared context: one object the API server refuses must not cancel the writes of the
	// others in flight; they are all applied, and the error is reported after.
	var g errgroup.Group
	g.SetLimit(max(r.Workers, 1))
	for i, obj := range objs {
		g.Go(func() error {
			action, conflict, err := r.applyOne(ctx, obj)
			if err == nil {
				results[i] = result{action: action, conflict: conflict}
			}
			return err
		})
	}
	err := g.Wait()
	var set change.Set
	for i, res := range results {
		switch {
		case res.conflict != nil:
			set.Conflicts = append(set.Conflicts, *res.conflict)
		case res.action != "":
			set.Add(object.Ref(objs[i]), res.action)
		}
	}
	return set, err
}

// applyOne creates or updates one object, unless it is already as desired (no write at all) or
// belongs to someone else (left alone, reported).
func (r *run) applyOne(ctx context.Context, obj compiler.Object) (change.Action, *change.Conflict, error) {
	out := r.outputs.Of(obj)
	if conflict, err := r.exclusive(ctx, out, obj); conflict != nil || err != nil {
		return "", conflict, err
	}
	have, err := r.current(ctx, obj)
	if err != nil {
		return "", nil, err
	}
	if have == nil {
		// Created without a look around the cache first: a name taken by someone else is refused
		// (a create never takes an object over), and costs one read then.
		taken := r.create(ctx, obj)
		if !apierrors.IsAlreadyExists(taken) {
			return change.Created, nil, taken
		}
		full, err := r.read(ctx, obj)
		if err != nil {
			return "", nil, err
		}
		if full == nil {
			return "", nil, taken // deleted in between: retried
		}
		have = full
	}
	switch {
	case !metav1.IsControlledBy(have, r.owner):
		return "", &change.Conflict{Ref: object.Ref(obj), Cause: change.NotOwned}, nil
	case hasUnwanted(out, have, obj):
		// An annotation set by the create belongs to no apply, so no apply can remove it.
		return change.Replaced, nil, r.replace(ctx, out, obj, have)
	}
	if metadataUpToDate(out, obj, have) {
		if same, err := r.sameSpec(ctx, out, obj, have); err != nil || same {
			return change.Unchanged, nil, err
		}
	}
	return r.update(ctx, out, obj)
}

// update server-side applies obj, replacing it when the apply leaves fields it cannot remove.
func (r *run) update(ctx context.Context, out *compiler.Output, obj compiler.Object) (change.Action, *change.Conflict, error) {
	// Rendered again here, as a whole object: the digest compare encodes only the content, and a
	// large graph's digests come from the memo without encoding at all.
	want, err := render.ToUnstructured(obj)
	if err != nil {
		return "", nil, err
	}
	want.SetOwnerReferences([]metav1.OwnerReference{r.ownerRef})
	wantSpec := want.Object["spec"]
	if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(want), client.FieldOwner(r.FieldOwner), client.ForceOwnership); err != nil {
		return "", nil, writeError("applying", obj, err)
	}
	if specEqual(wantSpec, want.Object["spec"]) {
		return change.Updated, nil, nil
	}
	// Fields apply cannot remove: set by another field manager, or by the create (which records its
	// fields under an update, not under the apply).
	return change.Replaced, nil, r.replace(ctx, out, obj, want)
}

// replace writes obj over live with an update: the spec whole, the operator's labels and
// annotations over live's, and live's resourceVersion, so a change in between fails and is retried.
func (r *run) replace(ctx context.Context, out *compiler.Output, obj compiler.Object, live client.Object) error {
	want, err := render.ToUnstructured(obj)
	if err != nil {
		return err
	}
	want.SetOwnerReferences([]metav1.OwnerReference{r.ownerRef})
	want.SetResourceVersion(live.GetResourceVersion())
	want.SetLabels(overlay(live.GetLabels(), obj.GetLabels()))
	annotations := overlay(live.GetAnnotations(), obj.GetAnnotations())
	for _, key := range out.ManagedAnnotations {
		if _, wanted := obj.GetAnnotations()[key]; !wanted {
			delete(annotations, key)
		}
	}
	want.SetAnnotations(annotations)
	if err := r.Client.Update(ctx, want, client.FieldOwner(r.FieldOwner)); err != nil {
		return writeError("replacing", obj, err)
	}
	return nil
}

// create makes a missing object with a POST that reads no answer back.
func (r *run) create(ctx context.Context, obj compiler.Object) error {
	fresh := obj.DeepCopyObject().(client.Object)
	fresh.SetOwnerReferences([]metav1.OwnerReference{r.ownerRef})
	if err := r.creator.create(ctx, fresh, r.FieldOwner); err != nil {
		return writeError("creating", obj, err) // AlreadyExists included: applyOne reads whose it is
	}
	return nil
}

// exclusive finds another namespace-wide object of a kind that allows only one, in the way of the
// graph's own.
func (r *run) exclusive(ctx context.Context, out *compiler.Output, obj compiler.Object) (*change.Conflict, error) {
	if out.Exclusive == nil || !out.Exclusive(obj) {
		return nil, nil
	}
	if strangers, err := r.strangers(ctx, out, obj.GetNamespace()); err != nil || !strangers {
		return nil, err
	}
	others, err := r.list(ctx, r.APIReader, out, client.InNamespace(obj.GetNamespace()))
	if err != nil {
		return nil, err
	}
	for _, other := range others {
		if out.Exclusive(other) && !metav1.IsControlledBy(other, r.owner) {
			return &change.Conflict{Ref: object.Ref(other), Cause: change.NamespaceWide}, nil
		}
	}
	return nil, nil
}

// overlay is base with top's entries added or overriding.
func overlay(base, top map[string]string) map[string]string {
	out := maps.Clone(base)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, top)
	return out
}

// RejectedError is a write the API server refused for what the object is (invalid, too large):
// retrying cannot succeed, only a change to the spec can.
type RejectedError struct{ error }

func (e RejectedError) Unwrap() error { return e.error }

// IsRejected tells whether err is, or wraps, a RejectedError.
func IsRejected(err error) bool { return errors.As(err, new(RejectedError)) }

// writeError names the object a write failed on, and marks a refusal that no retry can fix.
func writeError(verb string, obj compiler.Object, err error) error {
	ref := object.Ref(obj)
	err = fmt.Errorf("%s %s/%s: %w", verb, ref.Kind, ref.Name, err)
	if refused(err) {
		return RejectedError{err}
	}
	return err
}

// refused tells whether an error says the object itself is unacceptable. etcd's size limit
// surfaces as a server error with one of two texts, depending on how far over it the object is.
func refused(err error) bool {
	msg := err.Error()
	return apierrors.IsInvalid(err) || apierrors.IsRequestEntityTooLargeError(err) ||
		strings.Contains(msg, "etcdserver: request is too large") || strings.Contains(msg, "larger than max")
}
