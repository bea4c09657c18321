package auditlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

var (
	cluster *testenv.Cluster
	// auditLog is where the API server writes its audit events, one JSON object per line.
	auditLog string
	ctx      = context.Background()
)

func TestAuditLog(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "API Server Audit Policy Suite")
}

var _ = BeforeSuite(func() {
	auditLog = filepath.Join(GinkgoT().TempDir(), "audit.log")
	var err error
	// The API server refuses to start with a policy it cannot load: starting is the first check.
	cluster, err = testenv.StartClusterWith(true, func(env *envtest.Environment) error {
		env.ControlPlane.GetAPIServer().Configure().
			Set("audit-policy-file", policyFile).
			Set("audit-log-path", auditLog)
		return nil
	})
	Expect(err).NotTo(HaveOccurred())
})

var _ = AfterSuite(func() {
	if cluster != nil {
		Expect(cluster.Stop()).To(Succeed())
	}
})

func kubectl(args ...string) string {
	out, err := cluster.Kubectl(ctx, args...)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return out
}

// apply writes a manifest to a file and applies it with kubectl and the given flags.
func apply(manifest string, flags ...string) string {
	path := filepath.Join(GinkgoT().TempDir(), "manifest.yaml")
	ExpectWithOffset(1, os.WriteFile(path, []byte(manifest), 0o600)).To(Succeed())
	out, err := cluster.Kubectl(ctx, append([]string{"apply", "-f", path}, flags...)...)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return out
}

