package lint

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/servicegraph/servicegraph-operator/internal/object"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
)

// decode reads a "---"-separated stream of the kinds the linter checks, each object at line
// 10*i+1 of file "test.yaml".
func decode(t *testing.T, stream string) []Object {
	t.Helper()
	var objs []Object
	for i, doc := range strings.Split(stream, "\n---\n") {
		var meta struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatal(err)
		}
		var obj object.Object
		switch meta.Kind {
		case "ServiceGraph":
			obj = &v1alpha1.ServiceGraph{}
		case "NetworkPolicy":
			obj = &networkingv1.NetworkPolicy{}
		case "AuthorizationPolicy":
			obj = &securityv1.AuthorizationPolicy{}
		case "PeerAuthentication":
			obj = &securityv1.PeerAuthentication{}
		case "Service":
			obj = &corev1.Service{}
		case "Namespace":
			obj = &corev1.Namespace{}
		case "Pod", "Deployment", "StatefulSet", "DaemonSet":
			data, err := yaml.YAMLToJSON([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			w := &corev1.PodTemplate{}
			if err := ReadWorkload(data, w); err != nil {
				t.Fatal(err)
			}
			objs = append(objs, Object{File: "test.yaml", Line: 10*i + 1, Object: w})
			continue
		case "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "APIService", "CustomResourceDefinition",
			"ServiceMonitor", "PodMonitor", "Ingress", "Gateway":
			obj = &unstructured.Unstructured{}
		default:
			t.Fatalf("document %d: kind %q", i, meta.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatalf("document %d: %v\n%s", i, err, doc)
		}
		objs = append(objs, Object{File: "test.yaml", Line: 10*i + 1, Object: obj})
	}
	return objs
}

// graphYAML is a ServiceGraph shop/shop with the given spec.
func graphYAML(spec string) string {
	return "apiVersion: policy.servicegraph.io/v1alpha1\nkind: ServiceGraph\nmetadata: {name: shop, namespace: shop}\nspec:\n" + spec
}

// npYAML is a NetworkPolicy "np" in namespace shop with the given spec.
func npYAML(spec string) string {
	return "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np, namespace: shop}\nspec:\n" + spec
}

// istioYAML is an Istio policy of the kind named "p" in the namespace with the given spec.
func istioYAML(kind, namespace, spec string) string {
	return "apiVersion: security.istio.io/v1\nkind: " + kind + "\nmetadata: {name: p, namespace: " + namespace + "}\nspec:\n" + spec
}

const (
	threeServices  = "  services: [{name: web}, {name: api}, {name: db}]\n"
	defaultDenyNP  = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: shop}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}"
	fromWeb        = "    from: [{podSelector: {matchLabels: {app: web}}}]\n"
	webPrincipal   = "  - from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}]\n"
	selectorAPI    = "  selector: {matchLabels: {app: api}}\n"
	ingressFromWeb = "  podSelector: {matchLabels: {app: api}}\n  ingress:\n  - ports: [{port: 80}]\n" + fromWeb
)

// serviceYAML is a Service shop/api in front of the api pods, with one port.
func serviceYAML(port string) string {
	return "apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: shop}\nspec:\n  selector: {app: api}\n  ports: [" + port + "]"
}

// ruleCase is, for a rule, a minimal manifest it must find and a close one it must not.
type ruleCase struct {
	name, rule string
	bad, good  string
}

