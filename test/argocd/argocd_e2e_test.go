package argocd

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// shopGraph is the graph of the suite's main Application: namespace-less, as in a GitOps
// repository whose Application (or overlay) decides the namespace.
func shopGraph(edges ...string) string {
	return fmt.Sprintf(`apiVersion: policy.servicegraph.io/v1alpha1
kind: ServiceGraph
metadata:
  name: shop
spec:
  services:
  - name: web
  - name: api
  - name: database
  edges: [%s]
`, strings.Join(quoteAll(edges), ", "))
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

var shopEdges = []string{"web->api:8080", "api->database:5432/data"}

// eventuallyApp polls an Application until check passes and returns what it last read.
func eventuallyApp(name string, timeout time.Duration, check func(g Gomega, app *application)) *application {
	GinkgoHelper()
	var last *application
	Eventually(func(g Gomega) {
		app, err := getApp(name)
		g.Expect(err).NotTo(HaveOccurred())
		last = app
		check(g, app)
	}).WithTimeout(timeout).WithPolling(100*time.Millisecond).Should(Succeed(), func() string {
		if last == nil {
			return name + ": not read yet"
		}
		return last.summary()
	})
	return last
}

// expectSynced checks that an Application is Synced (at revision, when given) and its last sync
// operation has finished successfully.
func expectSynced(g Gomega, app *application, revision string) {
	g.Expect(app.Status.Sync.Status).To(Equal("Synced"))
	if revision != "" {
		g.Expect(app.Status.Sync.Revision).To(Equal(revision))
	}
	g.Expect(app.Status.OperationState).NotTo(BeNil(), "no sync operation yet")
	g.Expect(app.Status.OperationState.Phase).To(Equal("Succeeded"))
}

// expectResourceHealth checks the health Argo CD computed for a ServiceGraph of the Application.
func expectResourceHealth(g Gomega, app *application, namespace, name, status, message string) {
	r := app.resource("ServiceGraph", namespace, name)
	g.Expect(r).NotTo(BeNil(), "the Application has no ServiceGraph %s/%s", namespace, name)
	g.Expect(r.Health).NotTo(BeNil(), "Argo CD computed no health for ServiceGraph %s/%s", namespace, name)
	g.Expect(*r.Health).To(Equal(health{Status: status, Message: message}))
}

// operatorMessage is what the health check should say of a graph, from the operator's own
// conditions: the Ready message when Ready, "reason: message" of Stalled or Reconciling otherwise.
func operatorMessage(sg *v1alpha1.ServiceGraph) (status, message string) {
	ready := testenv.Condition(sg, v1alpha1.ConditionReady)
	stalled := testenv.Condition(sg, v1alpha1.ConditionStalled)
	reconciling := testenv.Condition(sg, v1alpha1.ConditionReconciling)
	switch {
	case stalled.Status == metav1.ConditionTrue:
		return "Degraded", stalled.Reason + ": " + stalled.Message
	case ready.Status == metav1.ConditionTrue:
		return "Healthy", ready.Message
	case reconciling.Status == metav1.ConditionTrue:
		return "Progressing", reconciling.Reason + ": " + reconciling.Message
	}
	return "", ""
}

// expectOperatorHealth checks that Argo CD reports, for the live graph, the operator's own words.
func expectOperatorHealth(g Gomega, app *application, namespace, name, want string) {
	sg, err := getSG(namespace, name)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sg.Status.ObservedGeneration).To(Equal(sg.Generation), "the operator has not observed the graph yet")
	status, message := operatorMessage(sg)
	g.Expect(status).To(Equal(want), "the operator's conditions: %+v", sg.Status.Conditions)
	expectResourceHealth(g, app, namespace, name, status, message)
}

// specWriters lists the field managers that wrote the graph's spec: git's copy has one writer,
// Argo CD ("argocd-controller"); the operator writes status only.
func specWriters(g Gomega, namespace, name string) []string {
	sg, err := getSG(namespace, name)
	g.Expect(err).NotTo(HaveOccurred())
	var out []string
	for _, mf := range sg.ManagedFields {
		if mf.Subresource == "" && mf.FieldsV1 != nil && strings.Contains(string(mf.FieldsV1.Raw), `"f:spec"`) {
			out = append(out, mf.Manager)
		}
	}
	return out
}

