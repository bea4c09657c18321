package lint

import (
	"fmt"
	"slices"
	"strings"
)

// Severity is how bad a finding is.
type Severity string

const (
	// SeverityError is a hole or a policy that cannot work: CI should fail.
	SeverityError Severity = "error"
	// SeverityWarning is worth a reviewer's look: often deliberate, sometimes not.
	SeverityWarning Severity = "warning"
	// SeverityNote is an opening the workload's role needs (a webhook the API server calls, a
	// metrics port, a public front end): reported with the reason it is fine, never a failure.
	SeverityNote Severity = "note"
)

// severityRank orders severities, note lowest.
var severityRank = map[Severity]int{SeverityNote: 1, SeverityWarning: 2, SeverityError: 3}

// ParseSeverity reads "error", "warning" or "note".
func ParseSeverity(s string) (Severity, error) {
	if v := Severity(s); severityRank[v] > 0 {
		return v, nil
	}
	return "", fmt.Errorf("severity must be error, warning or note, not %q", s)
}

// AtLeast reports whether s is as severe as t or more.
func (s Severity) AtLeast(t Severity) bool {
	return severityRank[s] >= severityRank[t]
}

// Rule is one check the linter makes. Its ID never changes meaning, so CI configurations,
// lint-ignore annotations and code-scanning history can rely on it.
type Rule struct {
	ID       string
	Severity Severity
	// Summary says what the rule finds, in one line.
	Summary string
	// Hint says how to fix a finding, in one line.
	Hint string
}

func (r *Rule) problemf(format string, args ...any) problem {
	return problem{rule: r, message: fmt.Sprintf(format, args...)}
}

// ServiceGraph rules. SG001-SG005 are the graph's build errors (the operator refuses such a graph
// with InvalidSpec); the others are warnings about graphs that build.
var (
	ruleInvalidGraph = &Rule{"SG001", SeverityError,
		"the ServiceGraph does not compile",
		"fix the field the message names; the operator applies nothing for the graph until then"}
	ruleUndeclaredService = &Rule{"SG002", SeverityError,
		"an edge names a service that spec.services does not declare",
		"declare the service in spec.services, with its namespace if it is a peer elsewhere, or correct the edge"}
	ruleDuplicateEdge = &Rule{"SG003", SeverityError,
		"an edge says what another edge or connection already says",
		"remove one of the two"}
	ruleSelfEdge = &Rule{"SG004", SeverityError,
		"an edge goes from a service to itself",
		"remove the edge: a graph cannot allow a service to call itself"}
	ruleHTTPOnTCP = &Rule{"SG005", SeverityError,
		"paths or methods on a port declared TCP, UDP or SCTP: the edge would allow nothing",
		"set the port's protocol to HTTP or GRPC, or drop the paths and methods"}
	ruleHTTPUnstated = &Rule{"SG006", SeverityWarning,
		"paths or methods on a port not known to be HTTP: if Istio sees TCP there, the edge allows nothing",
		"state protocol: HTTP or GRPC in a connection, and name the Service port http-* or set its appProtocol"}
	rulePermissiveGraph = &Rule{"SG007", SeverityWarning,
		"mtls: PERMISSIVE lets pods accept plaintext, which carries no identity",
		"set mtls: STRICT once every caller runs an Istio sidecar"}
	ruleNoDNS = &Rule{"SG008", SeverityWarning,
		"allowDNS: false while services call others: default-deny egress blocks their DNS lookups",
		"remove allowDNS: false, or allow egress to the cluster DNS in a NetworkPolicy of your own"}
	ruleFanInToAll = &Rule{"SG009", SeverityWarning,
		"every other service may call this one: a hub for lateral movement",
		"check that each caller needs it, and restrict the edges to the paths and methods they use"}
	ruleSharedServiceAccount = &Rule{"SG010", SeverityWarning,
		"services share a ServiceAccount: Istio principals cannot tell them apart",
		"give each service its own ServiceAccount in spec.services[].serviceAccount"}
	ruleProtocolMismatch = &Rule{"SG011", SeverityError,
		"an edge matches HTTP paths or methods on a port a Service declares as TCP (or TLS, Mongo, ...): Istio skips the rule and refuses the caller",
		"name the Service port http-… (grpc-… for gRPC) or set its appProtocol: http, or drop the paths and methods"}
	ruleUnmeshedCaller = &Rule{"SG012", SeverityWarning,
		"an unmeshed external caller opens its edges' ports to plain text without an identity (a hole by design)",
		"run the callers in the mesh and name their namespaces without unmeshed, or narrow the peer to the addresses or pods that must connect"}
	ruleHostsAnyAddress = &Rule{"SG013", SeverityWarning,
		"an external host without cidrs: NetworkPolicies cannot match names, so its ports are open to every address outside the cluster",
		"add the cidrs the host resolves to, and run the manager with --cluster-cidrs"}
	ruleTwoGraphs = &Rule{"SG014", SeverityError,
		"two ServiceGraphs for one namespace: the operator applies only the oldest and reports the other as Conflict",
		"merge their services and edges into one ServiceGraph per namespace"}
	ruleWidensGraph = &Rule{"SG015", SeverityError,
		"a policy beside a ServiceGraph lets through what the graph refuses: NetworkPolicies and Istio ALLOW policies add up, so the graph is no longer the only way in (the operator reports it as Bypassed)",
		"declare the connection in the graph (an edge, or an external peer) and delete the policy; a deliberate exception is annotated policy.servicegraph.io/lint-ignore: SG015"}
)