// ruleCases give, per rule, a minimal manifest it must find and a close one it must not (the
// rules that read policies against the input's Services and workloads: crossRefCases).
var ruleCases = []ruleCase{
	{"bad port", "SG001",
		graphYAML(threeServices + "  edges: [web->api:0]\n"),
		graphYAML(threeServices + "  edges: [web->api:80]\n")},
	{"undeclared", "SG002",
		graphYAML(threeServices + "  edges: [web->cache:80]\n"),
		graphYAML(threeServices + "  edges: [web->db:80]\n")},
	{"duplicate", "SG003",
		graphYAML(threeServices + "  edges: [web->api:80, web → api:80]\n"),
		graphYAML(threeServices + "  edges: [web->api:80, web->api:81]\n")},
	{"self-edge", "SG004",
		graphYAML(threeServices + "  edges: [api->api:80]\n"),
		graphYAML(threeServices + "  edges: [web->api:80]\n")},
	{"path on TCP", "SG005",
		graphYAML(threeServices + "  connections: [{from: web, to: api, ports: [{port: 80, protocol: TCP}], paths: [/x]}]\n"),
		graphYAML(threeServices + "  connections: [{from: web, to: api, ports: [{port: 80, protocol: HTTP}], paths: [/x]}]\n")},
	{"connection protocol unstated", "SG006",
		graphYAML(threeServices + "  connections: [{from: web, to: api, ports: [{port: 80}], methods: [GET]}]\n"),
		graphYAML(threeServices + "  connections: [{from: web, to: api, ports: [{port: 80, protocol: GRPC}], methods: [GET]}]\n")},
	{"compact path where another edge is TCP", "SG006",
		graphYAML(threeServices + "  edges: [web->api:80/x, db->api:80]\n"),
		graphYAML(threeServices + "  edges: [web->api:80/x, db->api:81]\n")},
	{"permissive", "SG007",
		graphYAML(threeServices + "  edges: [web->api:80]\n  mtls: PERMISSIVE\n"),
		graphYAML(threeServices + "  edges: [web->api:80]\n  mtls: STRICT\n")},
	{"no DNS for callers", "SG008",
		graphYAML(threeServices + "  edges: [web->api:80]\n  allowDNS: false\n"),
		graphYAML("  services: [{name: api}, {name: web, namespace: other}]\n  edges: [web->api:80]\n  allowDNS: false\n")},
	{"fan-in to all", "SG009",
		graphYAML(threeServices + "  edges: [web->db:5432, api->db:5432]\n"),
		graphYAML(threeServices + "  edges: [web->api:80, api->db:5432]\n")},
	{"shared service account", "SG010",
		graphYAML("  services: [{name: web, serviceAccount: shared}, {name: api, serviceAccount: shared}]\n  edges: [web->api:80]\n"),
		graphYAML("  services: [{name: web, serviceAccount: shared}, {name: api}]\n  edges: [web->api:80]\n")},
	{"a Service declares TCP where an edge matches a path", "SG011",
		graphYAML(threeServices+"  edges: [web->api:80/x]\n") + "\n---\n" + serviceYAML("{name: tcp-web, port: 80}"),
		graphYAML(threeServices+"  edges: [web->api:80/x]\n") + "\n---\n" + serviceYAML("{name: http-web, port: 80}")},
	{"a Service's appProtocol says TCP", "SG011",
		graphYAML(threeServices+"  edges: [web->api:8080/x]\n") + "\n---\n" + serviceYAML("{name: web, port: 80, targetPort: 8080, appProtocol: tcp}"),
		graphYAML(threeServices+"  edges: [web->api:8080]\n") + "\n---\n" + serviceYAML("{name: web, port: 80, targetPort: 8080, appProtocol: tcp}")},
	{"an unmeshed external caller", "SG012",
		graphYAML(threeServices + "  external: [{name: lb, cidrs: [203.0.113.0/24], unmeshed: true}]\n  edges: [lb->web:8443]\n"),
		graphYAML(threeServices + "  external: [{name: gw, namespaces: {names: [istio-ingress]}}]\n  edges: [gw->web:8443]\n")},
	{"an unmeshed external caller without a mesh", "SG012",
		graphYAML(threeServices + "  external: [{name: lb, cidrs: [203.0.113.0/24], unmeshed: true}]\n  edges: [lb->web:8443]\n"),
		graphYAML(threeServices + "  mesh: None\n  external: [{name: lb, cidrs: [203.0.113.0/24]}]\n  edges: [lb->web:8443]\n")},
	{"an external host without cidrs", "SG013",
		graphYAML(threeServices + "  external: [{name: stripe, hosts: [api.stripe.com]}]\n  edges: [api->stripe:443]\n"),
		graphYAML(threeServices + "  external: [{name: stripe, hosts: [api.stripe.com], cidrs: [198.51.100.0/24]}]\n  edges: [api->stripe:443]\n")},
	{"two graphs for one namespace", "SG014",
		graphYAML(threeServices+"  edges: [web->api:80]\n") + "\n---\n" + strings.Replace(graphYAML(threeServices+"  edges: [api->db:80]\n"), "name: shop", "name: other", 1),
		graphYAML(threeServices+"  edges: [web->api:80]\n") + "\n---\n" + strings.Replace(graphYAML(threeServices+"  edges: [api->db:80]\n"), "namespace: shop", "namespace: other", 1)},
	{"a policy beside the graph admits a namespace the graph does not", "SG015",
		graphYAML(threeServices+"  edges: [web->api:80]\n") + "\n---\n" + npYAML("  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {team: monitoring}}}], ports: [{port: 9090}]}]\n"),
		graphYAML(threeServices+"  edges: [web->api:80]\n") + "\n---\n" + npYAML(ingressFromWeb)},
	{"an ALLOW policy beside the graph admits a principal it does not", "SG015",
		graphYAML(threeServices+"  edges: [web->api:80]\n") + "\n---\n" + istioYAML("AuthorizationPolicy", "shop", "  selector: {matchLabels: {app: api}}\n  rules: [{from: [{source: {principals: [cluster.local/ns/batch/sa/report]}}]}]\n"),
		graphYAML(threeServices+"  edges: [web->api:80]\n") + "\n---\n" + istioYAML("AuthorizationPolicy", "shop", "  selector: {matchLabels: {app: api}}\n  rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}], to: [{operation: {ports: [\"80\"]}}]}]\n")},
	{"external peers are not services that share an account or call everyone", "SG009",
		graphYAML(threeServices + "  edges: [web->db:5432, api->db:5432]\n"),
		graphYAML(threeServices + "  external: [{name: a, cidrs: [10.0.0.0/8]}, {name: b, cidrs: [10.1.0.0/16]}]\n  mesh: None\n  edges: [web->db:5432, a->db:5432, b->db:5432]\n")},

	{"claims to be generated", "IN003",
		strings.Replace(npYAML(ingressFromWeb), "namespace: shop}", "namespace: shop, labels: {app.kubernetes.io/managed-by: servicegraph-operator}}", 1),
		npYAML(ingressFromWeb)},
	{"the same object twice", "IN004",
		npYAML(ingressFromWeb) + "\n---\n" + npYAML(ingressFromWeb),
		npYAML(ingressFromWeb) + "\n---\n" + strings.Replace(npYAML(ingressFromWeb), "name: np,", "name: np2,", 1)},
	{"lint-ignore names no rule", "IN005",
		strings.Replace(npYAML(ingressFromWeb), "namespace: shop}", "namespace: shop, annotations: {"+AnnotationIgnore+": NP999}}", 1),
		strings.Replace(npYAML(ingressFromWeb), "namespace: shop}", "namespace: shop, annotations: {"+AnnotationIgnore+": NP001}}", 1)},

	{"a selector that matches no workload of the input", "WL001",
		npYAML(ingressFromWeb) + "\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop, labels: {app: web}}\n",
		npYAML(ingressFromWeb) + "\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: api, namespace: shop, labels: {app: api}}\n"},

	{"ingress without from", "NP001",
		npYAML("  podSelector: {matchLabels: {app: api}}\n  ingress: [{ports: [{port: 80}]}]\n"),
		npYAML(ingressFromWeb)},
	{"ingress from an empty peer, which the API server refuses", "NP008",
		npYAML("  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{}]}]\n"),
		npYAML(ingressFromWeb)},
	{"egress without to", "NP002",
		npYAML("  podSelector: {matchLabels: {app: api}}\n  policyTypes: [Egress]\n  egress: [{ports: [{port: 443}]}]\n"),
		npYAML("  podSelector: {matchLabels: {app: api}}\n  policyTypes: [Egress]\n  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8}}]}]\n")},
	{"egress ignored without Egress in policyTypes", "NP002",
		npYAML("  podSelector: {matchLabels: {app: api}}\n  egress: [{ports: [{port: 443}]}]\n"),
		npYAML("  podSelector: {matchLabels: {app: api}}\n  policyTypes: [Ingress]\n  egress: [{ports: [{port: 443}]}]\n")},
	{"every pod reached from addresses", "NP003",
		npYAML("  podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 10.1.0.0/16}}]}]\n"),
		npYAML("  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{ipBlock: {cidr: 10.1.0.0/16}}]}]\n")},
	{"the same-namespace baseline is not every pod reached", "NP003",
		npYAML("  podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 10.1.0.0/16}}]}]\n"),
		npYAML("  podSelector: {}\n  ingress: [{from: [{podSelector: {}}]}]\n---\n" +
			"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: monitoring, namespace: shop}\nspec:\n  podSelector: {}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {team: monitoring}}}]}]\n")},
	{"ipBlock 0.0.0.0/0", "NP004",
		npYAML("  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}}]}]\n"),
		npYAML("  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}}]}]\n")},
	{"ipBlock ::/0", "NP004",
		npYAML("  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{ipBlock: {cidr: '::/0'}}]}]\n"),
		npYAML("  podSelector: {matchLabels: {app: api}}\n  policyTypes: [Egress]\n  egress: [{to: [{ipBlock: {cidr: '::/0'}}]}]\n")},
	{"halves of the internet", "NP004",
		npYAML("  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/1}}, {ipBlock: {cidr: 128.0.0.0/1}}]}]\n"),
		npYAML("  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}}, {ipBlock: {cidr: 128.0.0.0/2}}]}]\n")},
	{"half of the internet", "NP004",
		npYAML("  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/1}}]}]\n"),
		npYAML("  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/2}}]}]\n")},
	{"namespaces that only exclude", "NP006",
		npYAML("  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: env, operator: NotIn, values: [prod]}]}}]}]\n"),
		npYAML("  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: env, operator: In, values: [dev]}]}}]}]\n")},
	{"DNS egress anywhere is the usual allowance", "NP007",
		npYAML("  podSelector: {matchLabels: {app: api}}\n  policyTypes: [Egress]\n  egress: [{to: [{namespaceSelector: {}}], ports: [{port: 53, protocol: UDP}, {port: 8080}]}]\n"),
		npYAML("  podSelector: {matchLabels: {app: api}}\n  policyTypes: [Egress]\n  egress: [{to: [{namespaceSelector: {}}], ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]}]\n")},
	{"DNS egress without to", "NP002",
		npYAML("  podSelector: {matchLabels: {app: api}}\n  policyTypes: [Egress]\n  egress: [{ports: [{port: 443}]}]\n"),
		npYAML("  podSelector: {matchLabels: {app: api}}\n  policyTypes: [Egress]\n  egress: [{ports: [{port: 53, protocol: UDP}, {port: 5353, protocol: UDP}]}]\n")},
	{"every pod of every namespace", "NP006",
		npYAML("  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{namespaceSelector: {}}]}]\n"),
		npYAML("  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{namespaceSelector: {}, podSelector: {matchLabels: {app: prometheus}}}]}]\n")},
	{"every pod of every namespace on the ports listed", "NP012",
		npYAML("  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{namespaceSelector: {}}], ports: [{port: 8080}]}]\n"),
		npYAML("  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{namespaceSelector: {}}]}]\n")},
	{"egress to the internet", "NP007",
		npYAML("  podSelector: {matchLabels: {app: api}}\n  policyTypes: [Egress]\n  egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}}]}]\n"),
		npYAML("  podSelector: {matchLabels: {app: api}}\n  policyTypes: [Egress]\n  egress: [{to: [{ipBlock: {cidr: 203.0.113.0/24}}]}]\n")},
	{"egress to every pod", "NP007",
		npYAML("  podSelector: {matchLabels: {app: api}}\n  policyTypes: [Egress]\n  egress: [{to: [{namespaceSelector: {}}]}]\n"),
		npYAML("  podSelector: {matchLabels: {app: api}}\n  policyTypes: [Egress]\n  egress: [{to: [{namespaceSelector: {matchLabels: {team: a}}}]}]\n")},
	{"a bad CIDR", "NP008",
		npYAML("  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/33}}]}]\n"),
		npYAML(ingressFromWeb)},
	{"except outside the CIDR", "NP008",
		npYAML("  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}}]}]\n"),
		npYAML("  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.1.0/24]}}]}]\n")},
	{"port 70000, endPort below port, lower-case protocol", "NP008",
		npYAML("  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{podSelector: {}}], ports: [{port: 70000}, {port: 90, endPort: 80}, {port: 80, protocol: tcp}]}]\n"),
		npYAML("  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{podSelector: {}}], ports: [{port: 7000}, {port: 80, endPort: 90}, {port: 80, protocol: TCP}]}]\n")},
	{"a peer with a selector and an ipBlock, a bad label key", "NP008",
		npYAML("  podSelector: {matchLabels: {'a b': c}}\n  ingress: [{from: [{podSelector: {}, ipBlock: {cidr: 10.0.0.0/8}}]}]\n"),
		npYAML("  podSelector: {matchLabels: {a: c}}\n  ingress: [{from: [{podSelector: {}}, {ipBlock: {cidr: 10.0.0.0/8}}]}]\n")},
	{"no default-deny", "NP005",
		npYAML(ingressFromWeb),
		npYAML(ingressFromWeb) + "\n---\n" + defaultDenyNP},
	{"a ServiceGraph provides default-deny", "NP005",
		npYAML(ingressFromWeb),
		npYAML(ingressFromWeb) + "\n---\n" + graphYAML(threeServices+"  edges: [web->api:80]\n")},

	{"ALLOW rule without from", "AP001",
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{to: [{operation: {paths: [/healthz]}}]}]\n"),
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules:\n"+webPrincipal)},
	{"ALLOW rule with an empty source", "AP001",
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules:\n  - from: [{source: {principals: [a]}}, {source: {}}]\n"),
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  action: DENY\n  rules: [{to: [{operation: {paths: [/admin]}}]}]\n")},
	{"any principal", "AP002",
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{from: [{source: {principals: ['*']}}]}]\n"),
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  action: DENY\n  rules: [{from: [{source: {principals: ['*']}}]}]\n")},
	{"namespace-wide ALLOW for any caller", "AP003",
		istioYAML("AuthorizationPolicy", "shop", "  rules: [{to: [{operation: {ports: ['80']}}]}]\n"),
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{to: [{operation: {ports: ['80']}}]}]\n")},
	{"mesh-wide ALLOW for any caller", "AP003",
		istioYAML("AuthorizationPolicy", "istio-system", "  rules: [{to: [{operation: {ports: ['80']}}]}]\n"),
		istioYAML("AuthorizationPolicy", "istio-system", "  rules:\n"+webPrincipal)},
	{"namespace-wide ALLOW for named callers is a note", "AP003",
		istioYAML("AuthorizationPolicy", "shop", "  rules: [{to: [{operation: {ports: ['80']}}]}]\n"),
		istioYAML("AuthorizationPolicy", "shop", "  rules:\n"+webPrincipal)},
	{"namespace-wide allow-nothing is fine", "AP003",
		istioYAML("AuthorizationPolicy", "shop", "  action: ALLOW\n  rules: [{to: [{operation: {ports: ['80']}}]}]\n"),
		istioYAML("AuthorizationPolicy", "shop", "  action: ALLOW\n")},
	{"DENY without rules", "AP004",
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  action: DENY\n"),
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  action: DENY\n  rules: [{}]\n")},
	{"an empty ALLOW rule", "AP005",
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{}]\n"),
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  action: DENY\n  rules: [{}]\n")},
	{"spiffe:// in a principal", "AP006",
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{from: [{source: {principals: ['spiffe://cluster.local/ns/shop/sa/web']}}]}]\n"),
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules:\n"+webPrincipal)},
	{"a wildcard inside a principal", "AP006",
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{from: [{source: {principals: ['cluster.local/ns/*/sa/web']}}]}]\n"),
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{from: [{source: {principals: ['*/ns/shop/sa/web']}}]}]\n")},
	{"a path without /", "AP006",
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{from: [{source: {principals: [a]}}], to: [{operation: {paths: [healthz]}}]}]\n"),
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{from: [{source: {principals: [a]}}], to: [{operation: {paths: ['*.css', /healthz, '/api/*']}}]}]\n")},
	{"port 0 and a lower-case method", "AP006",
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{from: [{source: {principals: [a]}}], to: [{operation: {ports: ['0'], methods: [get]}}]}]\n"),
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{from: [{source: {principals: [a]}}], to: [{operation: {ports: ['80'], methods: [GET]}}]}]\n")},
	{"a trust domain's every workload", "AP002",
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{from: [{source: {principals: ['cluster.local/*']}}]}]\n"),
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{from: [{source: {principals: ['cluster.local/ns/shop/*']}}]}]\n")},
	{"every namespace", "AP002",
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{from: [{source: {namespaces: ['*']}}]}]\n"),
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{from: [{source: {namespaces: [shop]}}]}]\n")},
	{"a wildcard at both ends", "AP006",
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{from: [{source: {principals: ['*/ns/shop/sa/*']}}]}]\n"),
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{from: [{source: {principals: ['cluster.local/ns/shop/sa/*']}}]}]\n")},
	{"a field present and absent at once", "AP006",
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{to: [{operation: {paths: ['*'], notPaths: ['*']}}]}]\n"),
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{to: [{operation: {paths: ['*'], notPaths: ['/admin']}}]}]\n")},
	{"a rule that never matches opens nothing", "AP001",
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{to: [{operation: {paths: ['*'], notPaths: ['/admin']}}]}]\n"),
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{to: [{operation: {paths: ['*'], notPaths: ['*']}}]}]\n")},
	{"a dry run enforces nothing", "AP001",
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{to: [{operation: {ports: ['80']}}]}]\n"),
		strings.Replace(istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{to: [{operation: {ports: ['80']}}]}]\n"), "namespace: shop}", "namespace: shop, annotations: {istio.io/dry-run: 'true'}}", 1)},
	{"conditions that name the caller", "AP001",
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{to: [{operation: {ports: ['80']}}], when: [{key: 'request.headers[x-debug]', values: ['1']}]}]\n"),
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{to: [{operation: {ports: ['80']}}], when: [{key: 'request.auth.claims[groups]', values: [admins]}]}]\n")},
	{"a trust domain alone", "AP002",
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{from: [{source: {trustDomains: [east.example.com]}}]}]\n"),
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{from: [{source: {trustDomains: [east.example.com], namespaces: [shop]}}]}]\n")},
	{"serviceAccounts with principals", "AP010",
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{from: [{source: {serviceAccounts: [shop/web], principals: [cluster.local/ns/shop/sa/web]}}]}]\n"),
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{from: [{source: {serviceAccounts: [shop/web]}}]}]\n")},
	{"only not fields", "AP007",
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{from: [{source: {notNamespaces: [untrusted]}}]}]\n"),
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{from: [{source: {namespaces: [shop], notPrincipals: ['cluster.local/ns/shop/sa/bad']}}]}]\n")},
	{"every address", "AP007",
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{from: [{source: {ipBlocks: [0.0.0.0/0]}}]}]\n"),
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{from: [{source: {ipBlocks: [203.0.113.0/24]}}]}]\n")},
	{"paths on a TCP port", "AP008",
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{to: [{operation: {ports: ['8080'], methods: [GET]}}]}]\n") + "\n---\n" + serviceYAML("{name: tcp-api, port: 80, targetPort: 8080}"),
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{to: [{operation: {ports: ['8080'], methods: [GET]}}]}]\n") + "\n---\n" + serviceYAML("{name: http-api, port: 80, targetPort: 8080}")},
	{"two extension providers", "AP009",
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  action: CUSTOM\n  provider: {name: opa}\n  rules: [{}]\n") + "\n---\n" +
			strings.Replace(istioYAML("AuthorizationPolicy", "shop", "  action: CUSTOM\n  provider: {name: ext-authz}\n  rules: [{}]\n"), "name: p,", "name: q,", 1),
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  action: CUSTOM\n  provider: {name: opa}\n  rules: [{}]\n") + "\n---\n" +
			strings.Replace(istioYAML("AuthorizationPolicy", "shop", "  action: CUSTOM\n  provider: {name: opa}\n  rules: [{}]\n"), "name: p,", "name: q,", 1)},
	{"a path in a selector policy of an ambient namespace", "AP011",
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}], to: [{operation: {paths: [/data]}}]}]\n") +
			"\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {istio.io/dataplane-mode: ambient}}\n",
		istioYAML("AuthorizationPolicy", "shop", "  targetRefs: [{kind: Service, name: api}]\n  rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}], to: [{operation: {paths: [/data]}}]}]\n") +
			"\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {istio.io/dataplane-mode: ambient}}\n"},
	{"an address that is not one, CUSTOM without a provider", "AP010",
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  action: CUSTOM\n  rules: [{from: [{source: {ipBlocks: [$CLIENT_IP]}}]}]\n"),
		istioYAML("AuthorizationPolicy", "shop", selectorAPI+"  action: CUSTOM\n  provider: {name: opa}\n  rules: [{from: [{source: {ipBlocks: [203.0.113.7, 10.0.0.0/8]}}]}]\n")},

	{"DISABLE namespace-wide", "PA001",
		istioYAML("PeerAuthentication", "shop", "  mtls: {mode: DISABLE}\n"),
		istioYAML("PeerAuthentication", "shop", selectorAPI+"  mtls: {mode: DISABLE}\n")},
	{"DISABLE for a workload", "PA003",
		istioYAML("PeerAuthentication", "shop", selectorAPI+"  mtls: {mode: DISABLE}\n"),
		istioYAML("PeerAuthentication", "shop", selectorAPI+"  mtls: {mode: STRICT}\n")},
	{"DISABLE for a port", "PA003",
		istioYAML("PeerAuthentication", "shop", selectorAPI+"  portLevelMtls: {9090: {mode: DISABLE}}\n"),
		istioYAML("PeerAuthentication", "shop", selectorAPI+"  portLevelMtls: {9090: {mode: STRICT}}\n")},
	{"PERMISSIVE for a workload", "PA003",
		istioYAML("PeerAuthentication", "shop", selectorAPI+"  mtls: {mode: PERMISSIVE}\n"),
		istioYAML("PeerAuthentication", "shop", selectorAPI+"  mtls: {mode: STRICT}\n")},
	{"portLevelMtls port 0", "PA004",
		istioYAML("PeerAuthentication", "shop", selectorAPI+"  portLevelMtls: {0: {mode: STRICT}}\n"),
		istioYAML("PeerAuthentication", "shop", selectorAPI+"  portLevelMtls: {80: {mode: STRICT}}\n")},
	{"portLevelMtls without a selector", "PA004",
		istioYAML("PeerAuthentication", "shop", "  portLevelMtls: {9090: {mode: PERMISSIVE}}\n"),
		istioYAML("PeerAuthentication", "shop", selectorAPI+"  portLevelMtls: {9090: {mode: PERMISSIVE}}\n")},
	{"PERMISSIVE mesh-wide", "PA002",
		istioYAML("PeerAuthentication", "istio-system", "  mtls: {mode: PERMISSIVE}\n"),
		istioYAML("PeerAuthentication", "istio-system", "  mtls: {mode: STRICT}\n")},
}