// expectOnlyArgoCDWroteSpec checks that the graph's spec is at the generation git's commits made
// and that Argo CD's field manager is the only one that wrote it.
func expectOnlyArgoCDWroteSpec(namespace, name string, generation int64) {
	GinkgoHelper()
	sg, err := getSG(namespace, name)
	Expect(err).NotTo(HaveOccurred())
	Expect(sg.Generation).To(Equal(generation), "something besides Argo CD wrote the spec of %s/%s", namespace, name)
	Expect(specWriters(Default, namespace, name)).To(And(Not(BeEmpty()), HaveEach("argocd-controller")),
		"only Argo CD writes the spec of %s/%s", namespace, name)
}

// staysInSync watches Applications for d: each stays Synced with the health it had, starts no new
// sync operation (self-heal syncs show here, not in status.history), and its ServiceGraphs keep
// their generation (nobody rewrites the spec git owns).
func staysInSync(d time.Duration, names ...string) {
	GinkgoHelper()
	type mark struct {
		op     string
		health string
		gens   map[types.NamespacedName]int64
	}
	marks := map[string]mark{}
	for _, name := range names {
		app, err := getApp(name)
		Expect(err).NotTo(HaveOccurred())
		Expect(app.Status.Sync.Status).To(Equal("Synced"), app.summary())
		m := mark{op: app.operationStarted(), health: app.Status.Health.Status, gens: map[types.NamespacedName]int64{}}
		for _, r := range app.Status.Resources {
			if r.Kind == "ServiceGraph" {
				sg, err := getSG(r.Namespace, r.Name)
				Expect(err).NotTo(HaveOccurred())
				m.gens[types.NamespacedName{Namespace: r.Namespace, Name: r.Name}] = sg.Generation
			}
		}
		Expect(m.gens).NotTo(BeEmpty(), app.summary())
		marks[name] = m
	}
	start := time.Now()
	Consistently(func(g Gomega) {
		for _, name := range names {
			app, err := getApp(name)
			g.Expect(err).NotTo(HaveOccurred())
			m := marks[name]
			g.Expect(app.Status.Sync.Status).To(Equal("Synced"), app.summary())
			g.Expect(app.Status.Health.Status).To(Equal(m.health), app.summary())
			g.Expect(app.operationStarted()).To(Equal(m.op), "a new sync operation started: %s", app.summary())
			for key, gen := range m.gens {
				sg, err := getSG(key.Namespace, key.Name)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(sg.Generation).To(Equal(gen), "the spec of ServiceGraph %s changed after the sync: %+v", key, sg.Spec)
			}
		}
	}).WithTimeout(d).WithPolling(time.Second).Should(Succeed())
	AddReportEntry(fmt.Sprintf("stayed Synced, no new operation, same generation: %s", strings.Join(names, ", ")), time.Since(start).Round(time.Second).String())
}

// generatedState is what the operator generated in a namespace: each object's uid and
// resourceVersion, keyed by kind and name.
func generatedState(namespace string) map[v1alpha1.ObjectReference]string {
	GinkgoHelper()
	objs, err := testenv.Generated(ctx, k8s, namespace)
	Expect(err).NotTo(HaveOccurred())
	out := map[v1alpha1.ObjectReference]string{}
	for ref, obj := range objs {
		out[ref] = string(obj.GetUID()) + "@" + obj.GetResourceVersion()
	}
	return out
}

func commit(message string, files map[string]string) string {
	GinkgoHelper()
	sha, err := repo.commit(message, files)
	Expect(err).NotTo(HaveOccurred())
	return sha
}

