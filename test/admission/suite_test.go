// Package admission checks the admission guardrails of config/admission on the real API server:
// the ValidatingAdmissionPolicies that keep hand edits out of enforced namespaces and refuse unsafe
// policies everywhere, applied with kubectl as a user would, and exercised by users with their own
// client certificates, by the break-glass group and by the manager binary running as the
// operator's ServiceAccount.
package admission

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

const (
	// enforced is labelled policy.servicegraph.io/enforced=true, free has no label, lab is
	// labelled policy.servicegraph.io/unsafe-allowed=true.
	enforced = "shop"
	free     = "free"
	lab      = "lab"

	operatorUser = "system:serviceaccount:servicegraph-system:servicegraph-controller-manager"
	breakGlass   = "servicegraph:break-glass"

	enforcedPolicy = "servicegraph-enforced-namespaces"
)

// policies are the ValidatingAdmissionPolicies of config/admission.
var policies = []string{enforcedPolicy,
	"servicegraph-unsafe-networkpolicies", "servicegraph-unsafe-authorizationpolicies", "servicegraph-unsafe-peerauthentications"}

const (
	// The messages' rule IDs, those of servicegraph lint.
	np001 = "[NP001]"
	ap005 = "[AP005]"
	pa001 = "[PA001]"
)

var (
	cluster *testenv.Cluster
	ctx     = context.Background()
	// admin is in system:masters; alice is a developer (group developers) who may edit the policy
	// kinds in every test namespace; bob is in the break-glass group, with the same rights.
	admin, alice, bob *testenv.User
	manager           string
)

func TestAdmission(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Admission Suite")
}

var _ = BeforeSuite(func() {
	dir := GinkgoT().TempDir()
	built := make(chan error, 1)
	go func() {
		var err error
		manager, err = testenv.BuildManager(dir)
		built <- err
	}()

	var err error
	cluster, err = testenv.StartCluster(true)
	Expect(err).NotTo(HaveOccurred())
	admin = cluster.Admin()

	By("creating the namespaces and the users' rights")
	mustAdmit(admin, `apiVersion: v1
kind: Namespace
metadata: {name: servicegraph-system}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {policy.servicegraph.io/enforced: "true"}}
---
apiVersion: v1
kind: Namespace
metadata: {name: free}
---
apiVersion: v1
kind: Namespace
metadata: {name: lab, labels: {policy.servicegraph.io/unsafe-allowed: "true"}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: policy-editor}
rules:
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [security.istio.io]
  resources: [authorizationpolicies, peerauthentications]
  verbs: [get, list, watch, create, update, patch, delete]
`)
	for _, ns := range []string{enforced, free, lab} {
		Expect(cluster.Grant(ctx, "edit-policies", "policy-editor", ns,
			testenv.GroupSubject("developers"), testenv.GroupSubject(breakGlass), testenv.GroupSubject("sre-oncall"))).To(Succeed())
	}
	alice, err = cluster.AddUser("alice", "developers")
	Expect(err).NotTo(HaveOccurred())
	bob, err = cluster.AddUser("bob", breakGlass)
	Expect(err).NotTo(HaveOccurred())

	By("applying config/admission with kubectl apply -k")
	kubectl(admin, "apply", "-k", filepath.Join(testenv.Root(), "config", "admission"))

	By("waiting until the API server enforces both policies (type checking and informers are asynchronous)")
	Eventually(func() string {
		out, _ := admin.Apply(ctx, networkPolicy(enforced, "probe", fromWeb), "--dry-run=server")
		return out
	}, 30*time.Second, 100*time.Millisecond).Should(ContainSubstring("(break-glass: group " + breakGlass + ")"))
	Eventually(func() string {
		out, _ := admin.Apply(ctx, networkPolicy(free, "probe", allowAll), "--dry-run=server")
		return out
	}, 30*time.Second, 100*time.Millisecond).Should(ContainSubstring(np001))

	Expect(<-built).To(Succeed())
})

var _ = AfterSuite(func() {
	if cluster != nil {
		Expect(cluster.Stop()).To(Succeed())
	}
})

// kubectl runs kubectl as u and fails the spec if it fails.
func kubectl(u *testenv.User, args ...string) string {
	out, err := u.Kubectl(ctx, args...)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return out
}

// mustAdmit applies a manifest as u and fails the spec if the API server refuses it.
func mustAdmit(u *testenv.User, manifest string, args ...string) {
	_, err := u.Apply(ctx, manifest, args...)
	ExpectWithOffset(1, err).NotTo(HaveOccurred(), "%s was refused:\n%s", u.Name, manifest)
}

// mustRefuse applies a manifest as u, fails the spec if the API server admits it, and returns
// kubectl's output, the API server's message.
func mustRefuse(u *testenv.User, manifest string, args ...string) string {
	out, err := u.Apply(ctx, manifest, args...)
	ExpectWithOffset(1, err).To(HaveOccurred(), "%s was admitted:\n%s\n%s", u.Name, manifest, out)
	return out
}

// Specs of the three kinds, in YAML flow style.
const (
	fromWeb  = `{podSelector: {matchLabels: {app: api}}, policyTypes: [Ingress], ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 8080}]}]}`
	allowAll = `{podSelector: {}, policyTypes: [Ingress], ingress: [{}]}`
	// callerRule is an ALLOW rule that names its callers.
	callerRule = `{selector: {matchLabels: {app: api}}, rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}], to: [{operation: {ports: ["8080"]}}]}]}`
	emptyRule  = `{rules: [{}]}`
	strict     = `{mtls: {mode: STRICT}}`
	disable    = `{mtls: {mode: DISABLE}}`
)

// object writes a manifest; annotations are "key: value" pairs.
func object(apiVersion, kind, ns, name, spec string, annotations ...string) string {
	meta := fmt.Sprintf("{name: %s, namespace: %s", name, ns)
	if len(annotations) > 0 {
		meta += ", annotations: {" + strings.Join(annotations, ", ") + "}"
	}
	return fmt.Sprintf("apiVersion: %s\nkind: %s\nmetadata: %s}\nspec: %s\n", apiVersion, kind, meta, spec)
}

func networkPolicy(ns, name, spec string, annotations ...string) string {
	return object("networking.k8s.io/v1", "NetworkPolicy", ns, name, spec, annotations...)
}

func authorizationPolicy(ns, name, spec string, annotations ...string) string {
	return object("security.istio.io/v1", "AuthorizationPolicy", ns, name, spec, annotations...)
}

func peerAuthentication(ns, name, spec string, annotations ...string) string {
	return object("security.istio.io/v1", "PeerAuthentication", ns, name, spec, annotations...)
}

// v1beta1 writes the same object in Istio's older version.
func v1beta1(manifest string) string {
	return strings.Replace(manifest, "security.istio.io/v1\n", "security.istio.io/v1beta1\n", 1)
}

// enforcedMessage is what the API server says to anyone but the operator and the break-glass
// group writing kind ns/name in an enforced namespace; verb is creating, changing or deleting.
func enforcedMessage(verb, kind, ns, name string) string {
	return fmt.Sprintf("namespace %s is enforced by servicegraph-operator: change its ServiceGraph instead of %s %s %s/%s (break-glass: group %s)",
		ns, verb, kind, ns, name, breakGlass)
}
