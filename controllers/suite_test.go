package controllers_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/servicegraph/servicegraph-operator/controllers"
	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// The suite runs against a real kube-apiserver and etcd with the ServiceGraph CRD and Istio's CRDs.
var (
	env     *envtest.Environment
	cfg     *rest.Config
	k8s     client.Client // the test's own client, not the manager's
	writes  = &testenv.RequestLog{}
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

// startManager runs the operator in-process on cfg, with every request it makes recorded, its
// configuration changed by the options given.
func startManager(cfg *rest.Config, log *testenv.RequestLog, options ...func(*controllers.Config)) (context.CancelFunc, chan struct{}) {
	mgrCfg := rest.CopyConfig(cfg)
	mgrCfg.Wrap(log.Wrap)
	mgr, err := ctrl.NewManager(mgrCfg, testenv.ManagerOptions())
	Expect(err).NotTo(HaveOccurred())
	conf := controllers.DefaultConfig()
	conf.RecheckInterval = time.Second
	for _, o := range options {
		o(&conf)
	}
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

// startOwnControlPlane starts a control plane of a spec's own (with Istio's CRDs or not) and a
// manager on it, both stopped when the spec's container ends, and returns a client of the test's.
func startOwnControlPlane(withIstio bool, options ...func(*controllers.Config)) (client.Client, *envtest.Environment) {
	return startOwnControlPlaneWith(withIstio, func(*envtest.Environment) {}, options...)
}

// startOwnControlPlaneWith is startOwnControlPlane with the environment adjusted before it starts,
// for example with API server flags.
func startOwnControlPlaneWith(withIstio bool, configure func(*envtest.Environment), options ...func(*controllers.Config)) (client.Client, *envtest.Environment) {
	env, err := testenv.New(withIstio)
	Expect(err).NotTo(HaveOccurred())
	configure(env)
	cfg, err := env.Start()
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(env.Stop)
	c, err := client.New(cfg, client.Options{Scheme: controllers.NewScheme()})
	Expect(err).NotTo(HaveOccurred())
	stop, done := startManager(cfg, &testenv.RequestLog{}, options...)
	DeferCleanup(func() {
		stop()
		<-done
	})
	return c, env
}
