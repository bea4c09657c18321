// Package audit writes one structured record per change the operator makes to the cluster, for a
// SIEM: to the log under a fixed logger name and, optionally, to an HTTP collector. The record's
// JSON schema is stable and versioned (SchemaVersion); docs/audit.md documents every field.
//
// The record builders (FromChanges, MarkDrift, HoldBack, Revision) are pure; Trail does the I/O.
package audit

import (
	"strings"
	"time"
	"unicode"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/servicegraph/servicegraph-operator/internal/change"
)

const (
	// SchemaVersion is the version of the record's JSON schema. A field is only ever added to v1;
	// renaming or removing one, or changing its meaning, makes a v2.
	SchemaVersion = "v1"
	// Operator is the value of every record's operator field.
	Operator = "servicegraph-operator"
	// AnnotationRevision on a ServiceGraph names the source revision (a git commit) it was applied
	// from. Neither Argo CD nor Flux writes a revision onto the objects they apply, so users set it
	// from CI or from Argo CD's build environment; see Revision.
	AnnotationRevision = "policy.servicegraph.io/revision"
	// MaxRevisionLength bounds the revision a record carries.
	MaxRevisionLength = 256
)

// Action is what the operator did to one object.
type Action string

const (
	// ActionCreate is a missing object created.
	ActionCreate Action = "create"
	// ActionUpdate is a changed object server-side applied.
	ActionUpdate Action = "update"
	// ActionReplace is an object written whole over its live version, where an apply could not
	// remove a field.
	ActionReplace Action = "replace"
	// ActionPrune is an object deleted because the graph no longer generates it.
	ActionPrune Action = "prune"
	// ActionDriftRestore is an object created, updated or replaced to undo someone else's change
	// to (or deletion of) an object the graph had already applied; see MarkDrift.
	ActionDriftRestore Action = "drift-restore"
	// ActionHoldBack is a change the graph asks for that the operator deliberately did not make
	// (STRICT mutual TLS held back while pods have no sidecar); see HoldBack.
	ActionHoldBack Action = "hold-back"
)

// Graph identifies the ServiceGraph a change was made for.
type Graph struct {
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	UID        string `json:"uid"`
	Generation int64  `json:"generation"`
}

// Object identifies the object changed.
type Object struct {
	// Group is empty for the core API group.
	Group     string `json:"group"`
	Version   string `json:"version"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// Record is one change the operator made to the cluster. Every field is always present in its
// JSON form (empty strings included), so a SIEM can map the schema once.
type Record struct {
	SchemaVersion string `json:"schemaVersion"`
	// Time is when the change was made, encoded as RFC 3339 with nanoseconds, in UTC.
	Time  time.Time `json:"time"`
	Graph Graph     `json:"graph"`
	// Revision is the source revision the graph was applied from, empty when unknown.
	Revision string `json:"revision"`
	Object   Object `json:"object"`
	Action   Action `json:"action"`
	// Reason says in a few words why; it never holds volatile text beyond the object's identity.
	Reason   string `json:"reason"`
	Operator string `json:"operator"`
}

// GraphOf identifies a ServiceGraph (or any object) by its metadata.
func GraphOf(obj metav1.Object) Graph {
	return Graph{Namespace: obj.GetNamespace(), Name: obj.GetName(), UID: string(obj.GetUID()), Generation: obj.GetGeneration()}
}

// Revision is the source revision a ServiceGraph's annotations name, "" when none is usable.
//
// It reads AnnotationRevision only. Argo CD's tracking annotation (argocd.argoproj.io/tracking-id,
// "app:group/Kind:namespace/name") and Flux's labels (kustomize.toolkit.fluxcd.io/name and
// /namespace) carry no revision; Flux puts its revision on its own events, not on the objects.
// With Argo CD the annotation can be filled from the build environment:
//
//	spec.source.kustomize:
//	  commonAnnotationsEnvsubst: true
//	  commonAnnotations: {policy.servicegraph.io/revision: ${ARGOCD_APP_REVISION}}
//
// A value that still holds a "$" is a placeholder nobody expanded and is ignored, as is one with
// control characters; a long value is cut at MaxRevisionLength bytes.
func Revision(annotations map[string]string) string {
	v := strings.TrimSpace(annotations[AnnotationRevision])
	if strings.Contains(v, "$") || strings.ContainsFunc(v, unicode.IsControl) {
		return ""
	}
	if len(v) > MaxRevisionLength {
		v = strings.ToValidUTF8(v[:MaxRevisionLength], "")
	}
	return v
}

// Versions maps a generated kind to the API version the operator writes it in.
type Versions map[schema.GroupKind]string

// VersionsFor lists the versions of the given kinds (the GVKs of the reconciler's outputs).
func VersionsFor(gvks ...schema.GroupVersionKind) Versions {
	v := make(Versions, len(gvks))
	for _, gvk := range gvks {
		v[gvk.GroupKind()] = gvk.Version
	}
	return v
}

// reasons says why each write path is taken (see controllers/ssa).
var reasons = map[change.Action]struct {
	action Action
	reason string
}{
	change.Created:  {ActionCreate, "missing object created"},
	change.Updated:  {ActionUpdate, "changed object server-side applied"},
	change.Replaced: {ActionReplace, "object replaced whole: an apply could not remove a field"},
	change.Pruned:   {ActionPrune, "object no longer generated by the graph deleted"},
}

// FromChanges turns what one reconcile did into records, in the order it did it: one per object
// created, updated, replaced or pruned. Unchanged objects and conflicts (objects left alone) make
// no record: they are no change to the cluster, and status and events report them. The objects
// are in the graph's namespace; their version comes from versions ("" for a kind it lacks).
//
// Whether the writes restored drift, and which changes were held back, only the caller knows:
// pass the result through MarkDrift, and add HoldBack records.
func FromChanges(g Graph, revision string, set change.Set, versions Versions, now time.Time) []Record {
	var out []Record
	for _, e := range set.Entries {
		r, ok := reasons[e.Action]
		if !ok {
			continue
		}
		obj := Object{Group: e.Ref.Group, Version: versions[schema.GroupKind{Group: e.Ref.Group, Kind: e.Ref.Kind}],
			Kind: e.Ref.Kind, Namespace: g.Namespace, Name: e.Ref.Name}
		out = append(out, newRecord(g, revision, obj, r.action, r.reason, now))
	}
	return out
}

// MarkDrift turns the creates, updates and replaces of a reconcile that found its generation
// already applied (so every write undid someone else's change) into drift restores. Prunes stay
// prunes. The records are changed in place and returned.
func MarkDrift(recs []Record) []Record {
	for i := range recs {
		switch recs[i].Action {
		case ActionCreate:
			recs[i].Action, recs[i].Reason = ActionDriftRestore, "object deleted by someone else recreated"
		case ActionUpdate, ActionReplace:
			recs[i].Action, recs[i].Reason = ActionDriftRestore, "object changed by someone else restored"
		}
	}
	return recs
}

// HoldBack records a change the graph asks for that the operator did not make, and why (for
// example "STRICT mTLS held back: 2 pods have no sidecar"; keep pod names out of it, the events
// carry them).
func HoldBack(g Graph, revision string, obj Object, reason string, now time.Time) Record {
	return newRecord(g, revision, obj, ActionHoldBack, reason, now)
}

func newRecord(g Graph, revision string, obj Object, action Action, reason string, now time.Time) Record {
	return Record{SchemaVersion: SchemaVersion, Time: now.UTC(), Graph: g, Revision: revision,
		Object: obj, Action: action, Reason: reason, Operator: Operator}
}