var _ = Describe("A real Argo CD syncing ServiceGraphs from git", Ordered, func() {
	var shopUIDs map[v1alpha1.ObjectReference]string

	It("shows a graph synced before Istio is installed as Progressing with the operator's message, and Healthy once Istio's CRDs are", func() {
		commit("a graph in a cluster without Istio", map[string]string{"mesh-later/servicegraph.yaml": `apiVersion: policy.servicegraph.io/v1alpha1
kind: ServiceGraph
metadata:
  name: mesh
spec:
  services: [{name: web}, {name: api}]
  edges: ["web->api:8080"]
`})
		applyYAML(applicationYAML("mesh-later", "mesh-later", "mesh-later", appOptions{}))
		eventuallyApp("mesh-later", 60*time.Second, func(g Gomega, app *application) {
			expectSynced(g, app, "")
		})
		AddReportEntry("Argo CD processes started → first Application Synced", time.Since(argo.StartedAt).Round(10*time.Millisecond).String())
		// A change of the health message alone (Progressing "waiting for the operator" →
		// Progressing "waiting for Istio") triggers no refresh: Argo CD v3 ignores status-only
		// updates unless the health status changes, so the message shows at the next periodic
		// reconciliation (--app-resync: 5 s here; timeout.reconciliation, 120 s by default).
		app := eventuallyApp("mesh-later", 60*time.Second, func(g Gomega, app *application) {
			expectSynced(g, app, "")
			g.Expect(app.Status.Health.Status).To(Equal("Progressing"))
			expectOperatorHealth(g, app, "mesh-later", "mesh", "Progressing")
		})
		Expect(app.resource("ServiceGraph", "mesh-later", "mesh").Health.Message).To(HavePrefix(
			"IstioNotInstalled: NetworkPolicies applied; waiting for Istio (security.istio.io/v1) to be installed"))
		expectOnlyArgoCDWroteSpec("mesh-later", "mesh", 1)

		By("installing Istio's CRDs: the operator finishes the graph and Argo CD turns it Healthy")
		istio, err := testenv.IstioCRDs()
		Expect(err).NotTo(HaveOccurred())
		kubectl("apply", "--server-side", "-f", istio)
		eventuallyApp("mesh-later", 60*time.Second, func(g Gomega, app *application) {
			expectSynced(g, app, "")
			g.Expect(app.Status.Health.Status).To(Equal("Healthy"))
			expectOperatorHealth(g, app, "mesh-later", "mesh", "Healthy")
		})
	})

	It("syncs a namespace-less graph from git to Synced and Healthy, with the operator's message", func() {
		commit("the shop's graph", map[string]string{"shop/servicegraph.yaml": shopGraph(shopEdges...)})
		created := time.Now()
		// The test control plane runs no garbage collector (no kube-controller-manager): Argo CD's
		// default foreground deletion of a pruned graph would wait on it forever.
		applyYAML(applicationYAML("shop", "shop", "shop", appOptions{syncOptions: []string{"PrunePropagationPolicy=background"}}))
		app := eventuallyApp("shop", 60*time.Second, func(g Gomega, app *application) {
			expectSynced(g, app, "")
			g.Expect(app.Status.Health.Status).To(Equal("Healthy"))
			expectOperatorHealth(g, app, "shop", "shop", "Healthy")
		})
		AddReportEntry("Application created → Synced + Healthy", time.Since(created).Round(10*time.Millisecond).String())
		expectOnlyArgoCDWroteSpec("shop", "shop", 1)
		Expect(app.resource("ServiceGraph", "shop", "shop").Health.Message).To(Equal("10 objects applied for 3 services and 2 edges"))
		Expect(app.Status.OperationState.Phase).To(Equal("Succeeded"))
	})

	It("draws every generated object under the ServiceGraph in the resource tree, and tracks, prunes or diffs none of them", func() {
		sg, err := getSG("shop", "shop")
		Expect(err).NotTo(HaveOccurred())
		Expect(sg.Status.GeneratedObjects).To(HaveLen(10))

		var tree *applicationTree
		Eventually(func(g Gomega) {
			tree, err = argo.resourceTree("shop")
			g.Expect(err).NotTo(HaveOccurred())
			under := map[v1alpha1.ObjectReference]bool{}
			for _, n := range tree.Nodes {
				for _, p := range n.ParentRefs {
					if p.Kind == "ServiceGraph" && p.Name == "shop" && p.UID == string(sg.UID) {
						under[v1alpha1.ObjectReference{Group: n.Group, Kind: n.Kind, Name: n.Name}] = true
					}
				}
			}
			for _, ref := range sg.Status.GeneratedObjects {
				g.Expect(under).To(HaveKey(ref), "not under the ServiceGraph in the tree")
			}
			g.Expect(under).To(HaveLen(len(sg.Status.GeneratedObjects)))
		}).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())

		By("only the ServiceGraph is the Application's own resource: its children are neither OutOfSync nor to be pruned")
		app, err := getApp("shop")
		Expect(err).NotTo(HaveOccurred())
		Expect(app.Status.Resources).To(HaveLen(1), app.summary())
		Expect(app.Status.Resources[0]).To(MatchFieldsLike("ServiceGraph", "shop", "shop"))
		Expect(app.Status.Resources[0].Status).To(Equal("Synced"))
		Expect(app.Status.Resources[0].RequiresPruning).To(BeFalse())

		By("the generated objects carry a controller owner reference and none of Argo CD's tracking marks")
		objs, err := testenv.Generated(ctx, k8s, "shop")
		Expect(err).NotTo(HaveOccurred())
		Expect(objs).To(HaveLen(10))
		for ref, obj := range objs {
			owner := metav1.GetControllerOf(obj)
			Expect(owner).NotTo(BeNil(), "%v", ref)
			Expect(owner.UID).To(Equal(sg.UID), "%v", ref)
			Expect(obj.GetAnnotations()).NotTo(HaveKey("argocd.argoproj.io/tracking-id"), "%v", ref)
			Expect(obj.GetLabels()).NotTo(HaveKey("app.kubernetes.io/instance"), "%v", ref)
		}
		Expect(sg.GetAnnotations()).To(HaveKey("argocd.argoproj.io/tracking-id"), "Argo CD tracks the graph itself")
		shopUIDs = map[v1alpha1.ObjectReference]string{}
		for ref, obj := range objs {
			shopUIDs[ref] = string(obj.GetUID())
		}
	})

	It("stays Synced after the syncs: no new operation, no change to the graphs' specs", func() {
		staysInSync(30*time.Second, "shop", "mesh-later")
	})

	It("turns Degraded with the operator's message on a commit with an invalid edge, keeps the last good policies, and Healthy on the fix", func() {
		before := generatedState("shop")
		Expect(before).To(HaveLen(10))
		bad := commit("api calls a service that does not exist", map[string]string{"shop/servicegraph.yaml": shopGraph(append(shopEdges, "api->ghost:80")...)})
		refresh("shop")
		app := eventuallyApp("shop", 30*time.Second, func(g Gomega, app *application) {
			expectSynced(g, app, bad)
			g.Expect(app.Status.Health.Status).To(Equal("Degraded"))
			expectOperatorHealth(g, app, "shop", "shop", "Degraded")
		})
		Expect(app.resource("ServiceGraph", "shop", "shop").Health.Message).To(And(
			HavePrefix("InvalidSpec: "), ContainSubstring(`edge "api->ghost:80": service "ghost" is not declared in spec.services`)))
		Expect(generatedState("shop")).To(Equal(before), "the policies of the last good spec stay, untouched")
		staysInSync(30*time.Second, "shop")
		Expect(generatedState("shop")).To(Equal(before), "the policies of the last good spec stay, untouched")

		fix := commit("drop the edge to ghost", map[string]string{"shop/servicegraph.yaml": shopGraph(shopEdges...)})
		refresh("shop")
		eventuallyApp("shop", 30*time.Second, func(g Gomega, app *application) {
			expectSynced(g, app, fix)
			g.Expect(app.Status.Health.Status).To(Equal("Healthy"))
			expectOperatorHealth(g, app, "shop", "shop", "Healthy")
		})
		staysInSync(30*time.Second, "shop")
		Expect(uidsOf(generatedState("shop"))).To(Equal(shopUIDs), "Argo CD pruned or replaced a generated object")
	})

	It("self-heals an out-of-band change to spec.edges", func() {
		sg, err := getSG("shop", "shop")
		Expect(err).NotTo(HaveOccurred())
		gen := sg.Generation
		app, err := getApp("shop")
		Expect(err).NotTo(HaveOccurred())
		op := app.operationStarted()

		before := generatedState("shop")
		// Someone drops the edge to the database by hand: the operator obeys the live spec (and
		// removes the database's policies) until Argo CD puts git's spec back.
		edited := time.Now()
		kubectl("patch", "servicegraph", "shop", "-n", "shop", "--type=merge", "-p", `{"spec":{"edges":["web->api:8080"]}}`)
		Eventually(func(g Gomega) {
			sg, err := getSG("shop", "shop")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(sg.Spec.Edges).To(Equal(shopEdges))
		}).WithTimeout(30 * time.Second).WithPolling(20 * time.Millisecond).Should(Succeed())
		AddReportEntry("edit of spec.edges by hand → git's spec back (self-heal)", time.Since(edited).Round(10*time.Millisecond).String())
		eventuallyApp("shop", 30*time.Second, func(g Gomega, app *application) {
			g.Expect(app.operationStarted()).NotTo(Equal(op), "no self-heal sync yet")
			expectSynced(g, app, "")
			g.Expect(app.Status.Health.Status).To(Equal("Healthy"))
			sg, err := getSG("shop", "shop")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(sg.Spec.Edges).To(HaveLen(len(shopEdges)))
			g.Expect(sg.Generation).To(Equal(gen+2), "one generation for the edit, one for the heal")
			expectOperatorHealth(g, app, "shop", "shop", "Healthy")
		})
		Eventually(func() []v1alpha1.ObjectReference { return testenv.Refs(generatedState("shop")) }).
			WithTimeout(10*time.Second).Should(Equal(testenv.Refs(before)), "the operator restores git's policies")
		staysInSync(30*time.Second, "shop")
	})

	It("shows a graph stuck on a Conflict as Degraded with the operator's message, and prunes it when git drops it", func() {
		before := uidsOf(generatedState("shop"))
		commit("a second graph in the shop's namespace", map[string]string{"shop/other.yaml": `apiVersion: policy.servicegraph.io/v1alpha1
kind: ServiceGraph
metadata:
  name: other
spec:
  services: [{name: web}, {name: api}]
  edges: ["web->api:8080"]
`})
		refresh("shop")
		app := eventuallyApp("shop", 30*time.Second, func(g Gomega, app *application) {
			expectSynced(g, app, "")
			g.Expect(app.Status.Health.Status).To(Equal("Degraded"))
			expectOperatorHealth(g, app, "shop", "other", "Degraded")
			expectOperatorHealth(g, app, "shop", "shop", "Healthy")
		})
		Expect(app.resource("ServiceGraph", "shop", "other").Health.Message).To(HavePrefix(`Conflict: ServiceGraph "shop" is the active graph`))

		commit("one graph per namespace", map[string]string{"shop/other.yaml": ""})
		refresh("shop")
		eventuallyApp("shop", 30*time.Second, func(g Gomega, app *application) {
			expectSynced(g, app, "")
			g.Expect(app.Status.Health.Status).To(Equal("Healthy"))
			g.Expect(app.Status.Resources).To(HaveLen(1))
			_, err := getSG("shop", "other")
			g.Expect(err).To(HaveOccurred(), "the graph git dropped is pruned")
		})
		Expect(uidsOf(generatedState("shop"))).To(Equal(before), "the active graph's policies are untouched")
	})

	It("rolls examples/gitops out with the ApplicationSet of docs/gitops.md: dev first, then staging, then prod", func() {
		Expect(repo.copyTree(filepath.Join(testenv.Root(), "examples", "gitops"), filepath.Join("examples", "gitops"))).To(Succeed())
		first := commit("the GitOps example", nil)
		envs := []string{"dev", "staging", "prod"}
		appOf := func(env string) string { return "shop-servicegraph-" + env }

		By("applying the documented ApplicationSet, pointed at the suite's repository and cluster")
		applyYAML(documentedApplicationSet())
		for _, env := range envs {
			eventuallyApp(appOf(env), 90*time.Second, func(g Gomega, app *application) {
				expectSynced(g, app, first)
				g.Expect(app.Status.Health.Status).To(Equal("Healthy"))
				expectOperatorHealth(g, app, "shop-"+env, "shop", "Healthy")
			})
			expectOverlay(env)
		}

		By("pinning staging and prod to the current commit, then changing the base")
		for i := range envs[1:] {
			kubectl("patch", "applicationset", "shop-servicegraphs", "-n", argocdNamespace, "--type=json", "-p",
				fmt.Sprintf(`[{"op":"replace","path":"/spec/generators/0/list/elements/%d/revision","value":%q}]`, i+1, first))
		}
		for _, env := range envs[1:] {
			eventuallyApp(appOf(env), 30*time.Second, func(g Gomega, app *application) {
				g.Expect(app.Spec.Source.TargetRevision).To(Equal(first))
				expectSynced(g, app, "")
			})
		}
		base, err := os.ReadFile(filepath.Join(repo.dir, "examples", "gitops", "base", "shop.yaml"))
		Expect(err).NotTo(HaveOccurred())
		changed := strings.Replace(string(base), "  - api->cache:6379\n", "  - api->cache:6379\n  - web->cache:6379\n", 1)
		Expect(changed).NotTo(Equal(string(base)), "the base's edges moved: update the rollout spec")
		second := commit("web reads the cache", map[string]string{"examples/gitops/base/shop.yaml": changed})

		for i, env := range envs {
			if i > 0 {
				By("promoting " + env + " once " + envs[i-1] + " is Healthy")
				kubectl("patch", "applicationset", "shop-servicegraphs", "-n", argocdNamespace, "--type=json", "-p",
					fmt.Sprintf(`[{"op":"replace","path":"/spec/generators/0/list/elements/%d/revision","value":"main"}]`, i))
			}
			refresh(appOf(env))
			eventuallyApp(appOf(env), 60*time.Second, func(g Gomega, app *application) {
				expectSynced(g, app, second)
				g.Expect(app.Status.Health.Status).To(Equal("Healthy"))
				expectOperatorHealth(g, app, "shop-"+env, "shop", "Healthy")
			})
			for j, later := range envs {
				sg, err := getSG("shop-"+later, "shop")
				Expect(err).NotTo(HaveOccurred())
				if j <= i {
					Expect(sg.Spec.Edges).To(ContainElement("web->cache:6379"), later)
				} else {
					Expect(sg.Spec.Edges).NotTo(ContainElement("web->cache:6379"), later+" moved before its turn")
					app, err := getApp(appOf(later))
					Expect(err).NotTo(HaveOccurred())
					Expect(app.Status.Sync.Revision).To(Equal(first), later)
				}
			}
		}
		for _, env := range envs {
			expectOverlay(env)
		}
		staysInSync(30*time.Second, appOf("dev"), appOf("staging"), appOf("prod"))
	})

	listDefaultSpecs()

	// Last: it stops the operator.
	fixtureAgreementSpecs()
})