// NetworkPolicy rules.
var (
	ruleIngressFromAll = &Rule{"NP001", SeverityError,
		"an ingress rule admits every source (no from)",
		"list the sources in from: podSelector, namespaceSelector; a policy without ingress rules admits nothing"}
	ruleEgressToAll = &Rule{"NP002", SeverityWarning,
		"an egress rule allows every destination (no to)",
		"list the destinations in to: podSelector, namespaceSelector or ipBlock"}
	ruleSelectsEveryPod = &Rule{"NP003", SeverityWarning,
		"a policy for every pod of its namespace (podSelector: {}) admits addresses (ipBlock): whatever they are, they reach every workload",
		"select the pods that must be reached with podSelector.matchLabels"}
	ruleAnyAddress = &Rule{"NP004", SeverityError,
		"an ingress rule's ipBlocks cover half or more of all addresses (0.0.0.0/0, ::/0, 0.0.0.0/1, ...), except ranges or not",
		"narrow the ipBlock to the addresses that must connect, such as a load balancer's range"}
	ruleEveryPod = &Rule{"NP006", SeverityError,
		"an ingress rule admits every pod of every namespace on every port: namespaceSelector: {}, or one that only excludes (NotIn, DoesNotExist), without pod labels",
		"select the namespaces that must connect by label (kubernetes.io/metadata.name), and their pods"}
	ruleEveryPodOnPorts = &Rule{"NP012", SeverityWarning,
		"an ingress rule admits every pod of every namespace (as NP006) on the ports it lists",
		"select the namespaces that must connect by label (kubernetes.io/metadata.name), and their pods; a metrics port a ServiceMonitor, PodMonitor or prometheus.io/port names is a note"}
	ruleEgressAnywhere = &Rule{"NP007", SeverityWarning,
		"an egress rule allows half or more of all addresses (as NP004) or every pod of every namespace, on ports other than DNS",
		"list the destinations: the ranges of the services called, the namespaces and pods they run in"}
	ruleInvalidNetworkPolicy = &Rule{"NP008", SeverityError,
		"the API server refuses it: a bad CIDR or except, port, endPort, protocol, peer, label selector or name",
		"fix the field the message names"}
	ruleNoDefaultDeny = &Rule{"NP005", SeverityWarning,
		"a namespace has NetworkPolicies but no default-deny: pods no policy selects accept all traffic",
		"add a NetworkPolicy with podSelector: {}, policyTypes: [Ingress, Egress] and no rules, or a ServiceGraph"}
)

// AuthorizationPolicy rules.
var (
	ruleAllowAnySource = &Rule{"AP001", SeverityWarning,
		"an ALLOW rule has no from.source: any caller matches, with or without an identity",
		"add from.source.principals or namespaces naming the callers"}
	ruleAnyPrincipal = &Rule{"AP002", SeverityWarning,
		`an ALLOW rule takes any workload of the mesh or a trust domain: principals "*", "cluster.local/*" or a wildcard that pins no namespace, or namespaces "*"`,
		"name the callers' principals: TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICEACCOUNT"}
	ruleAllowNamespaceWide = &Rule{"AP003", SeverityWarning,
		"an ALLOW policy without a selector applies to every workload of its namespace",
		"add selector.matchLabels for the workloads the policy is for"}
	ruleDenyNeverMatches = &Rule{"AP004", SeverityError,
		"a DENY policy without rules never matches: it denies nothing",
		"add the rules to deny; rules: [{}] denies every request"}
	ruleAllowEverything = &Rule{"AP005", SeverityError,
		"an ALLOW rule is empty (rules: [{}]): it matches every request from anyone",
		"say in the rule who may call (from.source.principals) and on what (to.operation); a policy without rules allows nothing"}
	ruleNeverMatches = &Rule{"AP006", SeverityError,
		"a value Istio accepts can never match: a principal with spiffe://, a wildcard inside or at both ends, a path without a leading /, port 0, a lower-case method",
		"principals are TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICEACCOUNT (a * only at the start or end), paths start with /, ports are 1-65535, methods are upper case"}
)

