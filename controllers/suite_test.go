package controllers_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/servicegraph/servicegraph-operator/controllers"
	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// The suite runs against a real kube-apiserver and etcd with the ServiceGraph CRD and Istio's CRDs.
var (
	env     *envtest.Environment
	cfg     *rest.Config
	k8s     client.Client // the test's own client, not the manager's
	writes  = &writeLog{}
	stopMgr context.CancelFunc
	mgrDone chan struct{}
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controllers Suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	var err error
	env, err = testenv.New(true)
	Expect(err).NotTo(HaveOccurred())
	cfg, err = env.Start()
	Expect(err).NotTo(HaveOccurred())
	k8s, err = client.New(cfg, client.Options{Scheme: controllers.NewScheme()})
	Expect(err).NotTo(HaveOccurred())
	stopMgr, mgrDone = startManager(cfg, writes)
})

var _ = AfterSuite(func() {
	if stopMgr != nil {
		stopMgr()
		<-mgrDone
	}
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

// restartManager replaces the running manager with a new one, which resyncs everything.
func restartManager() {
	stopMgr()
	<-mgrDone
	stopMgr, mgrDone = startManager(cfg, writes)
}

// startManager runs the operator in-process on cfg, with every request it makes recorded.
func startManager(cfg *rest.Config, log *writeLog) (context.CancelFunc, chan struct{}) {
	mgrCfg := rest.CopyConfig(cfg)
	mgrCfg.Wrap(log.wrap)
	mgr, err := ctrl.NewManager(mgrCfg, ctrl.Options{
		Scheme:                 controllers.NewScheme(),
		Cache:                  controllers.CacheOptions(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// Specs start more than one manager in this process.
		Controller: config.Controller{SkipNameValidation: new(true)},
	})
	Expect(err).NotTo(HaveOccurred())
	conf := controllers.DefaultConfig()
	conf.RecheckInterval = time.Second
	Expect(controllers.Setup(mgr, conf)).To(Succeed())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	return cancel, done
}

// write is one write request the manager made.
type write struct {
	Verb string // HTTP method: POST, PUT, PATCH, DELETE
	Path string
}

// Kind returns the resource of the request's path (networkpolicies, servicegraphs, ...) and
// whether it is the status subresource.
func (w write) Resource() string {
	parts := strings.Split(strings.Trim(w.Path, "/"), "/")
	for i, p := range parts {
		if p == "namespaces" && i+2 < len(parts) {
			rest := parts[i+2:]
			if len(rest) >= 3 && rest[2] == "status" {
				return rest[0] + "/status"
			}
			return rest[0]
		}
	}
	return parts[len(parts)-1]
}

// Name is the object name in the request's path, empty for a create by POST.
func (w write) Name() string {
	parts := strings.Split(strings.Trim(w.Path, "/"), "/")
	for i, p := range parts {
		if p == "namespaces" && i+3 < len(parts) {
			return parts[i+3]
		}
	}
	return ""
}

// Namespace is the namespace in the request's path.
func (w write) Namespace() string {
	parts := strings.Split(strings.Trim(w.Path, "/"), "/")
	for i, p := range parts {
		if p == "namespaces" && i+1 < len(parts) {
			return parts[i+1]
		}
	}
	return ""
}

// writeLog records every non-read request going through a rest.Config's transport.
type writeLog struct {
	mu  sync.Mutex
	log []write
}

func (l *writeLog) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			l.mu.Lock()
			l.log = append(l.log, write{Verb: req.Method, Path: req.URL.Path})
			l.mu.Unlock()
		}
		return rt.RoundTrip(req)
	})
}

// since returns the writes made after mark, in namespace ns (events and leases excluded).
func (l *writeLog) since(mark int, ns string) []write {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []write
	for _, w := range l.log[mark:] {
		if w.Namespace() == ns && w.Resource() != "events" {
			out = append(out, w)
		}
	}
	return out
}

func (l *writeLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.log)
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
