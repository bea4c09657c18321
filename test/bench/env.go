package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/controllers"
	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// env is the control plane with one manager process and the benchmark's own client.
type env struct {
	cfg     config
	cluster *testenv.Cluster
	k8s     client.WithWatch
	// metrics is the manager's plain-HTTP metrics endpoint.
	metrics string
	// dir holds the manager binary, its log and the manifests kubectl applies.
	dir      string
	binary   string // the manager's
	log      *os.File
	progress func(format string, args ...any)
}

// startEnv builds the manager, starts the control plane with Istio's CRDs, and runs the manager
// against it with metrics on a plain-HTTP local port.
func startEnv(ctx context.Context, cfg config, progress func(string, ...any)) (e *env, err error) {
	e = &env{cfg: cfg, progress: progress}
	if e.dir, err = os.MkdirTemp("", "servicegraph-bench-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			e.stop(true)
		}
	}()
	e.binary = cfg.Manager
	if e.binary == "" {
		if e.binary, err = testenv.BuildManager(e.dir); err != nil {
			return nil, err
		}
	}
	if e.cluster, err = testenv.StartCluster(true); err != nil {
		return nil, err
	}
	restCfg := rest.CopyConfig(e.cluster.Config)
	restCfg.QPS = -1 // no client-side throttling: the foreign objects are created as fast as the server takes them
	if e.k8s, err = client.NewWithWatch(restCfg, client.Options{Scheme: controllers.NewScheme()}); err != nil {
		return nil, err
	}
	if e.log, err = os.Create(filepath.Join(e.dir, "manager.log")); err != nil {
		return nil, err
	}
	return e, e.startManager(ctx, e.binary)
}

func (e *env) startManager(ctx context.Context, binary string) error {
	port, err := testenv.FreePort()
	if err != nil {
		return err
	}
	probePort, err := e.cluster.StartManager(binary, e.log,
		"--metrics-bind-address=127.0.0.1:"+strconv.Itoa(port), "--metrics-secure=false",
		"--apply-workers="+strconv.Itoa(e.cfg.Workers))
	if err != nil {
		return err
	}
	e.metrics = fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	if err := waitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", probePort)); err != nil {
		return fmt.Errorf("manager not ready (log: %s): %w", e.log.Name(), err)
	}
	return waitHTTP(ctx, e.metrics)
}

// stop ends the manager and the control plane; keep leaves the temporary files (the manager's log)
// for a failed run.
func (e *env) stop(keep bool) {
	if e.cluster != nil {
		if err := e.cluster.Stop(); err != nil {
			e.progress("stopping the control plane: %v", err)
		}
		e.cluster = nil
	}
	if e.log != nil {
		_ = e.log.Close()
		e.log = nil
	}
	if keep {
		e.progress("kept %s (manager.log is the manager's log)", e.dir)
		return
	}
	_ = os.RemoveAll(e.dir)
}

// waitHTTP polls url until it answers 200 OK, for up to a minute.
func waitHTTP(ctx context.Context, url string) error {
	return poll(ctx, time.Minute, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, nil // not listening yet
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// poll calls done every interval until it reports true or an error, or timeout passes; done's
// context ends with the timeout.
func poll(ctx context.Context, timeout, interval time.Duration, done func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		ok, err := done(ctx)
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("condition not met within %v: %w", timeout, ctx.Err())
		case <-tick.C:
		}
	}
}