var (
	ruleNearlyAnyone = &Rule{"AP007", SeverityWarning,
		"an ALLOW source matches nearly anyone: only not* fields, or ipBlocks/remoteIpBlocks covering every address",
		"say who may call: principals, namespaces or the address ranges that must connect"}
	ruleAPHTTPOnTCP = &Rule{"AP008", SeverityError,
		"a rule matches fields only HTTP carries (paths, methods, hosts, request principals, headers, JWT claims) on a port a Service of the input declares as TCP (or TLS, Mongo, ...): Istio never matches an ALLOW rule there, and drops those fields from a DENY rule, which then matches every connection its other fields match",
		"name the Service port http-… or set appProtocol: http, or drop the HTTP fields from the rule"}
	ruleTwoProviders = &Rule{"AP009", SeverityError,
		"two CUSTOM AuthorizationPolicies with different providers apply to one workload: unless istiod runs with PILOT_ENABLE_MULTIPLE_CUSTOM_AUTHZ_PROVIDERS, Istio denies every request their rules match",
		"use one extension provider for the workload, or select disjoint workloads"}
	ruleZtunnelHTTP = &Rule{"AP011", SeverityError,
		"a selector or namespace-wide policy with fields only HTTP carries (paths, methods, hosts, request principals, headers, JWT claims) in a namespace in ambient mode: ztunnel enforces layer 4 only, drops such an ALLOW rule (its callers are refused) and drops those fields from a DENY rule (it denies more, or nothing)",
		"attach the rule to a waypoint instead (targetRefs to the Service, with the Service's ports), and keep selector policies to identities and ports"}
	ruleInvalidAuthorizationPolicy = &Rule{"AP010", SeverityError,
		"istiod refuses it: an address that is not an IP or a CIDR, a port that is not a number, serviceAccounts with principals or namespaces, CUSTOM without a provider or a provider without CUSTOM",
		"fix the field the message names"}
)

// PeerAuthentication rules.
var (
	ruleMTLSDisabled = &Rule{"PA001", SeverityError,
		"mutual TLS DISABLE at mesh or namespace scope: traffic is plaintext and carries no identity",
		"set mtls.mode: STRICT; disable mutual TLS only for the workloads that need it, with a selector"}
	ruleMTLSPermissive = &Rule{"PA002", SeverityWarning,
		"mutual TLS PERMISSIVE at mesh or namespace scope: workloads also accept plaintext without identity",
		"set mtls.mode: STRICT once every caller runs an Istio sidecar"}
	ruleMTLSDisabledSome = &Rule{"PA003", SeverityWarning,
		"mutual TLS DISABLE or PERMISSIVE for some workloads or ports: plain text without identity is accepted there",
		"keep the exception to the port that needs it (portLevelMtls) and to callers that cannot run a sidecar"}
	rulePortLevelNoSelector = &Rule{"PA004", SeverityError,
		"istiod refuses the portLevelMtls: without a selector (ports belong to workloads), or with a port outside 1-65535",
		"add selector.matchLabels for the workloads whose ports these are, and give real port numbers"}
)

var catalogue = []*Rule{
	ruleInvalidGraph, ruleUndeclaredService, ruleDuplicateEdge, ruleSelfEdge, ruleHTTPOnTCP, ruleHTTPUnstated,
	rulePermissiveGraph, ruleNoDNS, ruleFanInToAll, ruleSharedServiceAccount, ruleProtocolMismatch, ruleUnmeshedCaller, ruleHostsAnyAddress, ruleTwoGraphs, ruleWidensGraph,
	ruleIngressFromAll, ruleEgressToAll, ruleSelectsEveryPod, ruleAnyAddress, ruleNoDefaultDeny, ruleEveryPod, ruleEveryPodOnPorts, ruleEgressAnywhere, ruleInvalidNetworkPolicy,
	ruleAllowAnySource, ruleAnyPrincipal, ruleAllowNamespaceWide, ruleDenyNeverMatches, ruleAllowEverything, ruleNeverMatches,
	ruleMTLSDisabled, ruleMTLSPermissive, ruleMTLSDisabledSome, rulePortLevelNoSelector,
	ruleCiliumFromAll, ruleCiliumToAll, ruleCiliumWorld, ruleCiliumEveryPod, ruleCiliumEveryPodOnPorts, ruleCiliumEgressAnywhere,
	ruleCiliumSelectsEveryPod, ruleCiliumFQDNWithoutDNS, ruleCiliumNoDefaultDeny, ruleCiliumRefused,
	ruleNearlyAnyone, ruleAPHTTPOnTCP, ruleTwoProviders, ruleInvalidAuthorizationPolicy, ruleZtunnelHTTP,
	ruleServicePort, ruleSameNamespacePeer, ruleClusterIPBlock, ruleHostNetwork, ruleRecursiveGlob,
	ruleUnreadable, ruleTemplate, ruleClaimsGenerated, ruleDuplicate, ruleUnknownIgnore, ruleRemovedAPI, ruleSelectsNothing,
}

// Rules returns every rule, sorted by ID.
func Rules() []Rule {
	out := make([]Rule, len(catalogue))
	for i, r := range catalogue {
		out[i] = *r
	}
	slices.SortFunc(out, func(a, b Rule) int { return strings.Compare(a.ID, b.ID) })
	return out
}
