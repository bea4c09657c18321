package ssa

import (
	"context"
	"encoding/json"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/servicegraph/servicegraph-operator/controllers/summary"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/render"
)

// specCompares counts how live specs were compared with the desired ones: by digest, or by
// reading the object in full (the digests differ when the spec changed, or when the API server
// filled in a default the compiler leaves out: a steady graph should show none of those).
var specCompares = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "servicegraph_spec_compares_total",
	Help: "Comparisons of a generated object's live spec with the desired one, by how: digest (from the cache's summary) or read (the object read in full).",
}, []string{"by"})

func init() { metrics.Registry.MustRegister(specCompares) }

// metadataUpToDate tells whether the live object already carries the desired labels and
// annotations, and none of the annotations its output manages but no longer wants.
func metadataUpToDate(out *compiler.Output, want compiler.Object, have client.Object) bool {
	return subset(want.GetLabels(), have.GetLabels()) && subset(want.GetAnnotations(), have.GetAnnotations()) &&
		!hasUnwanted(out, have, want)
}

// sameSpec tells whether the live object's spec is the desired one. A summary is compared by
// digest; when the digests differ, or the object was read around the cache, the object is read in
// full and the specs compared as typed values by the output (Istio's as protobuf messages, whose
// generated Go structs carry internal state that plain deep equality would trip on).
func (r *run) sameSpec(ctx context.Context, out *compiler.Output, want compiler.Object, have client.Object) (bool, error) {
	live, ok := have.(*summary.Object)
	if !ok {
		return out.SpecEqual(want, have.(compiler.Object)), nil
	}
	digest, err := r.memo.digest(want)
	if err != nil {
		return false, err
	}
	if digest == live.Content {
		specCompares.WithLabelValues("digest").Inc()
		return true, nil
	}
	specCompares.WithLabelValues("read").Inc()
	full, err := r.read(ctx, want)
	if err != nil || full == nil {
		return false, client.IgnoreNotFound(err)
	}
	return out.SpecEqual(want, full), nil
}

// read gets the object named like obj in full from the API server.
func (r *run) read(ctx context.Context, obj compiler.Object) (compiler.Object, error) {
	fresh, err := r.Client.Scheme().New(obj.GetObjectKind().GroupVersionKind())
	if err != nil {
		return nil, err
	}
	full := fresh.(compiler.Object)
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(obj), full); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return full, nil
}

// specDigest digests obj's content encoded as the API server encodes it: a built-in kind in the
// order of its Go struct's fields, a custom resource with its keys sorted (the server keeps custom
// resources as plain JSON objects).
func specDigest(obj compiler.Object) (summary.Digest, error) {
	var encoded any = obj
	if !clientgoscheme.Scheme.Recognizes(obj.GetObjectKind().GroupVersionKind()) {
		u, err := render.ToUnstructured(obj)
		if err != nil {
			return summary.Digest{}, err
		}
		encoded = u.Object
	}
	data, err := json.Marshal(encoded)
	if err != nil {
		return summary.Digest{}, err
	}
	return summary.DigestOf(data)
}

// hasUnwanted tells whether live carries an annotation its output manages that want does not.
func hasUnwanted(out *compiler.Output, live client.Object, want compiler.Object) bool {
	for _, key := range out.ManagedAnnotations {
		if _, wanted := want.GetAnnotations()[key]; !wanted && live.GetAnnotations()[key] != "" {
			return true
		}
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
