package admission

import (
	"encoding/json"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/cel/openapi/resolver"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/restmapper"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

var _ = Describe("The policies of config/admission", func() {
	// kube-controller-manager type-checks policies and writes status.typeChecking; the test
	// control plane runs none, so the spec runs the same checker against the live schemas.
	It("type-check against the schemas of the kinds they match, without a warning", func() {
		dc, err := discovery.NewDiscoveryClientForConfig(cluster.Config)
		Expect(err).NotTo(HaveOccurred())
		groups, err := restmapper.GetAPIGroupResources(dc)
		Expect(err).NotTo(HaveOccurred())
		checker := validating.TypeChecker{
			SchemaResolver: &resolver.ClientDiscoveryResolver{Discovery: dc},
			RestMapper:     restmapper.NewDiscoveryRESTMapper(groups),
		}

		By("resolving the schema of every kind matched, else the checker skips the kind silently")
		for _, gvk := range []schema.GroupVersionKind{
			{Version: "v1", Kind: "ConfigMap"},
			{Group: "networking.k8s.io", Version: "v1", Kind: "NetworkPolicy"},
			{Group: "security.istio.io", Version: "v1", Kind: "AuthorizationPolicy"},
			{Group: "security.istio.io", Version: "v1beta1", Kind: "AuthorizationPolicy"},
			{Group: "security.istio.io", Version: "v1", Kind: "PeerAuthentication"},
			{Group: "security.istio.io", Version: "v1beta1", Kind: "PeerAuthentication"},
		} {
			_, err := checker.SchemaResolver.ResolveSchema(gvk)
			Expect(err).NotTo(HaveOccurred(), gvk.String())
		}

		live := map[string]*admissionregistrationv1.ValidatingAdmissionPolicy{}
		for _, name := range policies {
			vap := &admissionregistrationv1.ValidatingAdmissionPolicy{}
			Expect(json.Unmarshal([]byte(kubectl(admin, "get", "validatingadmissionpolicy", name, "-o", "json")), vap)).To(Succeed())
			Expect(checker.Check(withVariablesChecked(vap))).To(BeEmpty(), name)
			live[name] = vap
		}

		By("finding a misspelt field, in a validation and in a variable: the check above can fail")
		typo := live["servicegraph-unsafe-networkpolicies"].DeepCopy()
		typo.Spec.Validations[0].Expression = strings.ReplaceAll(typo.Spec.Validations[0].Expression, "object.spec.ingress", "object.spec.ingres")
		Expect(checker.Check(typo)).To(ContainElement(HaveField("Warning", ContainSubstring("undefined field 'ingres'"))))
		typo = live["servicegraph-unsafe-networkpolicies"].DeepCopy()
		typo.Spec.Variables[0].Expression = strings.ReplaceAll(typo.Spec.Variables[0].Expression, "object.metadata.annotations", "object.metadata.annotation")
		Expect(checker.Check(typo)).To(BeEmpty(), "the API server's checker skips spec.variables")
		Expect(checker.Check(withVariablesChecked(typo))).To(ContainElement(HaveField("Warning", ContainSubstring("undefined field 'annotation'"))))
	})
})

// withVariablesChecked returns a copy of a policy with each variable's expression added as a
// validation: the type checker reports errors in validations and message expressions only.
func withVariablesChecked(vap *admissionregistrationv1.ValidatingAdmissionPolicy) *admissionregistrationv1.ValidatingAdmissionPolicy {
	out := vap.DeepCopy()
	for _, v := range vap.Spec.Variables {
		out.Spec.Validations = append(out.Spec.Validations, admissionregistrationv1.Validation{Expression: v.Expression})
	}
	return out
}
