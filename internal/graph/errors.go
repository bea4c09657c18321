package graph

import (
	"fmt"
	"strings"
)

// Error is one problem in a ServiceGraph.
type Error struct {
	// Item names what is at fault the way a reader finds it: `edge "web->api:0"` (as written),
	// `connection "web->api:53(UDP)"` (spec.connections in compact notation), `service "api"`, or a
	// field such as "spec.mtls".
	Item string
	// Edge is the offending edge, as in Item; empty when the problem is not an edge's.
	Edge string
	// Message says what is wrong.
	Message string
	// Kind classifies the problem, so that tools (the linter) tell problems apart without
	// parsing messages.
	Kind Kind
}

// Kind is a stable class of problem.
type Kind string

const (
	// KindInvalid is a malformed or contradictory field: syntax, range, length, a clash.
	KindInvalid Kind = "Invalid"
	// KindUndeclared is an edge naming a service that spec.services does not declare.
	KindUndeclared Kind = "Undeclared"
	// KindDuplicate is an edge that says what an earlier edge or connection says.
	KindDuplicate Kind = "Duplicate"
	// KindSelfEdge is an edge from a service to itself.
	KindSelfEdge Kind = "SelfEdge"
	// KindHTTPOnNonHTTPPort is a path or method on a port whose protocol is not HTTP or GRPC.
	KindHTTPOnNonHTTPPort Kind = "HTTPOnNonHTTPPort"
	// KindTooLarge is a graph whose compiled objects exceed what the API server or Istio accepts.
	KindTooLarge Kind = "TooLarge"
)

// kinds classifies problems by the format of their message. Keying on the constant format, not on
// the formatted text, keeps the kind stable whatever the arguments, and keeps every call site of
// add as it is; a format that is not listed is KindInvalid.
var kinds = map[string]Kind{
	"service %q is not declared in spec.services": KindUndeclared,
	"duplicates %s": KindDuplicate,
	"an edge cannot go from a service to itself":                     KindSelfEdge,
	"paths and methods need an HTTP or GRPC port, but port %s is %s": KindHTTPOnNonHTTPPort,
}

func (e Error) Error() string {
	return e.Item + ": " + e.Message
}

// ErrorList is every problem found in a ServiceGraph, in the order of the spec (services, then
// edges, then connections), so that the same spec always yields the same message.
type ErrorList []Error

// Error joins the problems with "; " on one line, fit for a condition message.
func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// Err returns the list as an error, nil when empty.
func (l ErrorList) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

// errs collects problems while a graph is built.
type errs struct{ list ErrorList }

func (c *errs) add(item, edge, format string, args ...any) {
	kind, ok := kinds[format]
	if !ok {
		kind = KindInvalid
	}
	c.list = append(c.list, Error{Item: item, Edge: edge, Message: fmt.Sprintf(format, args...), Kind: kind})
}

// edge adds a problem of an edge or connection.
func (c *errs) edge(src source, format string, args ...any) {
	c.add(src.item(), src.text, format, args...)
}

// source is an edge as the user wrote it: kind "edge" (spec.edges) or "connection"
// (spec.connections, in compact notation). Its item is only formatted when there is an error.
type source struct{ kind, text string }

func (s source) item() string { return fmt.Sprintf("%s %q", s.kind, s.text) }

func serviceItem(s string) string { return fmt.Sprintf("service %q", s) }
