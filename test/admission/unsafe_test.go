package admission

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

const ignore = "policy.servicegraph.io/lint-ignore"

var _ = Describe("Unsafe policies, in a namespace the operator does not enforce", func() {
	DescribeTable("are refused with the linter's rule ID and what to do",
		func(manifest string, want ...string) {
			out := mustRefuse(alice, manifest)
			for _, w := range want {
				Expect(out).To(ContainSubstring(w))
			}
		},
		Entry("NP001: an ingress rule without from", networkPolicy(free, "allow-all", allowAll),
			"NetworkPolicy free/allow-all admits every source: an ingress rule has no from, or an empty peer [NP001]; list the sources in from (podSelector, namespaceSelector, ipBlock), a policy without ingress rules admits nothing (or annotate it policy.servicegraph.io/lint-ignore: NP001 to accept the risk)"),
		Entry("NP001: ports do not narrow the sources", networkPolicy(free, "any-source-8080",
			`{podSelector: {matchLabels: {app: api}}, ingress: [{ports: [{port: 8080}]}]}`), "NetworkPolicy free/any-source-8080", np001),
		Entry("NP001: a second rule without from", networkPolicy(free, "second-rule",
			`{podSelector: {}, ingress: [{from: [{podSelector: {matchLabels: {app: web}}}]}, {ports: [{port: 9090}]}]}`), np001),
		Entry("NP001: the annotation ignores other rules only", networkPolicy(free, "wrong-id", allowAll, ignore+": NP002"), np001),
		Entry("AP005: rules: [{}]", authorizationPolicy(free, "allow-any", emptyRule),
			"AuthorizationPolicy free/allow-any allows every request from anyone: an ALLOW rule is empty (rules: [{}]) [AP005]; say in the rule who may call (from.source.principals) and on what (to.operation), a policy without rules allows nothing (or annotate it policy.servicegraph.io/lint-ignore: AP005 to accept the risk)"),
		Entry("AP005: in v1beta1", v1beta1(authorizationPolicy(free, "allow-any", emptyRule)), ap005),
		Entry("AP005: action ALLOW spelt out, next to a good rule", authorizationPolicy(free, "allow-any",
			`{action: ALLOW, selector: {matchLabels: {app: api}}, rules: [{to: [{operation: {ports: ["8080"]}}]}, {}]}`), ap005),
		Entry("AP005: a rule of empty lists", authorizationPolicy(free, "allow-any", `{rules: [{from: [], to: [], when: []}]}`), ap005),
		Entry("PA001: mtls DISABLE for the namespace", peerAuthentication(free, "plain", disable),
			"PeerAuthentication free/plain disables mutual TLS for every workload of namespace free (of the whole mesh in Istio's root namespace): plain text without identity [PA001]; set mtls.mode STRICT, and disable it only for the workloads that need it, with a selector (or annotate it policy.servicegraph.io/lint-ignore: PA001 to accept the risk)"),
		Entry("PA001: in v1beta1", v1beta1(peerAuthentication(free, "plain", disable)), pa001),
		Entry("PA001: a selector without labels selects every workload", peerAuthentication(free, "plain",
			`{selector: {matchLabels: {}}, mtls: {mode: DISABLE}}`), pa001),
	)

	DescribeTable("are admitted when they are safe, or scoped, or not ALLOW",
		func(manifest string) { mustAdmit(alice, manifest) },
		Entry("a default-deny NetworkPolicy", networkPolicy(free, "default-deny", `{podSelector: {}, policyTypes: [Ingress, Egress]}`)),
		Entry("ingress from named pods", networkPolicy(free, "api-from-web-2", fromWeb)),
		Entry("egress to anywhere (not NP001's)", networkPolicy(free, "egress-all", `{podSelector: {}, policyTypes: [Egress], egress: [{}]}`)),
		Entry("an ALLOW rule naming its callers", authorizationPolicy(free, "api-2", callerRule)),
		Entry("allow-nothing (no rules)", authorizationPolicy(free, "allow-nothing", `{}`)),
		Entry("DENY with rules: [{}] (denies everything)", authorizationPolicy(free, "deny-all", `{action: DENY, rules: [{}]}`)),
		Entry("an ALLOW rules: [{}] in dry-run", authorizationPolicy(free, "dry-run", emptyRule, `istio.io/dry-run: "true"`)),
		Entry("an AuthorizationPolicy without spec", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: no-spec, namespace: free}\n"),
		Entry("mtls STRICT", peerAuthentication(free, "strict", strict)),
		Entry("mtls DISABLE for labelled workloads", peerAuthentication(free, "legacy", `{selector: {matchLabels: {app: legacy}}, mtls: {mode: DISABLE}}`)),
		Entry("a PeerAuthentication without spec", "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata: {name: no-spec, namespace: free}\n"),
	)

	DescribeTable("are admitted with the rule's ID in policy.servicegraph.io/lint-ignore",
		func(manifest string) { mustAdmit(alice, manifest) },
		Entry("NP001", networkPolicy(free, "ignored-np", allowAll, ignore+": NP001")),
		Entry("np001 among others, any case", networkPolicy(free, "ignored-np-2", allowAll, ignore+": 'NP005,np001 NP003'")),
		Entry("AP005", authorizationPolicy(free, "ignored-ap", emptyRule, ignore+": AP005")),
		Entry("PA001", v1beta1(peerAuthentication(free, "ignored-pa", disable, ignore+": PA001"))),
	)

	It("are admitted in a namespace labelled policy.servicegraph.io/unsafe-allowed=true", func() {
		mustAdmit(alice, networkPolicy(lab, "allow-all", allowAll))
		mustAdmit(alice, authorizationPolicy(lab, "allow-any", emptyRule))
		mustAdmit(alice, peerAuthentication(lab, "plain", disable))
	})

	It("cannot be made by changing a safe policy", func() {
		mustAdmit(alice, networkPolicy(free, "becomes-open", fromWeb))
		Expect(mustRefuse(alice, networkPolicy(free, "becomes-open", allowAll))).To(ContainSubstring(np001))

		mustAdmit(alice, peerAuthentication(free, "becomes-plain", strict))
		_, err := alice.Kubectl(ctx, "patch", "peerauthentication", "becomes-plain", "-n", free, "--type=merge", "-p", `{"spec":{"mtls":{"mode":"DISABLE"}}}`)
		Expect(err).To(MatchError(ContainSubstring(pa001)))

		By("an update that drops the rule's ID from lint-ignore")
		mustAdmit(alice, networkPolicy(free, "loses-exception", allowAll, ignore+": NP001"))
		_, err = alice.Kubectl(ctx, "annotate", "networkpolicy", "loses-exception", "-n", free, ignore+"=NP002", "--overwrite")
		Expect(err).To(MatchError(ContainSubstring(np001)))
	})

	It("are refused to the break-glass group in an enforced namespace: it bypasses only the ownership guard", func() {
		Expect(mustRefuse(bob, networkPolicy(enforced, "allow-all", allowAll))).To(ContainSubstring(np001))
		mustAdmit(bob, networkPolicy(enforced, "allow-all", allowAll, ignore+": NP001"), "--dry-run=server")
	})
})