func atLeast(findings []Finding, s Severity) []Finding {
	return slices.DeleteFunc(slices.Clone(findings), func(f Finding) bool { return !f.Severity.AtLeast(s) })
}

func rulesOf(findings []Finding) []string {
	var ids []string
	for _, f := range findings {
		ids = append(ids, f.Rule)
	}
	return ids
}

// TestRules: each rule reports the bad manifest, and the good one at most as a note.
func TestRules(t *testing.T) {
	for _, tc := range append(slices.Clone(ruleCases), crossRefCases...) {
		t.Run(tc.rule+" "+tc.name, func(t *testing.T) {
			if got := Lint(decode(t, tc.bad), DefaultOptions()); !slices.Contains(rulesOf(atLeast(got, SeverityWarning)), tc.rule) {
				t.Errorf("bad manifest: want %s, got %v", tc.rule, got)
			}
			if got := Lint(decode(t, tc.good), DefaultOptions()); slices.Contains(rulesOf(atLeast(got, SeverityWarning)), tc.rule) {
				t.Errorf("good manifest: want no %s, got %v", tc.rule, got)
			}
		})
	}
}

// Every rule has a case, and the catalogue's IDs are unique, sorted and well-formed.
func TestCatalogue(t *testing.T) {
	rules := Rules()
	for i, r := range rules {
		if i > 0 && rules[i-1].ID >= r.ID {
			t.Errorf("rules not sorted or not unique at %s", r.ID)
		}
		if len(r.ID) != 5 || r.Summary == "" || r.Hint == "" || (r.Severity != SeverityError && r.Severity != SeverityWarning) {
			t.Errorf("incomplete rule %+v", r)
		}
		if r.ID == ruleUnreadable.ID || r.ID == ruleTemplate.ID || r.ID == ruleRemovedAPI.ID {
			continue // about files, not objects: internal/cli's tests have them
		}
		if !slices.ContainsFunc(append(slices.Clone(ruleCases), crossRefCases...), func(tc ruleCase) bool { return tc.rule == r.ID }) {
			t.Errorf("rule %s has no case in ruleCases", r.ID)
		}
	}
}

