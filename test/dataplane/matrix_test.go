package dataplane_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/servicegraph/servicegraph-operator/test/dataplane"
)

// The grid has a row per destination port and a column per source, a blank where nothing was
// tried, and each reason once with the connections it refused.
func TestMatrixTable(t *testing.T) {
	web := &dataplane.Pod{Namespace: "shop", Name: "web"}
	api := &dataplane.Pod{Namespace: "shop", Name: "api"}
	db := &dataplane.Pod{Namespace: "shop", Name: "database"}
	tcp := func(n int32) dataplane.Port { return dataplane.Port{Number: n, Protocol: corev1.ProtocolTCP} }
	probe := func(from, to *dataplane.Pod, port dataplane.Port, connected bool) dataplane.Result {
		return dataplane.Result{Probe: dataplane.Probe{From: from, To: to, Port: port}, Connected: connected}
	}
	results := []dataplane.Result{
		probe(web, api, tcp(8080), true),
		probe(web, db, tcp(5432), false),
		probe(api, db, tcp(5432), true),
		probe(db, api, tcp(8080), false),
		probe(api, web, tcp(80), false),
	}
	got := dataplane.MatrixTable(results, func(p dataplane.Probe) string { return "ingress of " + p.To.Key() })
	want := `  to \ from          api  database  web
  api:8080/tcp            --        ok
  database:5432/tcp  ok             --
  web:80/tcp         --
  2 connected (ok), 3 refused (--)
  -- ingress of shop/api:
       database->api:8080
  -- ingress of shop/database:
       web->database:5432
  -- ingress of shop/web:
       api->web:80
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
