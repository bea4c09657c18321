package chart

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// A real `helm install` of the chart with its default values, the operator it describes running
// under its own ServiceAccount; `helm upgrade` changing a flag; `helm uninstall`.
func TestHelmInstallUpgradeUninstall(t *testing.T) {
	const release, ns = "servicegraph", "servicegraph-system"
	c := startCluster(t)
	kc := "--kubeconfig=" + c.Kubeconfig
	log := &testenv.Log{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("manager log:\n%s", log.String())
		}
	})

	start := time.Now()
	helm(t, "install", release, chartDir, "--namespace", ns, "--create-namespace", kc)
	t.Logf("helm install: %v", time.Since(start))
	kubectl(t, c, "get", "crd", "servicegraphs.policy.servicegraph.io") // from the chart's crds/
	// As NOTES.txt says: Pod Security admission then holds the manager to the restricted standard.
	kubectl(t, c, "label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
	d := deployment(t, c, ns, "servicegraph-controller-manager")
	restrictedPodAdmitted(t, c, d)

	op := runOperator(t, c, d, log)
	start = time.Now()
	seedGraphReady(t, c)
	t.Logf("seed graph Ready %v after the apply", time.Since(start))
	// Leader election ran in the release's namespace with the chart's Role.
	if holder := kubectl(t, c, "get", "lease", "servicegraph-operator.policy.servicegraph.io", "-n", ns, "-o", "jsonpath={.spec.holderIdentity}"); holder == "" {
		t.Error("no leader holds the lease")
	}
	// and recorded it as an event there: the chart's Role lets it (the API server refused it once).
	if events := kubectl(t, c, "get", "events", "-n", ns, "--field-selector", "reason=LeaderElection", "-o", "name"); strings.TrimSpace(events) == "" {
		t.Errorf("no LeaderElection event in %s; the manager's log:\n%s", ns, strings.Join(log.Lines("rejected"), "\n"))
	}
	// Scrapers need the metrics-reader ClusterRole: the operator's metrics-auth-role checks them.
	kubectl(t, c, "create", "namespace", "monitoring")
	kubectl(t, c, "create", "serviceaccount", "prometheus", "-n", "monitoring")
	prometheus := strings.TrimSpace(kubectl(t, c, "create", "token", "prometheus", "-n", "monitoring"))
	if code, body := op.scrape(t, prometheus); code != http.StatusForbidden {
		t.Errorf("an unbound scraper got %d: %.200s", code, body)
	}

	// The upgrade changes a flag (the trust domain of every principal), turns the admission
	// policies on and lets Prometheus read the metrics.
	helm(t, "upgrade", release, chartDir, "--namespace", ns, kc, "--reuse-values",
		"--set", "flags.trust-domain=example.org", "--set", "admission.enabled=true",
		"--set", "metrics.readers[0].name=prometheus", "--set", "metrics.readers[0].namespace=monitoring")
	upgraded := deployment(t, c, ns, "servicegraph-controller-manager")
	if !strings.Contains(strings.Join(upgraded.Spec.Template.Spec.Containers[0].Args, " "), "--trust-domain=example.org") {
		t.Fatalf("the upgraded Deployment's args: %v", upgraded.Spec.Template.Spec.Containers[0].Args)
	}
	// The pod template changed, so the Deployment rolls: the old manager goes, a new one starts.
	op.Stop()
	kubectl(t, c, "label", "namespace", "shop", "policy.servicegraph.io/enforced=true")
	op = runOperator(t, c, upgraded, log)
	eventually(t, 60*time.Second, "principals in the new trust domain", func() error {
		out, err := c.Kubectl(ctx, "get", "authorizationpolicy", "shop-svc-api", "-n", "shop", "-o", "jsonpath={.spec.rules[*].from[*].source.principals}")
		if err == nil && !strings.Contains(out, "example.org/ns/shop/sa/web") {
			return errString("principals " + out)
		}
		return err
	})
	kubectl(t, c, "wait", "--for=condition=Ready", "servicegraph/shop", "-n", "shop", "--timeout=60s")
	// The admission policies name the release's ServiceAccount: its writes went through (above),
	// anyone else's are refused in the enforced namespace.
	eventually(t, 30*time.Second, "admission refusing a hand deletion in an enforced namespace", func() error {
		out, err := c.Kubectl(ctx, "delete", "networkpolicy", "shop-default-deny", "-n", "shop", "--dry-run=server")
		if err == nil || !strings.Contains(out, "is enforced by servicegraph-operator") {
			return errString("the deletion was not refused: " + out)
		}
		return nil
	})
	eventually(t, 30*time.Second, "Prometheus reading metrics", func() error {
		if code, body := op.scrape(t, prometheus); code != http.StatusOK || !strings.Contains(body, "controller_runtime_reconcile_total") {
			return errString(body)
		}
		return nil
	})
	uid := kubectl(t, c, "get", "servicegraph", "shop", "-n", "shop", "-o", "jsonpath={.metadata.uid}")
	policies := kubectl(t, c, "get", "networkpolicies,authorizationpolicies,peerauthentications", "-n", "shop", "-o", "name")

	// Uninstall. Helm deletes what its templates made; it never deletes crds/, so every
	// ServiceGraph stays and, through their ownerReferences, so do the policies they generated:
	// traffic keeps flowing exactly as the graphs last said, unmanaged until the operator is back.
	// Deleting them would lift default-deny (or drop allow rules) in every graph's namespace at once.
	helm(t, "uninstall", release, "--namespace", ns, kc)
	op.Stop() // the Deployment is gone, and its pods with it
	for _, gone := range [][]string{
		{"deployment", "servicegraph-controller-manager", "-n", ns},
		{"serviceaccount", "servicegraph-controller-manager", "-n", ns},
		{"clusterrole", "servicegraph-manager-role"},
		{"role", "servicegraph-manager-role", "-n", "default"},
		{"validatingadmissionpolicy", "servicegraph-enforced-namespaces"},
	} {
		if out, err := c.Kubectl(ctx, append([]string{"get"}, gone...)...); err == nil {
			t.Errorf("%v is left after helm uninstall: %s", gone, out)
		}
	}
	// The API server checks a token's ServiceAccount through its informers: a moment after the
	// deletion the manager's identity is gone.
	eventually(t, 15*time.Second, "the deleted ServiceAccount's token refused", func() error {
		if out, err := c.Kubectl(ctx, "--kubeconfig", op.Kubeconfig, "auth", "whoami"); err == nil || !strings.Contains(out, "Unauthorized") {
			return errString("still authenticates: " + out)
		}
		return nil
	})
	kubectl(t, c, "get", "crd", "servicegraphs.policy.servicegraph.io")
	if after := kubectl(t, c, "get", "networkpolicies,authorizationpolicies,peerauthentications", "-n", "shop", "-o", "name"); after != policies {
		t.Errorf("policies before uninstall:\n%s\nafter:\n%s", policies, after)
	}
	owners := kubectl(t, c, "get", "networkpolicies,authorizationpolicies,peerauthentications", "-n", "shop",
		"-o", "jsonpath={range .items[*]}{.metadata.ownerReferences[0].uid}{\"\\n\"}{end}")
	for _, owner := range strings.Fields(owners) {
		if owner != uid {
			t.Errorf("a policy is owned by %s, not the ServiceGraph %s that is still there", owner, uid)
		}
	}
	if out := kubectl(t, c, "get", "servicegraph", "shop", "-n", "shop", "-o", "jsonpath={.metadata.uid}"); out != uid {
		t.Errorf("the ServiceGraph is %q after uninstall, was %q", out, uid)
	}
}

type errString string

func (e errString) Error() string { return string(e) }
