package compiler

import (
	"cmp"
	"slices"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/object"
)

// Object is a generated object.
type Object = object.Object

// Phase is when an object is applied: a rollout goes allow, mTLS, deny; a roll-back the reverse.
type Phase int

const (
	// PhaseAllow holds the objects that open traffic.
	PhaseAllow Phase = iota
	// PhaseMTLS holds the objects that set mutual TLS.
	PhaseMTLS
	// PhaseDeny holds the objects that close whatever nothing allows.
	PhaseDeny
)

// Emitted is one object an output generates, with the phase it is applied in.
type Emitted struct {
	Object Object
	Phase  Phase
}

// Layer is a set of outputs one system enforces (the cluster's NetworkPolicy implementation,
// Istio). A layer is on when the cluster serves the API of every one of its outputs.
type Layer struct {
	// Name names the layer in messages.
	Name string
	// Reason is the condition reason when the layer is off (CamelCase).
	Reason string
	// Missing says, in its outputs' conditions, what the cluster does not serve.
	Missing string
	// Needed tells whether a graph compiled to r cannot be Ready while the layer is off; nil
	// means it always can.
	Needed func(r *Result) bool
	// Waiting is Ready's message while a needed layer is off; Unenforced is the note Ready's
	// message carries while a layer that is not needed is off.
	Waiting, Unenforced string
}

// Summary is what a condition message says about one output's objects.
type Summary struct {
	// Count is the number of objects applied, Planned the number Enforce mode would apply.
	Count, Planned int
	Audit          bool
	// MTLS is the mutual-TLS mode in force.
	MTLS v1alpha1.MTLSMode
	// Plaintext lists "service:port" where unmeshed callers are let in with plain text.
	Plaintext []string
}

// Output declares one kind of generated object: everything the compiler, the reconciler, the
// status and the metrics need to know about it. Adding a kind is one more Output.
type Output struct {
	// GVK is the kind of the objects; their list kind is GVK.Kind+"List".
	GVK schema.GroupVersionKind
	// Layer is what enforces the objects.
	Layer *Layer
	// Condition is the status condition type that reports the output.
	Condition string
	// Emit returns the output's objects for a compilation, any order within a phase.
	Emit func(c *Compilation) []Emitted
	// Audit returns an object's form in Audit mode, nil when none is applied in Audit mode. nil
	// keeps every object as it is.
	Audit func(obj Object) Object
	// SpecEqual tells whether two objects of the kind have the same spec.
	SpecEqual func(want, have Object) bool
	// ManagedAnnotations are annotations the output may set: one that a desired object lacks is
	// removed from the live object.
	ManagedAnnotations []string
	// Exclusive tells whether an object applies to the whole namespace where at most one such
	// object of the kind may exist; another one that the graph does not own is then a conflict. nil
	// means never.
	Exclusive func(obj Object) bool
	// Describe says what was applied, as the condition's message.
	Describe func(s Summary) string
	// Limit names what makes an object larger than its API accepts, "" when it fits; checked
	// before any write so that an oversized graph is an invalid spec. nil means no limit of its own.
	Limit func(obj Object) string
	// UsersMatter tells whether objects of the kind that users create change what a graph
	// generates (a user's waypoint Gateway), so the reconciler watches those too.
	UsersMatter bool
	// RoughSize over-estimates an object's encoded size cheaply, to skip encoding the objects far
	// below the API server's size limit. nil means every object is encoded and measured.
	RoughSize func(obj Object) int
}

// GroupKind is the output's group and kind.
func (o *Output) GroupKind() schema.GroupKind { return o.GVK.GroupKind() }

// Registry is the set of outputs one compilation generates, sorted by kind then group: a phase
// lists its objects kind by kind in that order.
type Registry []*Output

// Builtin is the operator's own outputs.
func Builtin() Registry {
	return NewRegistry(AuthorizationPolicies, CiliumNetworkPolicies, NetworkPolicies, PeerAuthentications, ServiceEntries, Sidecars, Waypoints)
}

// NewRegistry sorts the outputs into a registry.
func NewRegistry(outputs ...*Output) Registry {
	r := slices.Clone(Registry(outputs))
	slices.SortFunc(r, func(a, b *Output) int {
		return cmp.Or(cmp.Compare(a.GVK.Kind, b.GVK.Kind), cmp.Compare(a.GVK.Group, b.GVK.Group))
	})
	return r
}

// With returns a registry with more outputs.
func (r Registry) With(outputs ...*Output) Registry {
	return NewRegistry(append(slices.Clone(r), outputs...)...)
}

// For returns the output of a kind, nil when none generates it.
func (r Registry) For(gk schema.GroupKind) *Output {
	for _, o := range r {
		if o.GroupKind() == gk {
			return o
		}
	}
	return nil
}

// Of returns the output that generates obj, nil when none does.
func (r Registry) Of(obj Object) *Output {
	return r.For(obj.GetObjectKind().GroupVersionKind().GroupKind())
}

// Conditions lists the outputs' condition types, each once, in registry order.
func (r Registry) Conditions() []string {
	var out []string
	for _, o := range r {
		if !slices.Contains(out, o.Condition) {
			out = append(out, o.Condition)
		}
	}
	return out
}

// KindsOf lists the kinds of a layer's outputs.
func (r Registry) KindsOf(l *Layer) []schema.GroupKind {
	var out []schema.GroupKind
	for _, o := range r {
		if o.Layer == l {
			out = append(out, o.GroupKind())
		}
	}
	return out
}

// layersOff lists the layers with an output whose API is missing, in registry order.
func (r Registry) layersOff(missing []schema.GroupKind) []*Layer {
	var off []*Layer
	for _, o := range r {
		if slices.Contains(missing, o.GroupKind()) && !slices.Contains(off, o.Layer) {
			off = append(off, o.Layer)
		}
	}
	return off
}

// sameSpec makes an Output's SpecEqual from a comparison of two objects of its Go type.
func sameSpec[T Object](equal func(want, have T) bool) func(want, have Object) bool {
	return func(want, have Object) bool {
		w, ok1 := want.(T)
		h, ok2 := have.(T)
		return ok1 && ok2 && equal(w, h)
	}
}
