package testenv

import (
	"io"
	"net/http"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/endpoints/request"

	"github.com/servicegraph/servicegraph-operator/controllers"
)

// Request is one API request a client made (watches are not recorded).
type Request struct {
	Verb        string // the API verb: get, list, create, update, patch, delete, deletecollection
	Namespace   string
	Resource    string
	Subresource string
	Name        string // empty for a list
	Code        int    // the HTTP status code of the answer; 0 when none came
}

// Target names what the request was about, "resource/name" or "resource/subresource/name".
func (r Request) Target() string {
	if r.Subresource != "" {
		return r.Resource + "/" + r.Subresource + "/" + r.Name
	}
	return r.Resource + "/" + r.Name
}

// IsWrite tells a write (any verb but get, list and watch) from a read.
func (r Request) IsWrite() bool { return r.Verb != "get" && r.Verb != "list" }

// RequestLog records the requests going through a rest.Config's transport (install it with
// cfg.Wrap(log.Wrap)): client-side, so the figures do not depend on the API server's logs.
type RequestLog struct {
	mu       sync.Mutex
	requests []Request
}

var requestInfo = &request.RequestInfoFactory{
	APIPrefixes:          sets.NewString("api", "apis"),
	GrouplessAPIPrefixes: sets.NewString("api"),
}

// Wrap is a rest.Config transport wrapper.
func (l *RequestLog) Wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		if info, err := requestInfo.NewRequestInfo(req); err == nil && info.IsResourceRequest && info.Verb != "watch" {
			name := info.Name
			if info.Verb == "create" && name == "" {
				if name, err = createdName(req); err != nil {
					return nil, err
				}
			}
			resp, err := rt.RoundTrip(req)
			r := Request{Verb: info.Verb, Namespace: info.Namespace, Resource: info.Resource, Subresource: info.Subresource, Name: name}
			if resp != nil {
				r.Code = resp.StatusCode
			}
			l.mu.Lock()
			l.requests = append(l.requests, r)
			l.mu.Unlock()
			return resp, err
		}
		return rt.RoundTrip(req)
	})
}

// Mark is a position in the log, for Since and ReadsSince.
func (l *RequestLog) Mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.requests)
}

// Since returns the writes recorded after mark in one namespace, leaving out Events.
func (l *RequestLog) Since(mark int, namespace string) []Request {
	return l.filter(mark, func(r Request) bool { return r.IsWrite() && r.Namespace == namespace && r.Resource != "events" })
}

// ReadsSince returns the gets and lists recorded after mark in one namespace.
func (l *RequestLog) ReadsSince(mark int, namespace string) []Request {
	return l.filter(mark, func(r Request) bool { return !r.IsWrite() && r.Namespace == namespace })
}

// Writes returns every write recorded.
func (l *RequestLog) Writes() []Request { return l.filter(0, Request.IsWrite) }

func (l *RequestLog) filter(mark int, keep func(Request) bool) []Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Request
	for _, r := range l.requests[mark:] {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// decoder reads request bodies in any encoding a client sends (JSON, protobuf).
var decoder = serializer.NewCodecFactory(controllers.NewScheme()).UniversalDeserializer()

// createdName reads the name of the object a POST creates from a copy of its body.
func createdName(req *http.Request) (string, error) {
	if req.GetBody == nil {
		return "", nil
	}
	copied, err := req.GetBody()
	if err != nil {
		return "", err
	}
	defer copied.Close()
	body, err := io.ReadAll(copied)
	if err != nil {
		return "", err
	}
	obj, _, err := decoder.Decode(body, nil, nil)
	if err != nil {
		return "", nil // not a kind this scheme knows: recorded without a name
	}
	accessor, err := meta.Accessor(obj)
	if err != nil {
		return "", nil
	}
	return accessor.GetName(), nil
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
