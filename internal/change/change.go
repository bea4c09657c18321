// Package change records what a reconcile did to the cluster, object by object, as typed values:
// the status, the events, the metrics and the logs all read the same record.
package change

import (
	"fmt"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
)

// Action is what happened to one object.
type Action string

const (
	// Created is a missing object written with a create.
	Created Action = "Created"
	// Updated is a changed object server-side applied.
	Updated Action = "Updated"
	// Replaced is an object written whole over its live version, where an apply could not remove
	// a field.
	Replaced Action = "Replaced"
	// Pruned is an object deleted because the graph no longer generates it.
	Pruned Action = "Pruned"
	// Unchanged is an object that was already as desired: no write.
	Unchanged Action = "Unchanged"
)

// Entry is what happened to one object.
type Entry struct {
	Ref    v1alpha1.ObjectReference
	Action Action
}

// Cause is why an object was left alone.
type Cause int

const (
	// NotOwned is an object under a generated name that the graph does not control.
	NotOwned Cause = iota
	// NamespaceWide is another namespace-wide object of a kind that allows only one.
	NamespaceWide
)

// Conflict is an object in the way of the graph: it is left alone and reported.
type Conflict struct {
	// Ref is the object in the way (for NamespaceWide, the other object, not the graph's own).
	Ref   v1alpha1.ObjectReference
	Cause Cause
}

func (c Conflict) String() string {
	if c.Cause == NamespaceWide {
		return fmt.Sprintf("%s/%s is namespace-wide and not managed by this ServiceGraph", c.Ref.Kind, c.Ref.Name)
	}
	return fmt.Sprintf("%s/%s exists and is not managed by this ServiceGraph", c.Ref.Kind, c.Ref.Name)
}

// Set is what one reconcile did, in the order it did it.
type Set struct {
	Entries   []Entry
	Conflicts []Conflict
}

// Add records what happened to one object.
func (s *Set) Add(ref v1alpha1.ObjectReference, action Action) {
	s.Entries = append(s.Entries, Entry{Ref: ref, Action: action})
}

// Append adds another set's records after this one's.
func (s *Set) Append(other Set) {
	s.Entries = append(s.Entries, other.Entries...)
	s.Conflicts = append(s.Conflicts, other.Conflicts...)
}

// Written lists the objects created, updated or replaced.
func (s Set) Written() []v1alpha1.ObjectReference {
	return s.refs(func(a Action) bool { return a == Created || a == Updated || a == Replaced })
}

// Pruned lists the objects deleted.
func (s Set) Pruned() []v1alpha1.ObjectReference {
	return s.refs(func(a Action) bool { return a == Pruned })
}

func (s Set) refs(match func(Action) bool) []v1alpha1.ObjectReference {
	var out []v1alpha1.ObjectReference
	for _, e := range s.Entries {
		if match(e.Action) {
			out = append(out, e.Ref)
		}
	}
	return out
}
