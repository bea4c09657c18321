package controllers

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/render"
)

// applyResult is what happened to one desired object.
type applyResult struct {
	ref      v1alpha1.ObjectReference
	written  bool
	conflict string // why the object was left alone, if it was
}

// apply writes the desired objects phase by phase (for a rollout: allow rules, mutual TLS,
// default-deny), each phase concurrently. A conflict stops the rollout after its phase: applying default-deny without
// every allow rule in place would cut live traffic.
func (r *ServiceGraphReconciler) apply(ctx context.Context, sg *v1alpha1.ServiceGraph, phases [][]client.Object) (written []v1alpha1.ObjectReference, conflicts []string, err error) {
	taken := newTakenNames(r.APIReader, sg.Namespace)
	for _, phase := range phases {
		results := make([]applyResult, len(phase))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(max(r.Workers, 1))
		for i, obj := range phase {
			g.Go(func() (err error) {
				results[i], err = r.applyOne(gctx, sg, obj, taken)
				return err
			})
		}
		err := g.Wait()
		for _, res := range results {
			if res.written {
				written = append(written, res.ref)
			}
			if res.conflict != "" {
				conflicts = append(conflicts, res.conflict)
			}
		}
		if err != nil || len(conflicts) > 0 {
			return written, conflicts, err
		}
	}
	return written, nil, nil
}

// applyOne creates or updates one object, unless it is already as desired (no write at all) or
// belongs to someone else (left alone, reported).
func (r *ServiceGraphReconciler) applyOne(ctx context.Context, sg *v1alpha1.ServiceGraph, obj client.Object, taken *takenNames) (applyResult, error) {
	res := applyResult{ref: refTo(obj)}
	var err error
	if res.conflict, err = r.meshWideConflict(ctx, sg, obj); res.conflict != "" || err != nil {
		return res, err
	}
	have, err := r.current(ctx, obj, taken)
	if err != nil {
		return res, err
	}
	if have == nil {
		err = r.create(ctx, sg, obj)
	} else if !metav1.IsControlledBy(have, sg) {
		res.conflict = fmt.Sprintf("%s/%s exists and is not managed by this ServiceGraph", res.ref.Kind, res.ref.Name)
		return res, nil
	} else if upToDate(obj, have) {
		return res, nil
	} else {
		err = r.update(ctx, sg, obj, have)
	}
	res.written = err == nil
	return res, err
}

// update server-side applies obj over its live version, replacing what apply cannot remove.
func (r *ServiceGraphReconciler) update(ctx context.Context, sg *v1alpha1.ServiceGraph, obj, have client.Object) error {
	if hasUnwanted(have, obj) {
		// An annotation set by the create belongs to no apply, so no apply can remove it.
		return r.replace(ctx, sg, obj, have)
	}
	// Rendered only now: encoding every desired object on every reconcile would make a quiet
	// resync of a large graph cost more CPU than the rollout's writes.
	want, err := render.ToUnstructured(obj)
	if err != nil {
		return err
	}
	want.SetOwnerReferences([]metav1.OwnerReference{ownerRef(sg)})
	wantSpec := want.Object["spec"]
	if err := r.Apply(ctx, client.ApplyConfigurationFromUnstructured(want), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		return writeError("applying", refTo(obj), err)
	}
	if !specEqual(wantSpec, want.Object["spec"]) {
		// Fields apply cannot remove: set by another field manager, or by the create (which records
		// its fields under an update, not under the apply).
		return r.replace(ctx, sg, obj, want)
	}
	return nil
}

