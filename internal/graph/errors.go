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
	c.list = append(c.list, Error{Item: item, Edge: edge, Message: fmt.Sprintf(format, args...)})
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