// events reads every audit event the API server has written so far.
func events() ([]auditv1.Event, error) {
	data, err := os.ReadFile(auditLog)
	if err != nil {
		return nil, err
	}
	var out []auditv1.Event
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		var e auditv1.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("audit log line is not an event: %w\n%s", err, sc.Text())
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// find returns the events of one verb on one object (subresource "" for the object itself).
func find(all []auditv1.Event, verb, resource, subresource, name string) []auditv1.Event {
	var out []auditv1.Event
	for _, e := range all {
		if r := e.ObjectRef; e.Verb == verb && r != nil && r.Resource == resource && r.Subresource == subresource &&
			r.Namespace == "shop" && r.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// eventOf waits for exactly one event of a verb on an object and returns it.
func eventOf(verb, resource, subresource, name string) auditv1.Event {
	var found []auditv1.Event
	EventuallyWithOffset(1, func() ([]auditv1.Event, error) {
		all, err := events()
		found = find(all, verb, resource, subresource, name)
		return found, err
	}, 10*time.Second, 100*time.Millisecond).Should(HaveLen(1), "one %s event for %s/%s %s", verb, resource, subresource, name)
	return found[0]
}

// body decodes a request or response object of an event.
func body(raw []byte) map[string]any {
	var m map[string]any
	ExpectWithOffset(1, json.Unmarshal(raw, &m)).To(Succeed(), string(raw))
	return m
}

const serviceGraph = `apiVersion: policy.servicegraph.io/v1alpha1
kind: ServiceGraph
metadata:
  name: shop
  namespace: shop
spec:
  services:
  - name: web
  - name: api
  edges:
  - web→api:8080
`

const networkPolicy = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: hand-written
  namespace: shop
spec:
  podSelector:
    matchLabels: {app: api}
  ingress:
  - from:
    - podSelector:
        matchLabels: {app: web}
  policyTypes: [Ingress]
`

const authorizationPolicy = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: hand-written
  namespace: shop
spec:
  selector:
    matchLabels: {app: api}
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/shop/sa/web"]
`

var _ = Describe("An API server started with config/audit/policy.yaml", Ordered, func() {
	BeforeAll(func() {
		kubectl("create", "namespace", "shop")
		// What a user and a GitOps tool do: server-side apply of a graph, client-side apply
		// (a GET, then a create) of policies, reads, a status write, an edit and a deletion.
		apply(serviceGraph, "--server-side")
		apply(networkPolicy)
		apply(authorizationPolicy)
		Expect(kubectl("get", "networkpolicies,authorizationpolicies,servicegraphs", "-n", "shop", "-o", "name")).
			To(And(ContainSubstring("networkpolicy.networking.k8s.io/hand-written"),
				ContainSubstring("authorizationpolicy.security.istio.io/hand-written"),
				ContainSubstring("servicegraph.policy.servicegraph.io/shop")))
		kubectl("get", "sg", "shop", "-n", "shop", "-o", "yaml")
		kubectl("patch", "sg", "shop", "-n", "shop", "--subresource=status", "--type=merge", "-p", `{"status":{"observedGeneration":1}}`)
		kubectl("annotate", "sg", "shop", "-n", "shop", "policy.servicegraph.io/revision=f913b6c")
		kubectl("delete", "networkpolicy", "hand-written", "-n", "shop")
	})

	It("records the creation of a NetworkPolicy with the request and response bodies", func() {
		e := eventOf("create", "networkpolicies", "", "hand-written")
		Expect(e.Level).To(Equal(auditv1.LevelRequestResponse))
		Expect(e.Stage).To(Equal(auditv1.StageResponseComplete))
		Expect(e.ObjectRef.APIGroup).To(Equal("networking.k8s.io"))
		Expect(e.User.Username).To(Equal("admin"))
		Expect(e.ResponseStatus.Code).To(BeEquivalentTo(201))
		Expect(e.RequestObject).NotTo(BeNil())
		Expect(body(e.RequestObject.Raw)).To(HaveKeyWithValue("spec", HaveKeyWithValue("podSelector",
			HaveKeyWithValue("matchLabels", HaveKeyWithValue("app", "api")))))
		Expect(e.ResponseObject).NotTo(BeNil())
		response := body(e.ResponseObject.Raw)
		Expect(response).To(HaveKeyWithValue("metadata", HaveKey("uid")))
		Expect(response["metadata"]).NotTo(HaveKey("managedFields"), "omitManagedFields")
	})

	It("records the creation of an AuthorizationPolicy with its rules", func() {
		e := eventOf("create", "authorizationpolicies", "", "hand-written")
		Expect(e.Level).To(Equal(auditv1.LevelRequestResponse))
		Expect(e.ObjectRef.APIGroup).To(Equal("security.istio.io"))
		Expect(e.RequestObject).NotTo(BeNil())
		Expect(string(e.RequestObject.Raw)).To(ContainSubstring("cluster.local/ns/shop/sa/web"))
	})

	It("records a server-side apply of a ServiceGraph and an edit of its metadata, with the bodies", func() {
		var patches []auditv1.Event
		Eventually(func() (int, error) {
			all, err := events()
			patches = find(all, "patch", "servicegraphs", "", "shop")
			return len(patches), err
		}, 10*time.Second, 100*time.Millisecond).Should(Equal(2), "the apply and the annotate")
		applied, annotated := patches[0], patches[1]
		Expect(applied.RequestURI).To(ContainSubstring("fieldManager=kubectl&"), "server-side apply")
		Expect(annotated.RequestURI).To(ContainSubstring("fieldManager=kubectl-annotate"))
		for _, e := range patches {
			Expect(e.Level).To(Equal(auditv1.LevelRequestResponse))
			Expect(e.ObjectRef.APIGroup).To(Equal("policy.servicegraph.io"))
			Expect(e.User.Username).To(Equal("admin"))
			Expect(e.RequestObject).NotTo(BeNil())
			Expect(e.ResponseObject).NotTo(BeNil())
			Expect(body(e.ResponseObject.Raw)).To(HaveKeyWithValue("spec", HaveKey("edges")))
		}
		Expect(string(applied.RequestObject.Raw)).To(ContainSubstring("web→api:8080"))
		Expect(string(annotated.RequestObject.Raw)).To(ContainSubstring("policy.servicegraph.io/revision"))
	})

	It("records a status write of a ServiceGraph at Metadata level, without bodies", func() {
		e := eventOf("patch", "servicegraphs", "status", "shop")
		Expect(e.Level).To(Equal(auditv1.LevelMetadata))
		Expect(e.User.Username).To(Equal("admin"))
		Expect(e.ResponseStatus.Code).To(BeEquivalentTo(200))
		Expect(e.RequestObject).To(BeNil())
		Expect(e.ResponseObject).To(BeNil())
	})

	It("records the deletion of a NetworkPolicy", func() {
		e := eventOf("delete", "networkpolicies", "", "hand-written")
		Expect(e.Level).To(Equal(auditv1.LevelRequestResponse))
		Expect(e.ResponseStatus.Code).To(BeEquivalentTo(200))
	})

	It("records no reads of these resources, one stage per request, and nothing else", func() {
		all, err := events()
		Expect(err).NotTo(HaveOccurred())
		Expect(all).NotTo(BeEmpty())
		watched := map[string]bool{"servicegraphs": true, "networkpolicies": true, "authorizationpolicies": true,
			"peerauthentications": true, "serviceentries": true, "sidecars": true}
		for _, e := range all {
			Expect(e.Stage).To(Equal(auditv1.StageResponseComplete), "stage of %s %v", e.Verb, e.ObjectRef)
			Expect(e.ObjectRef).NotTo(BeNil(), "non-resource request %s %s", e.Verb, e.RequestURI)
			Expect(watched).To(HaveKey(e.ObjectRef.Resource), "%s of %s is recorded", e.Verb, e.ObjectRef.Resource)
			Expect(e.Verb).NotTo(BeElementOf("get", "list", "watch"), "a read is recorded: %s", e.RequestURI)
		}
		// Every change above, nothing more: 2 creates, 2 graph patches, 1 status patch, 1 delete.
		var verbs []string
		for _, e := range all {
			verbs = append(verbs, e.Verb+" "+strings.TrimSuffix(e.ObjectRef.Resource+"/"+e.ObjectRef.Subresource, "/"))
		}
		Expect(verbs).To(ConsistOf("create networkpolicies", "create authorizationpolicies", "patch servicegraphs",
			"patch servicegraphs", "patch servicegraphs/status", "delete networkpolicies"))
	})
})