// replace writes obj over live with an update: the spec whole, the operator's labels and
// annotations over live's, and live's resourceVersion, so a change in between fails and is retried.
func (r *ServiceGraphReconciler) replace(ctx context.Context, sg *v1alpha1.ServiceGraph, obj, live client.Object) error {
	want, err := render.ToUnstructured(obj)
	if err != nil {
		return err
	}
	want.SetOwnerReferences([]metav1.OwnerReference{ownerRef(sg)})
	want.SetResourceVersion(live.GetResourceVersion())
	want.SetLabels(overlay(live.GetLabels(), obj.GetLabels()))
	annotations := overlay(live.GetAnnotations(), obj.GetAnnotations())
	for _, key := range compiler.ManagedAnnotations {
		if _, wanted := obj.GetAnnotations()[key]; !wanted {
			delete(annotations, key)
		}
	}
	want.SetAnnotations(annotations)
	if err := r.Update(ctx, want, client.FieldOwner(FieldOwner)); err != nil {
		return writeError("replacing", refTo(obj), err)
	}
	return nil
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

// create makes a missing object. A create costs the API server about a third less than an apply
// of the same object (no apply patch to decode and merge), which is most of a cold rollout's time;
// and unlike a forced apply it cannot take over an object someone else created meanwhile.
func (r *ServiceGraphReconciler) create(ctx context.Context, sg *v1alpha1.ServiceGraph, obj client.Object) error {
	fresh := obj.DeepCopyObject().(client.Object)
	fresh.SetOwnerReferences([]metav1.OwnerReference{ownerRef(sg)})
	if err := r.creator.create(ctx, fresh, FieldOwner); err != nil {
		// AlreadyExists included: the next look reads the newcomer and decides whose it is.
		return writeError("creating", refTo(obj), err)
	}
	return nil
}

func ownerRef(sg *v1alpha1.ServiceGraph) metav1.OwnerReference {
	return *metav1.NewControllerRef(sg, v1alpha1.GroupVersion.WithKind("ServiceGraph"))
}

// writeError names the object a write failed on, and marks a refusal that no retry can fix.
func writeError(verb string, ref v1alpha1.ObjectReference, err error) error {
	err = fmt.Errorf("%s %s/%s: %w", verb, ref.Kind, ref.Name, err)
	if refused(err) {
		return rejectedError{err}
	}
	return err
}

// hasUnwanted tells whether live carries a compiler-managed annotation that want does not.
func hasUnwanted(live, want client.Object) bool {
	for _, key := range compiler.ManagedAnnotations {
		if _, wanted := want.GetAnnotations()[key]; !wanted && live.GetAnnotations()[key] != "" {
			return true
		}
	}
	return false
}

// meshWideConflict finds another namespace-wide PeerAuthentication in the way of the graph's own:
// Istio gives no defined precedence between two of them, so the graph must not add a second.
func (r *ServiceGraphReconciler) meshWideConflict(ctx context.Context, sg *v1alpha1.ServiceGraph, obj client.Object) (string, error) {
	pa, ok := obj.(*securityv1.PeerAuthentication)
	if !ok || pa.Spec.Selector != nil {
		return "", nil
	}
	var list securityv1.PeerAuthenticationList
	if err := r.APIReader.List(ctx, &list, client.InNamespace(pa.Namespace)); err != nil {
		return "", err
	}
	for _, other := range list.Items {
		if other.Spec.Selector == nil && !metav1.IsControlledBy(other, sg) {
			return fmt.Sprintf("PeerAuthentication/%s is namespace-wide and not managed by this ServiceGraph", other.Name), nil
		}
	}
	return "", nil
}

// rejectedError is a write the API server refused for what the object is (invalid, too large):
// retrying cannot succeed, only a change to the spec can.
type rejectedError struct{ error }

func (e rejectedError) Unwrap() error { return e.error }

// refused tells whether an error says the object itself is unacceptable. etcd's size limit
// surfaces as a server error with one of two texts, depending on how far over it the object is.
func refused(err error) bool {
	msg := err.Error()
	return apierrors.IsInvalid(err) || apierrors.IsRequestEntityTooLargeError(err) ||
		strings.Contains(msg, "etcdserver: request is too large") || strings.Contains(msg, "larger than max")
}

// current reads the live object named like obj: from the cache, which holds only objects labelled
// as the operator's, else straight from the API server when the name is taken there (by a foreign
// object, or by one of the operator's that the cache has not seen yet). It returns nil when there
// is none.
func (r *ServiceGraphReconciler) current(ctx context.Context, obj client.Object, taken *takenNames) (client.Object, error) {
	gvk, err := apiutil.GVKForObject(obj, r.Scheme())
	if err != nil {
		return nil, err
	}
	fresh, err := r.Scheme().New(gvk)
	if err != nil {
		return nil, err
	}
	have := fresh.(client.Object)
	key := client.ObjectKeyFromObject(obj)
	err = r.Get(ctx, key, have)
	if apierrors.IsNotFound(err) {
		exists, listErr := taken.has(ctx, gvk, key.Name)
		if listErr != nil || !exists {
			return nil, listErr
		}
		err = r.APIReader.Get(ctx, key, have)
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return have, err
}

// upToDate tells whether the live object already carries the desired labels, annotations and
// spec, and none of the annotations the compiler manages but no longer wants. Specs are compared
// as typed values: Istio's as protobuf messages, whose generated Go structs carry internal state
// that plain deep equality would trip on.
func upToDate(want, have client.Object) bool {
	if !subset(want.GetLabels(), have.GetLabels()) || !subset(want.GetAnnotations(), have.GetAnnotations()) || hasUnwanted(have, want) {
		return false
	}
	switch w := want.(type) {
	case *networkingv1.NetworkPolicy:
		h, ok := have.(*networkingv1.NetworkPolicy)
		return ok && equality.Semantic.DeepEqual(w.Spec, h.Spec)
	case *securityv1.AuthorizationPolicy:
		h, ok := have.(*securityv1.AuthorizationPolicy)
		return ok && proto.Equal(&w.Spec, &h.Spec)
	case *securityv1.PeerAuthentication:
		h, ok := have.(*securityv1.PeerAuthentication)
		return ok && proto.Equal(&w.Spec, &h.Spec)
	}
	return false
}

func subset(small, big map[string]string) bool {
	for k, v := range small {
		if big[k] != v {
			return false
		}
	}
	return true
}

// specEqual compares two specs, an absent spec being the same as an empty one (Istio's allow-nothing
// AuthorizationPolicy has an empty spec).
func specEqual(a, b any) bool {
	empty := func(v any) bool { m, ok := v.(map[string]any); return v == nil || (ok && len(m) == 0) }
	if empty(a) && empty(b) {
		return true
	}
	return equality.Semantic.DeepEqual(a, b)
}

// prune deletes the objects this graph generated earlier that the compiler no longer returns, the
// ones in first before the others.
func (r *ServiceGraphReconciler) prune(ctx context.Context, sg *v1alpha1.ServiceGraph, desired *compiler.Result, istio bool, first map[v1alpha1.ObjectReference]bool) ([]v1alpha1.ObjectReference, error) {
	keep := map[v1alpha1.ObjectReference]bool{}
	for _, obj := range desired.Objects() {
		keep[refTo(obj)] = true
	}
	var stale []staleObject
	for _, list := range generatedLists(istio) {
		if err := r.List(ctx, list, client.InNamespace(sg.Namespace), client.MatchingLabels{compiler.LabelGraph: sg.Name}); err != nil {
			return nil, err
		}
		gvk, err := apiutil.GVKForObject(list, r.Scheme())
		if err != nil {
			return nil, err
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return nil, err
		}
		for _, item := range items {
			obj := item.(client.Object)
			ref := v1alpha1.ObjectReference{Kind: strings.TrimSuffix(gvk.Kind, "List"), Name: obj.GetName()}
			if !keep[ref] && metav1.IsControlledBy(obj, sg) {
				stale = append(stale, staleObject{ref, obj})
			}
		}
	}
	slices.SortStableFunc(stale, func(a, b staleObject) int { return cmp.Compare(rank(first, a.ref), rank(first, b.ref)) })
	var pruned []v1alpha1.ObjectReference
	for _, s := range stale {
		uid := s.obj.GetUID()
		if err := r.Delete(ctx, s.obj, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
			return pruned, fmt.Errorf("pruning %s/%s: %w", s.ref.Kind, s.ref.Name, err)
		}
		pruned = append(pruned, s.ref)
	}
	return pruned, nil
}

type staleObject struct {
	ref v1alpha1.ObjectReference
	obj client.Object
}

func rank(first map[v1alpha1.ObjectReference]bool, ref v1alpha1.ObjectReference) int {
	if first[ref] {
		return 0
	}
	return 1
}

// generatedLists are the kinds the operator generates: the Istio ones only while Istio is served.
func generatedLists(istio bool) []client.ObjectList {
	lists := []client.ObjectList{&networkingv1.NetworkPolicyList{}}
	if istio {
		lists = append(lists, &securityv1.PeerAuthenticationList{}, &securityv1.AuthorizationPolicyList{})
	}
	return lists
}

func refTo(obj client.Object) v1alpha1.ObjectReference {
	return v1alpha1.ObjectReference{Kind: obj.GetObjectKind().GroupVersionKind().Kind, Name: obj.GetName()}
}