func uidsOf(state map[v1alpha1.ObjectReference]string) map[v1alpha1.ObjectReference]string {
	out := map[v1alpha1.ObjectReference]string{}
	for ref, s := range state {
		out[ref] = strings.SplitN(s, "@", 2)[0]
	}
	return out
}

// MatchFieldsLike matches a resource status by kind, namespace and name.
func MatchFieldsLike(kind, namespace, name string) OmegaMatcher {
	return WithTransform(func(r resourceStatus) string { return r.Kind + " " + r.Namespace + "/" + r.Name },
		Equal(kind+" "+namespace+"/"+name))
}

// expectOverlay checks that the live graph of an environment is its overlay as kustomize renders
// it from the repository at the commit the Application synced (the head of main).
func expectOverlay(env string) {
	GinkgoHelper()
	app, err := getApp("shop-servicegraph-" + env)
	Expect(err).NotTo(HaveOccurred())
	head, err := repo.git("rev-parse", "HEAD")
	Expect(err).NotTo(HaveOccurred())
	Expect(app.Status.Sync.Revision).To(Equal(head))
	out := kubectl("kustomize", filepath.Join(repo.dir, "examples", "gitops", "overlays", env))
	var want v1alpha1.ServiceGraph
	Expect(yaml.Unmarshal([]byte(out), &want)).To(Succeed())
	sg, err := getSG("shop-"+env, "shop")
	Expect(err).NotTo(HaveOccurred())
	Expect(sg.Namespace).To(Equal(want.Namespace))
	Expect(sg.Spec).To(Equal(want.Spec), "the live graph of %s is not its overlay", env)
	Expect(specWriters(Default, "shop-"+env, "shop")).To(And(Not(BeEmpty()), HaveEach("argocd-controller")),
		"only Argo CD writes the spec of shop-%s/shop", env)
	Expect(testenv.ReadyAtCurrentGeneration(sg)).To(BeTrue())
}

// documentedApplicationSet is the ApplicationSet of docs/gitops.md, verbatim but for the
// repository URL and the cluster (the suite's git repository and test control plane).
func documentedApplicationSet() string {
	GinkgoHelper()
	doc, err := os.ReadFile(filepath.Join(testenv.Root(), "docs", "gitops.md"))
	Expect(err).NotTo(HaveOccurred())
	for _, block := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
		if !strings.Contains(block[1], "kind: ApplicationSet") {
			continue
		}
		set := block[1]
		Expect(set).To(ContainSubstring("https://git.example.com/platform/policies.git"))
		Expect(set).To(ContainSubstring("https://kubernetes.default.svc"))
		set = strings.ReplaceAll(set, "https://git.example.com/platform/policies.git", repo.URL())
		return strings.ReplaceAll(set, "https://kubernetes.default.svc", serverURL)
	}
	Fail("docs/gitops.md shows no ApplicationSet")
	return ""
}
