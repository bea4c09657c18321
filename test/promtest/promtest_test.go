package promtest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// TestBackfillAndScrape starts the real server with a backfilled counter (a label value that
// needs escaping, as every Istio label could) and a loopback target, and reads both back through
// client_golang's API client, the way internal/traffic does.
func TestBackfillAndScrape(t *testing.T) {
	if _, _, err := Binaries(); err != nil {
		t.Fatal(err)
	}
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "# TYPE scraped_total counter\nscraped_total{side=\"live\"} 7")
	}))
	defer target.Close()

	now := time.Now()
	odd := `a "quoted" \ value, ünïcode`
	s, err := Start(Options{
		Backfill: []Series{
			Counter("istio_requests_total", map[string]string{"reporter": "destination", "odd": odd}, now.Add(-2*time.Hour), now.Add(-time.Hour), time.Minute, 3),
			Counter("istio_tcp_connections_opened_total", map[string]string{"reporter": "destination"}, now.Add(-2*time.Hour), now.Add(-time.Hour), time.Minute, 1),
		},
		Scrape: []string{target.URL + "/metrics"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()

	c, err := promapi.NewClient(promapi.Config{Address: s.URL})
	if err != nil {
		t.Fatal(err)
	}
	api := promv1.NewAPI(c)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	query := func(q string, at time.Time) model.Vector {
		t.Helper()
		v, _, _, err := api.Query(ctx, q, at)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return v.(model.Vector)
	}
	// increase() extrapolates: only that it is positive is asserted.
	got := query(`sum by (odd) (increase(istio_requests_total{reporter="destination"}[3h]))`, now)
	if len(got) != 1 || got[0].Value <= 0 || string(got[0].Metric["odd"]) != odd {
		t.Errorf("backfilled requests: %v", got)
	}
	if got := query(`increase(istio_tcp_connections_opened_total[3h])`, now); len(got) != 1 || got[0].Value <= 0 {
		t.Errorf("backfilled connections: %v", got)
	}
	if got := query(`increase(istio_requests_total[30m])`, now); len(got) != 0 {
		t.Errorf("a window after the data holds %v", got)
	}
	// The target was scraped after the server started: asked at the present.
	if got := query(`scraped_total{side="live"}`, time.Now()); len(got) != 1 || got[0].Value != 7 {
		t.Errorf("scraped: %v", got)
	}

	s.Stop()
	if _, _, _, err := api.Query(ctx, "up", now); err == nil {
		t.Error("the stopped server still answers")
	}
}
