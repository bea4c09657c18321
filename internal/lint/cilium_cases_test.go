package lint

// cnpYAML is a CiliumNetworkPolicy "cnp" in namespace shop with the given spec.
func cnpYAML(spec string) string {
	return "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: cnp, namespace: shop}\nspec:\n" + spec
}

// ccnpYAML is a CiliumClusterwideNetworkPolicy "ccnp" with the given spec.
func ccnpYAML(spec string) string {
	return "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: ccnp}\nspec:\n" + spec
}

const (
	endpointAPI = "  endpointSelector: {matchLabels: {app: api}}\n"
	port80      = "toPorts: [{ports: [{port: '80', protocol: TCP}]}]"
	port443     = "toPorts: [{ports: [{port: '443', protocol: TCP}]}]"
	dnsRule     = "{toEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system, k8s:k8s-app: kube-dns}}], toPorts: [{ports: [{port: '53', protocol: ANY}], rules: {dns: [{matchPattern: '*'}]}}]}"
	allNS       = "{matchExpressions: [{key: k8s:io.kubernetes.pod.namespace, operator: Exists}]}"
	ciliumDeny  = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: deny, namespace: shop}\nspec: {endpointSelector: {}, ingress: [{}]}"
	apiPod      = "apiVersion: v1\nkind: Pod\nmetadata: {name: api, namespace: shop, labels: {app: api}}\n"
)

