// Command manager runs the servicegraph-operator controller manager.
package main

import (
	"crypto/tls"
	"flag"
	"os"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/servicegraph/servicegraph-operator/controllers"
	"github.com/servicegraph/servicegraph-operator/internal/audit"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
)

func main() {
	var (
		metricsAddr, probeAddr, leaderElectNS   string
		secureMetrics, enableHTTP2, leaderElect bool
		cfg                                     = controllers.DefaultConfig()
		// client-go's defaults: a failed leader is replaced within about leaseDuration.
		leaseDuration, renewDeadline, retryPeriod = 15 * time.Second, 10 * time.Second, 2 * time.Second
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0", "Address of the metrics endpoint (:8443 for HTTPS, :8080 for HTTP); 0 disables it.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address of the health and readiness probes.")
	flag.BoolVar(&secureMetrics, "metrics-secure", true, "Serve metrics over HTTPS, to authenticated and authorized clients only.")
	flag.BoolVar(&enableHTTP2, "enable-http2", false, "Enable HTTP/2 for the metrics server (off by default: HTTP/2 Rapid Reset and Stream Cancellation CVEs).")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader, so only one replica writes.")
	flag.StringVar(&leaderElectNS, "leader-election-namespace", "", "Namespace of the leader election lease (default: the manager's own namespace).")
	flag.DurationVar(&leaseDuration, "leader-election-lease-duration", leaseDuration, "How long followers wait before taking over a lease that was not renewed.")
	flag.DurationVar(&renewDeadline, "leader-election-renew-deadline", renewDeadline, "How long the leader keeps retrying to renew its lease before it gives up leadership.")
	flag.DurationVar(&retryPeriod, "leader-election-retry-period", retryPeriod, "How often leader election clients retry acquiring or renewing the lease.")
	flag.StringVar(&cfg.Options.TrustDomain, "trust-domain", cfg.Options.TrustDomain, "Istio trust domain of the principals in AuthorizationPolicies.")
	flag.StringVar(&cfg.Options.DNS.Namespace, "dns-namespace", cfg.Options.DNS.Namespace, "Namespace where kube-dns runs (pods labelled k8s-app=kube-dns).")
	flag.StringVar(&cfg.Options.Istiod.Namespace, "istiod-namespace", cfg.Options.Istiod.Namespace, "Namespace where istiod runs (pods labelled app=istiod).")
	flag.Func("cluster-cidrs", "Comma-separated pod and service IP ranges of the cluster (10.244.0.0/16,10.96.0.0/12): egress to external hosts, which NetworkPolicies cannot match by name, allows every address but these. Unset, such egress also reaches the cluster's own addresses on the edge's ports.",
		func(s string) (err error) {
			cfg.Options.ClusterCIDRs, err = compiler.ParseClusterCIDRs(s)
			return err
		})
	flag.DurationVar(&cfg.RecheckInterval, "recheck-interval", cfg.RecheckInterval, "How often a graph waiting on Istio or on a conflicting object is looked at again.")
	flag.IntVar(&cfg.Workers, "apply-workers", cfg.Workers, "Concurrent writes while applying one phase of a graph.")
	flag.IntVar(&cfg.Concurrency, "max-concurrent-reconciles", cfg.Concurrency, "Graphs reconciled at once (each graph one at a time), so a big graph does not hold up the others.")
	flag.StringVar(&cfg.Audit.WebhookURL, "audit-webhook-url", "", "An http(s) URL that every audit record (one per change the operator makes) is also POSTed to, as a JSON array; the log gets them either way (logger \"audit\").")
	flag.IntVar(&cfg.Audit.QueueSize, "audit-queue-size", audit.DefaultQueueSize, "Audit records waiting for the webhook; beyond it records are dropped (and counted), never waited for.")
	flag.StringVar(&cfg.Traffic.PrometheusURL, "prometheus-url", "", "A Prometheus server holding Istio's standard metrics (http(s)://HOST:PORT): every graph gets the TrafficCovered condition, the observed connections judged against the graph as Enforce mode applies it. Unset, the condition is left out.")
	flag.StringVar(&cfg.Traffic.BearerTokenFile, "prometheus-token-file", "", "A file holding the bearer token sent to Prometheus (read on every query, so a rotated token is picked up).")
	flag.StringVar(&cfg.Traffic.CAFile, "prometheus-ca-file", "", "A PEM file of the CA that signed Prometheus' certificate, trusted besides the system's.")
	flag.DurationVar(&cfg.Traffic.Interval, "traffic-interval", cfg.Traffic.Interval, "How often each namespace with graphs is queried (one query per namespace).")
	flag.DurationVar(&cfg.Traffic.Window, "traffic-window", cfg.Traffic.Window, "How far back each query looks (as servicegraph audit --since): a connection seen within it counts.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	metricsOpts := metricsserver.Options{BindAddress: metricsAddr, SecureServing: secureMetrics}
	if secureMetrics {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	if !enableHTTP2 {
		metricsOpts.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                  controllers.NewScheme(),
		Cache:                   controllers.CacheOptions(),
		Metrics:                 metricsOpts,
		HealthProbeBindAddress:  probeAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        "servicegraph-operator.policy.servicegraph.io",
		LeaderElectionNamespace: leaderElectNS,
		LeaseDuration:           &leaseDuration,
		RenewDeadline:           &renewDeadline,
		RetryPeriod:             &retryPeriod,
	})
	if err == nil {
		err = controllers.Setup(mgr, cfg)
	}
	if err == nil {
		err = mgr.AddHealthzCheck("healthz", healthz.Ping)
	}
	if err == nil {
		err = mgr.AddReadyzCheck("readyz", healthz.Ping)
	}
	if err == nil {
		log.Info("starting the manager")
		err = mgr.Start(ctrl.SetupSignalHandler())
	}
	if err != nil {
		log.Error(err, "manager failed")
		os.Exit(1)
	}
}
