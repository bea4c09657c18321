package lint

import (
	"strings"
	"testing"
)

// Manifests for the role tests: pods labelled app=hook in namespace shop, and the evidence that
// says what they are for.
const (
	hookDeployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: hook, namespace: shop}
spec:
  template:
    metadata: {labels: {app: hook}}
    spec:
      containers: [{name: c, ports: [{name: webhook, containerPort: 9443}, {name: metrics, containerPort: 8080}]}]`
	hookService = `apiVersion: v1
kind: Service
metadata: {name: hook, namespace: shop}
spec:
  selector: {app: hook}
  ports: [{name: https, port: 443, targetPort: 9443}]`
	hookWebhook = `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: hook}
webhooks: [{name: x.example.com, clientConfig: {service: {name: hook, namespace: shop}}}]`
)

// npFor is a NetworkPolicy for the pods labelled app=hook with one ingress rule.
func npFor(rule string) string {
	return npYAML("  podSelector: {matchLabels: {app: hook}}\n  ingress: [" + rule + "]\n")
}

func stream(docs ...string) string { return strings.Join(docs, "\n---\n") }

// severityOf is the severity of the rule's finding, "" when there is none.
func severityOf(findings []Finding, rule string) Severity {
	for _, f := range findings {
		if f.Rule == rule {
			return f.Severity
		}
	}
	return ""
}

// TestRoles: each role, from each kind of evidence, makes the opening it needs a note; the same
// opening on more ports than the role needs keeps its severity and says what the role needed.
func TestRoles(t *testing.T) {
	mutating := strings.Replace(hookWebhook, "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", 1)
	apiService := "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {name: v1.x.example.com}\nspec: {service: {name: hook, namespace: shop}}"
	conversion := "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: xs.example.com}\nspec:\n  conversion:\n    strategy: Webhook\n    webhook: {clientConfig: {service: {name: hook, namespace: shop, port: 443}}}"
	loadBalancer := strings.Replace(hookService, "spec:\n", "spec:\n  type: LoadBalancer\n", 1)
	ingressObj := "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: in, namespace: shop}\nspec:\n  rules: [{http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: hook, port: {name: https}}}}]}}]"
	serviceMonitor := "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: sm, namespace: monitoring}\nspec:\n  namespaceSelector: {matchNames: [shop]}\n  selector: {matchLabels: {app: hook}}\n  endpoints: [{port: metrics}]"
	metricsService := "apiVersion: v1\nkind: Service\nmetadata: {name: hook-metrics, namespace: shop, labels: {app: hook}}\nspec:\n  selector: {app: hook}\n  ports: [{name: metrics, port: 8080, targetPort: metrics}]"
	podMonitor := "apiVersion: monitoring.coreos.com/v1\nkind: PodMonitor\nmetadata: {name: pm, namespace: shop}\nspec:\n  selector: {matchLabels: {app: hook}}\n  podMetricsEndpoints: [{port: metrics}]"
	annotated := strings.Replace(hookDeployment, "metadata: {labels: {app: hook}}", "metadata: {labels: {app: hook}, annotations: {prometheus.io/port: '8080'}}", 1)
	gateway := "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: shop}\nspec:\n  gatewayClassName: istio\n  listeners: [{name: http, port: 8080, protocol: HTTP}]"
	gatewayPods := strings.Replace(hookDeployment, "{labels: {app: hook}}", "{labels: {app: hook, gateway.networking.k8s.io/gateway-name: gw}}", 1)
	everyNamespace := "{from: [{namespaceSelector: {}}], ports: [{port: %s}]}"
	cases := []struct {
		name, input, rule string
		want              Severity
	}{
		{"webhook: its targetPort from anywhere", stream(hookDeployment, hookService, hookWebhook, npFor("{ports: [{port: 9443}]}")), "NP001", SeverityNote},
		{"webhook: by the port's name", stream(hookDeployment, hookService, hookWebhook, npFor("{ports: [{port: webhook}]}")), "NP001", SeverityNote},
		{"webhook: every port is more than it needs", stream(hookDeployment, hookService, hookWebhook, npFor("{}")), "NP001", SeverityError},
		{"webhook: another port is more than it needs", stream(hookDeployment, hookService, hookWebhook, npFor("{ports: [{port: 9443}, {port: 8080}]}")), "NP001", SeverityError},
		{"no evidence: no role", stream(hookDeployment, hookService, npFor("{ports: [{port: 9443}]}")), "NP001", SeverityError},
		{"mutating webhook", stream(hookDeployment, hookService, mutating, npFor("{ports: [{port: 9443}]}")), "NP001", SeverityNote},
		{"APIService backend", stream(hookDeployment, hookService, apiService, npFor("{ports: [{port: 9443}]}")), "NP001", SeverityNote},
		{"conversion webhook", stream(hookDeployment, hookService, conversion, npFor("{ports: [{port: 9443}]}")), "NP001", SeverityNote},
		{"webhook pods only known by their Service", stream(hookService, hookWebhook, npFor("{ports: [{port: 9443}]}")), "NP001", SeverityNote},
		{"LoadBalancer front end", stream(hookDeployment, loadBalancer, npFor("{ports: [{port: 9443}]}")), "NP001", SeverityNote},
		{"Ingress backend: from the cluster", stream(hookDeployment, hookService, ingressObj, npFor("{from: [{namespaceSelector: {}}], ports: [{port: 9443}]}")), "NP012", SeverityNote},
		{"Ingress backend: not from anywhere (the controller is a pod)", stream(hookDeployment, hookService, ingressObj, npFor("{from: [{ipBlock: {cidr: 0.0.0.0/0}}], ports: [{port: 9443}]}")), "NP004", SeverityError},
		{"ServiceMonitor: metrics port from every namespace", stream(hookDeployment, metricsService, serviceMonitor, npFor(strings.Replace(everyNamespace, "%s", "8080", 1))), "NP012", SeverityNote},
		{"ServiceMonitor: not from anywhere", stream(hookDeployment, metricsService, serviceMonitor, npFor("{ports: [{port: 8080}]}")), "NP001", SeverityError},
		{"PodMonitor", stream(hookDeployment, podMonitor, npFor(strings.Replace(everyNamespace, "%s", "metrics", 1))), "NP012", SeverityNote},
		{"prometheus.io/port annotation", stream(annotated, npFor(strings.Replace(everyNamespace, "%s", "8080", 1))), "NP012", SeverityNote},
		{"metrics role: another port stays a warning", stream(annotated, npFor(strings.Replace(everyNamespace, "%s", "9443", 1))), "NP012", SeverityWarning},
		{"istiod by its labels", npYAML("  podSelector: {matchLabels: {app: istiod}}\n  ingress: [{ports: [{port: 15012}, {port: 15017}]}]\n"), "NP001", SeverityNote},
		{"istiod: another port", npYAML("  podSelector: {matchLabels: {app: istiod}}\n  ingress: [{ports: [{port: 8080}]}]\n"), "NP001", SeverityError},
		{"Istio ingress gateway from the root namespace", istioYAML("AuthorizationPolicy", "istio-system", "  selector: {matchLabels: {istio: ingressgateway}}\n  rules: [{}]\n"), "AP005", SeverityNote},
		{"Istio ingress gateway by its labels", istioYAML("AuthorizationPolicy", "shop", "  selector: {matchLabels: {istio: ingressgateway}}\n  rules: [{}]\n"), "AP005", SeverityNote},
		{"Gateway API gateway: a listener's port", stream(gateway, gatewayPods, istioYAML("AuthorizationPolicy", "shop", "  selector: {matchLabels: {app: hook}}\n  rules: [{to: [{operation: {ports: ['8080']}}]}]\n")), "AP001", SeverityNote},
		{"Gateway API gateway: not a listener's port", stream(gateway, gatewayPods, istioYAML("AuthorizationPolicy", "shop", "  selector: {matchLabels: {app: hook}}\n  rules: [{to: [{operation: {ports: ['9000']}}]}]\n")), "AP001", SeverityWarning},
		{"webhook: plain text on its port", stream(hookDeployment, hookService, hookWebhook, istioYAML("PeerAuthentication", "shop", "  selector: {matchLabels: {app: hook}}\n  portLevelMtls: {9443: {mode: PERMISSIVE}}\n")), "PA003", SeverityNote},
		{"webhook: plain text on every port", stream(hookDeployment, hookService, hookWebhook, istioYAML("PeerAuthentication", "shop", "  selector: {matchLabels: {app: hook}}\n  mtls: {mode: PERMISSIVE}\n")), "PA003", SeverityWarning},
		{"Prometheus calls out", npYAML("  podSelector: {matchLabels: {app.kubernetes.io/name: prometheus}}\n  policyTypes: [Egress]\n  egress: [{}]\n"), "NP002", SeverityNote},
		{"another workload calling out", npYAML("  podSelector: {matchLabels: {app: web}}\n  policyTypes: [Egress]\n  egress: [{}]\n"), "NP002", SeverityWarning},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Lint(decode(t, tc.input), DefaultOptions())
			if s := severityOf(got, tc.rule); s != tc.want {
				t.Errorf("%s: severity %q, want %q; findings %+v", tc.rule, s, tc.want, got)
			}
			for _, f := range got {
				if f.Rule == tc.rule && f.Severity == SeverityNote && !strings.Contains(f.Message, "its role needs it") {
					t.Errorf("a note must say why: %s", f.Message)
				}
				if f.Rule == tc.rule && f.Severity != SeverityNote && tc.name != "no evidence: no role" && strings.Contains(tc.input, "kind: Deployment") &&
					!strings.Contains(f.Message, "more than its role needs") {
					t.Errorf("an opening wider than the role must say what the role needs: %s", f.Message)
				}
			}
		})
	}
}

// notRoles are openings that look like a role's and are not, or whose pods the input cannot
// vouch for: each keeps its severity.
var notRoles = []struct {
	name, input, rule string
	want              Severity
}{
	{"a selector that excludes gateways is no gateway", npYAML("  podSelector: {matchExpressions: [{key: istio, operator: NotIn, values: [ingressgateway]}]}\n  ingress: [{}]\n"), "NP001", SeverityError},
	{"an egress gateway takes no traffic from outside", npYAML("  podSelector: {matchLabels: {istio: egressgateway}}\n  ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0}}]}]\n"), "NP004", SeverityError},
	{"a waypoint is no gateway", stream(strings.Replace(hookDeployment, "{labels: {app: hook}}", "{labels: {app: hook, gateway.networking.k8s.io/gateway-name: waypoint}}", 1),
		"apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: waypoint, namespace: shop}\nspec: {gatewayClassName: istio-waypoint, listeners: [{name: mesh, port: 15008, protocol: HBONE}]}",
		npFor("{}")), "NP001", SeverityError},
	{"gateway labels without their Gateway", stream(strings.Replace(hookDeployment, "{labels: {app: hook}}", "{labels: {app: hook, gateway.networking.k8s.io/gateway-name: gw}}", 1), npFor("{}")), "NP001", SeverityError},
	{"prometheus.io/port 0 is no port", stream(strings.Replace(hookDeployment, "metadata: {labels: {app: hook}}", "metadata: {labels: {app: hook}, annotations: {prometheus.io/port: '0'}}", 1),
		istioYAML("AuthorizationPolicy", "shop", "  selector: {matchLabels: {app: hook}}\n  rules: [{from: [{source: {principals: ['*']}}]}]\n")), "AP002", SeverityWarning},
	{"the root namespace's empty rule reaches the mesh", stream(strings.Replace(strings.Replace(hookDeployment, "namespace: shop", "namespace: istio-system", 1), "app: hook", "istio: ingressgateway", 1),
		istioYAML("AuthorizationPolicy", "istio-system", "  rules: [{}]\n")), "AP005", SeverityError},
	{"the root namespace's DISABLE reaches the mesh", stream(strings.Replace(strings.Replace(hookDeployment, "namespace: shop", "namespace: istio-system", 1), "app: hook", "istio: ingressgateway", 1),
		istioYAML("PeerAuthentication", "istio-system", "  mtls: {mode: DISABLE}\n")), "PA001", SeverityError},
	{"the root namespace's selector reaches other namespaces' pods: only labels count", stream(strings.Replace(hookDeployment, "namespace: shop", "namespace: istio-system", 1),
		strings.Replace(hookService, "namespace: shop", "namespace: istio-system", 1), strings.Replace(hookWebhook, "namespace: shop", "namespace: istio-system", 1),
		istioYAML("AuthorizationPolicy", "istio-system", "  selector: {matchLabels: {app: hook}}\n  rules: [{to: [{operation: {ports: ['9443']}}]}]\n")), "AP001", SeverityWarning},
	{"a policy wider than its LoadBalancer's pods", stream(strings.Replace(strings.Replace(hookService, "spec:\n", "spec:\n  type: LoadBalancer\n", 1), "selector: {app: hook}", "selector: {app: hook, tier: public}", 1),
		npYAML("  podSelector: {matchLabels: {tier: public}}\n  ingress: [{ports: [{port: 9443}]}]\n")), "NP001", SeverityError},
	{"every port but one from every namespace", npFor("{from: [{namespaceSelector: {}}], ports: [{port: 2, endPort: 65535}]}"), "NP006", SeverityError},
}

// TestNotRoles: what looks like a role's opening and is not keeps its severity.
func TestNotRoles(t *testing.T) {
	for _, tc := range notRoles {
		t.Run(tc.name, func(t *testing.T) {
			got := Lint(decode(t, tc.input), DefaultOptions())
			if s := severityOf(got, tc.rule); s != tc.want {
				t.Errorf("%s: severity %q, want %q; findings %+v", tc.rule, s, tc.want, got)
			}
		})
	}
}

// crossRefCases are the rules that read a policy against the input's Services and workloads, and
// the ** path rule, each on a hit and a miss (TestRules runs them).
var crossRefCases = []ruleCase{
	{"a Service's port, not its targetPort", "NP009",
		stream(hookDeployment, hookService, npFor("{from: [{podSelector: {}}], ports: [{port: 443}]}")),
		stream(hookDeployment, hookService, npFor("{from: [{podSelector: {}}], ports: [{port: 9443}]}"))},
	{"a Service's port, its targetPort allowed too", "NP009",
		stream(hookDeployment, hookService, npFor("{from: [{podSelector: {}}], ports: [{port: 443}]}")),
		stream(hookDeployment, hookService, npFor("{from: [{podSelector: {}}], ports: [{port: 443}, {port: webhook}]}"))},
	{"a Service's port, pods known by the Service only", "NP009",
		stream(hookService, npFor("{from: [{podSelector: {}}], ports: [{port: 443}]}")),
		stream(strings.Replace(hookService, "targetPort: 9443", "targetPort: 443", 1), npFor("{from: [{podSelector: {}}], ports: [{port: 443}]}"))},
	{"a podSelector naming pods of another namespace", "NP010",
		stream(hookDeployment, promDeployment, npFor("{from: [{podSelector: {matchLabels: {app: prometheus}}}], ports: [{port: 8080}]}")),
		stream(promDeployment, npFor("{from: [{podSelector: {matchLabels: {app: prometheus}}}], ports: [{port: 8080}]}"))}, // the namespace's pods are not in the input
	{"a podSelector naming pods of another namespace, beside the right one", "NP010",
		stream(hookDeployment, promDeployment, npFor("{from: [{podSelector: {matchLabels: {app: prometheus}}}], ports: [{port: 8080}]}")),
		stream(hookDeployment, promDeployment, npFor("{from: [{podSelector: {matchLabels: {app: prometheus}}, namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}], ports: [{port: 8080}]}"))},
	{"a ClusterIP in an ipBlock", "NP011",
		stream(clusterIPService, npYAML("  podSelector: {matchLabels: {app: web}}\n  policyTypes: [Egress]\n  egress: [{to: [{ipBlock: {cidr: 10.96.0.10/32}}]}]\n")),
		stream(clusterIPService, npYAML("  podSelector: {matchLabels: {app: web}}\n  policyTypes: [Egress]\n  egress: [{to: [{ipBlock: {cidr: 10.96.1.10/32}}]}]\n"))},
	{"pods on the node's network", "NP013",
		stream(strings.Replace(hookDeployment, "    spec:\n", "    spec:\n      hostNetwork: true\n", 1), npFor("{from: [{podSelector: {}}], ports: [{port: 9443}]}")),
		stream(strings.Replace(hookDeployment, "    spec:\n", "    spec:\n      hostNetwork: true\n", 1), npYAML("  podSelector: {}\n  ingress: [{from: [{podSelector: {}}], ports: [{port: 9443}]}]\n"))},
	{"** in a path", "AP012",
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{from: [{source: {namespaces: [a]}}], to: [{operation: {paths: ['/dex/**']}}]}]\n"),
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{from: [{source: {namespaces: [a]}}], to: [{operation: {paths: ['/dex/*', '/x/{**}']}}]}]\n")},
}

var (
	promDeployment   = strings.Replace(strings.Replace(hookDeployment, "name: hook, namespace: shop", "name: prom, namespace: monitoring", 1), "app: hook", "app: prometheus", 1)
	clusterIPService = strings.Replace(hookService, "spec:\n", "spec:\n  clusterIP: 10.96.0.10\n", 1)
)

// A namespace-wide policy reaches every pod of its namespace: its opening is judged by the pods'
// roles only where the input's workloads of the namespace may be taken as all of them, as WL001.
func TestNamespaceWideRoles(t *testing.T) {
	objs := decode(t, stream(hookDeployment, hookService, hookWebhook, npYAML("  podSelector: {}\n  ingress: [{ports: [{port: 9443}]}]\n")))
	if s := severityOf(Lint(objs, DefaultOptions()), "NP001"); s != SeverityNote {
		t.Errorf("with its namespace's workloads in its file: %q, want note", s)
	}
	objs[3].File = "policies.yaml"
	if s := severityOf(Lint(objs, DefaultOptions()), "NP001"); s != SeverityError {
		t.Errorf("its namespace's workloads elsewhere: %q, want error", s)
	}
	if s := severityOf(Lint(objs, Options{RootNamespace: "istio-system", Workloads: true}), "NP001"); s != SeverityNote {
		t.Errorf("--workloads complete: %q, want note", s)
	}
}

// An empty rule is one hole: AP005 says it, AP001 does not say it again.
func TestEmptyRuleIsOneFinding(t *testing.T) {
	got := Lint(decode(t, istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{}]\n")), DefaultOptions())
	if rules := rulesOf(got); len(rules) != 1 || rules[0] != "AP005" {
		t.Errorf("got %v, want [AP005]", rules)
	}
}

// WL001 judges a policy against the workloads of its own file unless told the input holds them
// all: a release split over files keeps its pods elsewhere.
func TestSelectsNothingFileSet(t *testing.T) {
	objs := decode(t, stream(hookDeployment, npYAML("  podSelector: {matchLabels: {app: web}}\n  ingress: []\n")))
	if severityOf(Lint(objs, DefaultOptions()), "WL001") == "" {
		t.Error("same file: want WL001")
	}
	objs[1].File = "policies.yaml"
	if severityOf(Lint(objs, DefaultOptions()), "WL001") != "" {
		t.Error("pods in another file: want no WL001 by default")
	}
	if severityOf(Lint(objs, Options{RootNamespace: "istio-system", Workloads: true}), "WL001") == "" {
		t.Error("--workloads complete: want WL001")
	}
}
