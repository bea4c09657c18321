package testenv

import (
	"net/http"
	"sync"

	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/endpoints/request"
)

// Write is one write request (any verb but get, list and watch) a client made.
type Write struct {
	Verb        string // the API verb: create, update, patch, delete, deletecollection
	Namespace   string
	Resource    string
	Subresource string
	Name        string // empty for a create by POST
}

// Target names what the request wrote, "resource/name" or "resource/subresource/name".
func (w Write) Target() string {
	if w.Subresource != "" {
		return w.Resource + "/" + w.Subresource + "/" + w.Name
	}
	return w.Resource + "/" + w.Name
}

// WriteLog records the write requests going through a rest.Config's transport (install it with
// cfg.Wrap(log.Wrap)): client-side, so the figures do not depend on the API server's logs.
type WriteLog struct {
	mu     sync.Mutex
	writes []Write
}

var requestInfo = &request.RequestInfoFactory{
	APIPrefixes:          sets.NewString("api", "apis"),
	GrouplessAPIPrefixes: sets.NewString("api"),
}

// Wrap is a rest.Config transport wrapper.
func (l *WriteLog) Wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		if info, err := requestInfo.NewRequestInfo(req); err == nil && info.IsResourceRequest &&
			info.Verb != "get" && info.Verb != "list" && info.Verb != "watch" {
			l.mu.Lock()
			l.writes = append(l.writes, Write{Verb: info.Verb, Namespace: info.Namespace,
				Resource: info.Resource, Subresource: info.Subresource, Name: info.Name})
			l.mu.Unlock()
		}
		return rt.RoundTrip(req)
	})
}

// Mark is a position in the log, for Since.
func (l *WriteLog) Mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.writes)
}

// Since returns the writes recorded after mark in one namespace, leaving out Events.
func (l *WriteLog) Since(mark int, namespace string) []Write {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Write
	for _, w := range l.writes[mark:] {
		if w.Namespace == namespace && w.Resource != "events" {
			out = append(out, w)
		}
	}
	return out
}

// All returns every write recorded.
func (l *WriteLog) All() []Write {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Write(nil), l.writes...)
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