// A finding carries the rule's severity and hint and the object's place.
func TestFindingFields(t *testing.T) {
	got := Lint(decode(t, graphYAML(threeServices+"  edges: [web->cache:80]\n")), DefaultOptions())
	want := []Finding{{
		Rule: "SG002", Severity: SeverityError, File: "test.yaml", Line: 1, Kind: "ServiceGraph", Namespace: "shop", Name: "shop",
		Message: `edge "web->cache:80": service "cache" is not declared in spec.services`,
		Hint:    ruleUndeclaredService.Hint,
	}}
	if !slices.Equal(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

// The lint-ignore annotation drops the rules it lists, and only those.
func TestIgnoreAnnotation(t *testing.T) {
	np := strings.Replace(npYAML("  podSelector: {}\n  ingress: [{}, {from: [{ipBlock: {cidr: 10.0.0.0/8}}]}]\n"), "namespace: shop}",
		"namespace: shop, annotations: {"+AnnotationIgnore+": 'NP001, NP005'}}", 1)
	if got := rulesOf(Lint(decode(t, np), DefaultOptions())); !slices.Equal(got, []string{"NP003"}) {
		t.Errorf("got %v, want [NP003]", got)
	}
}

// The operator's label is no way to switch the linter off: an object that wears it is skipped only
// when a ServiceGraph of the input generates exactly it (same kind, name and spec); any other is
// linted as written by hand and said to claim what it is not.
func TestGeneratedLabelIsNoBypass(t *testing.T) {
	managed := "metadata: {name: np, namespace: shop, labels: {app.kubernetes.io/managed-by: servicegraph-operator}}"
	np := strings.Replace(npYAML("  podSelector: {}\n  ingress: [{}]\n"), "metadata: {name: np, namespace: shop}", managed, 1)
	ap := strings.Replace(istioYAML("AuthorizationPolicy", "shop", "  rules: [{}]\n"), "namespace: shop}",
		"namespace: shop, labels: {app.kubernetes.io/managed-by: servicegraph-operator}}", 1)
	got := rulesOf(Lint(decode(t, np+"\n---\n"+ap), DefaultOptions()))
	for _, want := range []string{"NP001", "IN003", "AP005"} {
		if !slices.Contains(got, want) {
			t.Errorf("a labelled allow-all without its graph: got %v, want %s among them", got, want)
		}
	}

	// The graph's own objects, as the compiler makes them, are its business; a tampered copy is not.
	sg := decode(t, graphYAML(threeServices+"  edges: [web->api:8080]\n"))
	res, err := compiler.Compile(sg[0].Object.(*v1alpha1.ServiceGraph), compiler.DefaultOptions(), compiler.Facts{})
	if err != nil {
		t.Fatal(err)
	}
	objs := slices.Clone(sg)
	for i, obj := range res.Objects() {
		objs = append(objs, Object{File: "generated.yaml", Line: 10*i + 1, Object: obj})
	}
	if got := Lint(objs, DefaultOptions()); len(got) != 0 {
		t.Errorf("a graph with its generated objects: got %v, want nothing", got)
	}
	tampered := res.Objects()[len(res.Objects())-1].DeepCopyObject().(object.Object)
	if dd, ok := tampered.(*networkingv1.NetworkPolicy); ok {
		dd.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{}}
	} else {
		t.Fatalf("the last generated object is a %T, want the default-deny NetworkPolicy", tampered)
	}
	got = rulesOf(Lint(append(slices.Clone(sg), Object{File: "tampered.yaml", Line: 1, Object: tampered}), DefaultOptions()))
	if !slices.Contains(got, "IN003") || !slices.Contains(got, "NP001") {
		t.Errorf("a tampered default-deny: got %v, want IN003 and NP001", got)
	}
}

// lint-ignore takes rule IDs in any case and says when one names no rule.
func TestIgnoreUnknownRule(t *testing.T) {
	np := strings.Replace(npYAML("  podSelector: {}\n  ingress: [{}]\n"), "namespace: shop}",
		"namespace: shop, annotations: {"+AnnotationIgnore+": 'np001,NP999'}}", 1)
	got := Lint(decode(t, np), DefaultOptions())
	if rules := rulesOf(got); slices.Contains(rules, "NP001") || !slices.Contains(rules, "IN005") {
		t.Errorf("got %v, want NP001 ignored and IN005", rules)
	}
}

// The root namespace is an option: there, a selector-less PeerAuthentication is mesh-wide and a
// selector-less ALLOW policy for named callers is a note.
func TestRootNamespace(t *testing.T) {
	objs := decode(t, istioYAML("PeerAuthentication", "mesh", "  mtls: {mode: PERMISSIVE}\n")+"\n---\n"+
		istioYAML("AuthorizationPolicy", "mesh", "  rules:\n"+webPrincipal))
	got := atLeast(Lint(objs, Options{RootNamespace: "mesh"}), SeverityWarning)
	if len(got) != 1 || got[0].Message != "mtls.mode PERMISSIVE applies to the whole mesh (root namespace mesh)" {
		t.Errorf("got %+v", got)
	}
}

// Findings are sorted by file, line and rule, whatever the input order.
func TestOrder(t *testing.T) {
	objs := decode(t, npYAML("  podSelector: {}\n  ingress: [{}, {from: [{ipBlock: {cidr: 10.0.0.0/8}}]}]\n")+"\n---\n"+graphYAML(threeServices+"  edges: [api->api:1]\n  mtls: PERMISSIVE\n"))
	objs[0].File, objs[1].File = "b.yaml", "a.yaml"
	got := Lint(objs, DefaultOptions())
	want := []string{"SG004", "NP001", "NP003"} // the graph is namespace shop's default-deny
	if !slices.Equal(rulesOf(got), want) {
		t.Errorf("got %v, want %v", rulesOf(got), want)
	}
}

func TestParseSeverity(t *testing.T) {
	for _, s := range []string{"error", "warning"} {
		if got, err := ParseSeverity(s); err != nil || string(got) != s {
			t.Errorf("ParseSeverity(%q) = %q, %v", s, got, err)
		}
	}
	if _, err := ParseSeverity("info"); err == nil {
		t.Error("ParseSeverity(info): want an error")
	}
	if !SeverityError.AtLeast(SeverityWarning) || SeverityWarning.AtLeast(SeverityError) || !SeverityWarning.AtLeast(SeverityWarning) {
		t.Error("AtLeast orders error above warning")
	}
}

// An empty report is still an object with an array, not null.
func TestEmptyJSON(t *testing.T) {
	data, err := Report{Objects: 2}.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if findings, ok := got["findings"].([]any); !ok || len(findings) != 0 {
		t.Errorf("findings = %#v, want []", got["findings"])
	}
	if text := string(Report{Objects: 1}.Text()); text != "0 errors, 0 warnings, 0 notes in 1 object\n" {
		t.Errorf("Text() = %q", text)
	}
}

// A policy gets one finding per rule and direction however many of its rules are open, and NP004
// says when except ranges are carved out.
func TestOneFindingPerPolicy(t *testing.T) {
	np := npYAML("  podSelector: {matchLabels: {app: api}}\n  ingress: [{}, {from: [{}]}, {ports: [{port: 80}]}, {from: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8, 192.168.0.0/16]}}]}]\n")
	got := Lint(decode(t, np), DefaultOptions())
	var np001, np004 []string
	for _, f := range got {
		switch f.Rule {
		case "NP001":
			np001 = append(np001, f.Message)
		case "NP004":
			np004 = append(np004, f.Message)
		}
	}
	if want := "spec.ingress[0] has no from, spec.ingress[2] has no from: it admits every source"; len(np001) != 1 || np001[0] != want {
		t.Errorf("NP001: %q, want one: %q", np001, want)
	}
	if want := "spec.ingress[3] admits every IPv4 address but 2 except range(s): in the cluster and out"; len(np004) != 1 || np004[0] != want {
		t.Errorf("NP004: %q, want %q", np004, want)
	}
}