// ciliumCases give, per CiliumNetworkPolicy rule, a minimal manifest it must find and a close one
// it must not: Cilium's wildcards and empty rules, its entities, namespace scoping of selectors,
// and the roles that make an opening a note.
var ciliumCases = []ruleCase{
	{"toPorts without a peer is Cilium's wildcard", "CNP001",
		cnpYAML(endpointAPI + "  ingress: [{" + port80 + "}]\n"),
		cnpYAML(endpointAPI + "  ingress: [{fromEndpoints: [{matchLabels: {app: web}}], " + port80 + "}]\n")},
	{"an empty rule admits nothing", "CNP001",
		cnpYAML(endpointAPI + "  ingress: [{" + port80 + "}]\n"),
		cnpYAML(endpointAPI + "  ingress: [{}]\n")},
	{"an empty list of peers admits no one", "CNP001",
		cnpYAML(endpointAPI + "  ingress: [{" + port80 + "}]\n"),
		cnpYAML(endpointAPI + "  ingress: [{fromEndpoints: [], " + port80 + "}]\n")},
	{"the entity all", "CNP001",
		cnpYAML(endpointAPI + "  ingress: [{fromEntities: [all]}]\n"),
		cnpYAML(endpointAPI + "  ingress: [{fromEntities: [kube-apiserver, host]}]\n")},
	{"the world denied on every port: every pod, not everyone", "CNP001",
		ccnpYAML("  endpointSelector: {}\n  ingress: [{fromEntities: [all]}]\n  ingressDeny: [{fromEntities: [world], " + port80 + "}]\n"),
		ccnpYAML("  endpointSelector: {}\n  ingress: [{fromEntities: [all]}]\n  ingressDeny: [{fromEntities: [world]}]\n")},
	{"ICMP from anywhere is the usual allowance", "CNP001",
		cnpYAML(endpointAPI + "  ingress: [{toPorts: [{ports: [{port: '0', protocol: ANY}]}]}]\n"),
		cnpYAML(endpointAPI + "  ingress: [{icmps: [{fields: [{type: 8, family: IPv4}]}]}]\n")},
	{"a deny rule opens nothing", "CNP001",
		cnpYAML(endpointAPI + "  ingress: [{fromEntities: [all]}]\n"),
		cnpYAML(endpointAPI + "  ingressDeny: [{fromEntities: [all]}]\n")},
	{"egress toPorts without a peer", "CNP002",
		cnpYAML(endpointAPI + "  egress: [{" + port443 + "}]\n"),
		cnpYAML(endpointAPI + "  egress: [{toPorts: [{ports: [{port: '53', protocol: UDP}, {port: '53', protocol: TCP}]}]}]\n")},
	{"toEntities all", "CNP002",
		cnpYAML(endpointAPI + "  egress: [{toEntities: [all]}]\n"),
		cnpYAML(endpointAPI + "  egress: [{toEntities: [kube-apiserver]}]\n")},
	{"fromEntities world", "CNP003",
		cnpYAML(endpointAPI + "  ingress: [{fromEntities: [world], " + port443 + "}]\n"),
		cnpYAML(endpointAPI + "  ingress: [{fromEntities: [remote-node], " + port443 + "}]\n")},
	{"fromCIDR 0.0.0.0/0", "CNP003",
		cnpYAML(endpointAPI + "  ingress: [{fromCIDR: [0.0.0.0/0]}]\n"),
		cnpYAML(endpointAPI + "  ingress: [{fromCIDR: [10.0.0.0/8]}]\n")},
	{"fromCIDRSet ::/0 with an except", "CNP003",
		cnpYAML(endpointAPI + "  ingress: [{fromCIDRSet: [{cidr: '::/0', except: ['fd00::/8']}]}]\n"),
		cnpYAML(endpointAPI + "  ingress: [{fromCIDRSet: [{cidrGroupRef: office}]}]\n")},
	{"a LoadBalancer's port from the world is a note", "CNP003",
		cnpYAML(endpointAPI+"  ingress: [{fromEntities: [world]}]\n") + "\n---\n" + loadBalancer,
		cnpYAML(endpointAPI+"  ingress: [{fromEntities: [world], toPorts: [{ports: [{port: '8443', protocol: TCP}]}]}]\n") + "\n---\n" + loadBalancer},
	{"the namespace exists: every pod of every namespace", "CNP004",
		cnpYAML(endpointAPI + "  ingress: [{fromEndpoints: [" + allNS + "]}]\n"),
		cnpYAML(endpointAPI + "  ingress: [{fromEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: monitoring}}]}]\n")},
	{"an empty selector in a namespaced policy is its own namespace", "CNP004",
		cnpYAML(endpointAPI + "  ingress: [{fromEndpoints: [" + allNS + "]}]\n"),
		cnpYAML(endpointAPI + "  ingress: [{fromEndpoints: [{}]}]\n")},
	{"an empty selector in a clusterwide policy", "CNP004",
		ccnpYAML(endpointAPI + "  ingress: [{fromEndpoints: [{}]}]\n"),
		ccnpYAML(endpointAPI + "  ingress: [{fromEndpoints: [{matchLabels: {app: web}}]}]\n")},
	{"everyone but the world a deny rule refuses", "CNP004",
		ccnpYAML("  endpointSelector: {}\n  ingress: [{fromEntities: [all]}]\n  ingressDeny: [{fromEntities: [world]}]\n"),
		ccnpYAML("  endpointSelector: {}\n  ingress: [{fromEntities: [all]}]\n  ingressDeny: [{fromEntities: [world], " + port80 + "}]\n")},
	{"the entity cluster", "CNP004",
		cnpYAML(endpointAPI + "  ingress: [{fromEntities: [cluster]}]\n"),
		cnpYAML(endpointAPI + "  ingress: [{fromEntities: [ingress]}]\n")},
	{"namespaces that only exclude, without a source prefix", "CNP004",
		cnpYAML(endpointAPI + "  ingress: [{fromEndpoints: [{matchExpressions: [{key: io.kubernetes.pod.namespace, operator: NotIn, values: [untrusted]}]}]}]\n"),
		cnpYAML(endpointAPI + "  ingress: [{fromEndpoints: [{matchExpressions: [{key: io.kubernetes.pod.namespace, operator: In, values: [web]}]}]}]\n")},
	{"every namespace's pods with a label", "CNP004",
		cnpYAML(endpointAPI + "  ingress: [{fromEndpoints: [" + allNS + "]}]\n"),
		cnpYAML(endpointAPI + "  ingress: [{fromEndpoints: [{matchLabels: {app: prometheus}, matchExpressions: [{key: k8s:io.kubernetes.pod.namespace, operator: Exists}]}]}]\n")},
	{"every pod of every namespace on the ports listed", "CNP005",
		cnpYAML(endpointAPI + "  ingress: [{fromEndpoints: [" + allNS + "], " + port80 + "}]\n"),
		cnpYAML(endpointAPI + "  ingress: [{fromEndpoints: [" + allNS + "]}]\n")},
	{"a metrics port is a note", "CNP005",
		cnpYAML(endpointAPI+"  ingress: [{fromEndpoints: ["+allNS+"], toPorts: [{ports: [{port: '9090', protocol: TCP}]}]}]\n") + "\n---\n" + apiPod,
		cnpYAML(endpointAPI+"  ingress: [{fromEndpoints: ["+allNS+"], toPorts: [{ports: [{port: '9090', protocol: TCP}]}]}]\n") + "\n---\n" +
			"apiVersion: v1\nkind: Pod\nmetadata: {name: api, namespace: shop, labels: {app: api}, annotations: {prometheus.io/port: '9090'}}\n"},
	{"the cluster DNS takes lookups from every pod", "CNP005",
		ccnpYAML("  endpointSelector: {matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system, k8s-app: metrics-server}}\n  ingress: [{fromEndpoints: [{}], toPorts: [{ports: [{port: '53', protocol: UDP}]}]}]\n"),
		ccnpYAML("  endpointSelector: {matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system, k8s-app: kube-dns}}\n  ingress: [{fromEndpoints: [{}], toPorts: [{ports: [{port: '53', protocol: UDP}]}]}]\n")},
	{"toEntities world", "CNP006",
		cnpYAML(endpointAPI + "  egress: [{toEntities: [world], " + port443 + "}]\n"),
		cnpYAML(endpointAPI + "  egress: [{toFQDNs: [{matchName: api.stripe.com}], " + port443 + "}, " + dnsRule + "]\n")},
	{"DNS to the world is the usual allowance", "CNP006",
		cnpYAML(endpointAPI + "  egress: [{toEntities: [world], toPorts: [{ports: [{port: '53', protocol: UDP}, {port: '443', protocol: TCP}]}]}]\n"),
		cnpYAML(endpointAPI + "  egress: [{toEntities: [world], toPorts: [{ports: [{port: '53', protocol: UDP}, {port: '53', protocol: TCP}]}]}]\n")},
	{"toCIDR 0.0.0.0/0", "CNP006",
		cnpYAML(endpointAPI + "  egress: [{toCIDR: [0.0.0.0/0], " + port443 + "}]\n"),
		cnpYAML(endpointAPI + "  egress: [{toCIDR: [203.0.113.0/24], " + port443 + "}]\n")},
	{"egress to every pod of every namespace", "CNP006",
		cnpYAML(endpointAPI + "  egress: [{toEndpoints: [" + allNS + "], " + port80 + "}]\n"),
		cnpYAML(endpointAPI + "  egress: [{toEndpoints: [{}], " + port80 + "}]\n")},
	{"Prometheus scrapes anywhere", "CNP006",
		cnpYAML(endpointAPI+"  egress: [{toEntities: [world]}]\n") + "\n---\n" + apiPod,
		cnpYAML("  endpointSelector: {matchLabels: {app: prometheus}}\n  egress: [{toEntities: [world]}]\n") + "\n---\n" +
			"apiVersion: v1\nkind: Pod\nmetadata: {name: prometheus, namespace: shop, labels: {app: prometheus}}\n"},
	{"every pod reached from addresses", "CNP007",
		cnpYAML("  endpointSelector: {}\n  ingress: [{fromCIDR: [10.1.0.0/16]}]\n"),
		cnpYAML(endpointAPI + "  ingress: [{fromCIDR: [10.1.0.0/16]}]\n")},
	{"the same-namespace baseline is not every pod reached", "CNP007",
		cnpYAML("  endpointSelector: {}\n  ingress: [{fromCIDRSet: [{cidr: 10.1.0.0/16}]}]\n"),
		cnpYAML("  endpointSelector: {}\n  ingress: [{fromEndpoints: [{}]}]\n")},
	{"toFQDNs without a DNS rule", "CNP008",
		cnpYAML(endpointAPI + "  egress: [{toFQDNs: [{matchName: api.stripe.com}], " + port443 + "}]\n"),
		cnpYAML(endpointAPI + "  egress: [{toFQDNs: [{matchName: api.stripe.com}], " + port443 + "}, " + dnsRule + "]\n")},
	{"a DNS rule of another policy for every pod of the namespace", "CNP008",
		cnpYAML(endpointAPI+"  egress: [{toFQDNs: [{matchPattern: '*.stripe.com'}], "+port443+"}]\n") + "\n---\n" +
			"apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: dns, namespace: shop}\nspec:\n  endpointSelector: {matchLabels: {app: web}}\n  egress: [" + dnsRule + "]\n---\n" + apiPod,
		cnpYAML(endpointAPI+"  egress: [{toFQDNs: [{matchPattern: '*.stripe.com'}], "+port443+"}]\n") + "\n---\n" +
			"apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: dns, namespace: shop}\nspec:\n  endpointSelector: {}\n  egress: [" + dnsRule + "]\n"},
	{"a DNS rule of another policy that selects the same workloads", "CNP008",
		cnpYAML(endpointAPI+"  egress: [{toFQDNs: [{matchName: api.stripe.com}], "+port443+"}]\n") + "\n---\n" + dnsPolicy("kind: server") + "\n---\n" + clientPod,
		cnpYAML(endpointAPI+"  egress: [{toFQDNs: [{matchName: api.stripe.com}], "+port443+"}]\n") + "\n---\n" + dnsPolicy("kind: client") + "\n---\n" + clientPod},
	{"without workloads, another policy's DNS rule may be for the same pods", "CNP008",
		cnpYAML(endpointAPI + "  egress: [{toFQDNs: [{matchName: api.stripe.com}], " + port443 + "}]\n"),
		cnpYAML(endpointAPI+"  egress: [{toFQDNs: [{matchName: api.stripe.com}], "+port443+"}]\n") + "\n---\n" + dnsPolicy("kind: server")},
	{"a clusterwide DNS rule", "CNP008",
		cnpYAML(endpointAPI + "  egress: [{toFQDNs: [{matchName: api.stripe.com}], " + port443 + "}]\n"),
		cnpYAML(endpointAPI+"  egress: [{toFQDNs: [{matchName: api.stripe.com}], "+port443+"}]\n") + "\n---\n" + ccnpYAML("  endpointSelector: {}\n  egress: ["+dnsRule+"]\n")},
	{"a DNS rule that refuses the name's lookup", "CNP008",
		cnpYAML(endpointAPI + "  egress: [{toFQDNs: [{matchName: api.stripe.com}], " + port443 + "}, " + dnsRuleFor("'*.cluster.local'") + "]\n"),
		cnpYAML(endpointAPI + "  egress: [{toFQDNs: [{matchName: api.stripe.com}], " + port443 + "}, " + dnsRuleFor("'*.stripe.com'") + "]\n")},
	{"no Cilium default-deny", "CNP009",
		cnpYAML(endpointAPI + "  ingress: [{fromEndpoints: [{matchLabels: {app: web}}]}]\n"),
		cnpYAML(endpointAPI+"  ingress: [{fromEndpoints: [{matchLabels: {app: web}}]}]\n") + "\n---\n" + ciliumDeny},
	{"enableDefaultDeny: false is no default-deny", "CNP009",
		cnpYAML("  endpointSelector: {}\n  enableDefaultDeny: {ingress: false}\n  ingress: [{fromEndpoints: [{}]}]\n"),
		cnpYAML("  endpointSelector: {}\n  ingress: [{fromEndpoints: [{}]}]\n")},
	{"an allow-all for every pod is no default-deny", "CNP009",
		cnpYAML("  endpointSelector: {}\n  ingress: [{fromEntities: [all]}]\n"),
		cnpYAML("  endpointSelector: {}\n  ingress: [{fromEntities: [all], " + port80 + "}]\n")},
	{"every pod of every namespace on every port is no default-deny", "CNP009",
		cnpYAML("  endpointSelector: {}\n  ingress: [{fromEntities: [cluster]}]\n"),
		cnpYAML("  endpointSelector: {}\n  ingress: [{fromEndpoints: [{}]}]\n")},
	{"a clusterwide default-deny that leaves kube-system out", "CNP009",
		cnpYAML(endpointAPI+"  ingress: [{fromEndpoints: [{matchLabels: {app: web}}]}]\n") + "\n---\n" +
			ccnpYAML("  endpointSelector: {matchExpressions: [{key: io.kubernetes.pod.namespace, operator: NotIn, values: [kube-system, shop]}]}\n  ingress: [{}]\n"),
		cnpYAML(endpointAPI+"  ingress: [{fromEndpoints: [{matchLabels: {app: web}}]}]\n") + "\n---\n" +
			ccnpYAML("  endpointSelector: {matchExpressions: [{key: io.kubernetes.pod.namespace, operator: NotIn, values: [kube-system]}]}\n  ingress: [{}]\n")},
	{"a NetworkPolicy default-deny covers Cilium's namespace", "CNP009",
		cnpYAML(endpointAPI + "  ingress: [{fromEndpoints: [{matchLabels: {app: web}}]}]\n"),
		cnpYAML(endpointAPI+"  ingress: [{fromEndpoints: [{matchLabels: {app: web}}]}]\n") + "\n---\n" + defaultDenyNP},
	{"a Cilium default-deny covers a NetworkPolicy's namespace", "NP005",
		npYAML(ingressFromWeb),
		npYAML(ingressFromWeb) + "\n---\n" + ciliumDeny},
	{"two kinds of peer in one rule", "CNP010",
		cnpYAML(endpointAPI + "  ingress: [{fromEndpoints: [{matchLabels: {app: web}}], fromCIDR: [10.0.0.0/8]}]\n"),
		cnpYAML(endpointAPI + "  ingress: [{fromEndpoints: [{matchLabels: {app: web}}]}, {fromCIDR: [10.0.0.0/8]}]\n")},
	{"DNS rules on ingress", "CNP010",
		cnpYAML(endpointAPI + "  ingress: [{fromEndpoints: [{}], toPorts: [{ports: [{port: '53', protocol: UDP}], rules: {dns: [{matchPattern: '*'}]}}]}]\n"),
		cnpYAML(endpointAPI + "  egress: [{toEndpoints: [{}], toPorts: [{ports: [{port: '53', protocol: UDP}], rules: {dns: [{matchPattern: '*'}]}}]}]\n")},
	{"a rule without sections; a deny section is one", "CNP010",
		cnpYAML(endpointAPI),
		cnpYAML(endpointAPI + "  ingressDeny: [{fromEntities: [world]}]\n")},
	{"an entity Cilium does not know", "CNP010",
		cnpYAML(endpointAPI + "  ingress: [{fromEntities: [internet]}]\n"),
		cnpYAML(endpointAPI + "  ingress: [{fromEntities: [kube-apiserver]}]\n")},
	{"a namespaced policy selecting nodes", "CNP010",
		cnpYAML("  nodeSelector: {matchLabels: {type: ingress-worker}}\n  ingress: [{fromEntities: [remote-node]}]\n"),
		ccnpYAML("  nodeSelector: {matchLabels: {type: ingress-worker}}\n  ingress: [{fromEntities: [remote-node]}]\n")},
	{"fromRequires, which Cilium v1.20's schema refuses", "CNP010",
		cnpYAML(endpointAPI + "  ingress: [{fromEndpoints: [{matchLabels: {app: web}}], fromRequires: ['k8s:env=prod']}]\n"),
		cnpYAML(endpointAPI + "  ingress: [{fromEndpoints: [{matchLabels: {app: web, env: prod}}]}]\n")},
	{"an endpointSelector with Cilium's source prefix selects no workload", "WL001",
		cnpYAML("  endpointSelector: {matchLabels: {k8s:app: web}}\n  ingress: [{}]\n") + "\n---\n" + apiPod,
		cnpYAML("  endpointSelector: {matchLabels: {k8s:app: api, k8s:io.kubernetes.pod.namespace: shop}}\n  ingress: [{}]\n") + "\n---\n" + apiPod},
}

// loadBalancer is a LoadBalancer Service in front of the api pods: its pods take port 8443 from
// anywhere.
const loadBalancer = "apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: shop}\nspec:\n  type: LoadBalancer\n  selector: {app: api}\n  ports: [{port: 443, targetPort: 8443}]"

// clientPod is a pod of namespace shop that the api policies select, labelled kind: client.
const clientPod = "apiVersion: v1\nkind: Pod\nmetadata: {name: api, namespace: shop, labels: {app: api, kind: client}}\n"

// dnsPolicy is a CiliumNetworkPolicy "dns" of namespace shop that sends the lookups of the pods
// with the label through Cilium's DNS proxy.
func dnsPolicy(label string) string {
	return "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: dns, namespace: shop}\nspec:\n  endpointSelector: {matchLabels: {" + label + "}}\n  egress: [" + dnsRule + "]\n"
}

// dnsRuleFor is an egress rule to the cluster DNS whose lookups the pattern allows.
func dnsRuleFor(pattern string) string {
	return "{toEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system, k8s:k8s-app: kube-dns}}], toPorts: [{ports: [{port: '53', protocol: ANY}], rules: {dns: [{matchPattern: " + pattern + "}]}}]}"
}
