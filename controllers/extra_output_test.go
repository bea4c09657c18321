package controllers_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/controllers"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
)

// callerLists is an output the operator does not ship, declared only here: a ConfigMap per local
// service that lists its callers. The reconciler applies, counts, reports, watches, restores and
// prunes it without a line of its own knowing the kind: adding a kind is one declaration.
var callerLists = &compiler.Output{
	GVK:       corev1.SchemeGroupVersion.WithKind("ConfigMap"),
	Layer:     &compiler.Layer{Name: "core", Reason: "CoreNotServed", Missing: "core/v1 is not served"},
	Condition: "CallerListsReady",
	Emit: func(c *compiler.Compilation) []compiler.Emitted {
		var out []compiler.Emitted
		for _, svc := range c.LocalServices() {
			var callers []string
			for _, e := range c.Graph().Edges {
				if e.To == svc.Name && !slices.Contains(callers, e.From) {
					callers = append(callers, e.From)
				}
			}
			cm := &corev1.ConfigMap{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
				ObjectMeta: c.Meta(c.ServiceObjectName(svc.Name), svc.Name),
				Data:       map[string]string{"callers": strings.Join(callers, ",")},
			}
			out = append(out, compiler.Emitted{Object: cm, Phase: compiler.PhaseAllow})
		}
		return out
	},
	SpecEqual: func(want, have compiler.Object) bool {
		w, ok1 := want.(*corev1.ConfigMap)
		h, ok2 := have.(*corev1.ConfigMap)
		return ok1 && ok2 && maps.Equal(w.Data, h.Data)
	},
	Describe: func(s compiler.Summary) string { return fmt.Sprintf("%d caller lists written", s.Count) },
}

var _ = Describe("An output registered only in a test", Ordered, func() {
	var (
		ctx = context.Background()
		c   client.Client
	)
	BeforeAll(func() {
		c, _ = startOwnControlPlane(true, func(conf *controllers.Config) {
			conf.Options.Outputs = compiler.Builtin().With(callerLists)
		})
	})

	callers := func(ns, service string) func() string {
		return func() string {
			var cm corev1.ConfigMap
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-svc-" + service}, &cm); err != nil {
				return err.Error()
			}
			return cm.Data["callers"]
		}
	}

	It("is applied, counted, reported, restored and pruned like the built-in kinds", func() {
		ns := newNamespace(ctx, c)
		Expect(c.Create(ctx, seedGraph(ns))).To(Succeed())
		sg := waitGraph(ctx, c, ns, "shop", readyAtCurrentGeneration)
		Expect(callers(ns, "api")()).To(Equal("web"))
		Expect(callers(ns, "database")()).To(Equal("api"))
		Expect(sg.Status.Counts).To(ContainElement(v1alpha1.KindCount{Kind: "ConfigMap", Count: 3}))
		Expect(sg.Status.GeneratedObjects).To(ContainElement(v1alpha1.ObjectReference{Kind: "ConfigMap", Name: "shop-svc-web"}))
		Expect(condition(sg, "CallerListsReady").Message).To(Equal("3 caller lists written"))
		Expect(condition(sg, v1alpha1.ConditionReady).Message).To(Equal("13 objects applied for 3 services and 2 edges"))

		var cm corev1.ConfigMap
		Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-svc-api"}, &cm)).To(Succeed())
		Expect(metav1.IsControlledBy(&cm, sg)).To(BeTrue())
		cm.Data["callers"] = "intruder"
		Expect(c.Update(ctx, &cm)).To(Succeed())
		Eventually(callers(ns, "api"), timeout, poll).Should(Equal("web"), "drift restored")

		sg = getGraph(ctx, c, ns, "shop")
		sg.Spec.Edges = []string{"web→api:8080"}
		Expect(c.Update(ctx, sg)).To(Succeed())
		Eventually(callers(ns, "database"), timeout, poll).Should(ContainSubstring("not found"), "pruned with its last edge")
		sg = waitGraph(ctx, c, ns, "shop", readyAtCurrentGeneration)
		Expect(sg.Status.Counts).To(ContainElement(v1alpha1.KindCount{Kind: "ConfigMap", Count: 2}))
	})
})
