package reliability

import (
	"fmt"
	"math/rand/v2"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// stormDuration is how long the drift storm blows. The issue says 30 s; 12 s makes about a hundred
// drift events, plenty to show the pattern, within the package's time budget.
const stormDuration = 12 * time.Second

// drift changes one generated object the way a careless or hostile person would: it opens it up.
// It reports whether the change only set fields the operator owns (one apply takes them back) or
// added a field the operator's apply does not set: apply cannot remove another manager's field,
// so the operator then also replaces the spec (apply, then update: two writes).
func drift(obj client.Object) (addsField bool) {
	switch o := obj.(type) {
	case *networkingv1.NetworkPolicy:
		switch {
		case len(o.Spec.Ingress) > 0:
			o.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{}} // allow all ingress
		case len(o.Spec.Egress) > 0:
			o.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{}} // allow all egress
		default:
			o.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress} // default-deny no longer denies egress
		}
	case *securityv1.AuthorizationPolicy:
		addsField = len(o.Spec.Rules) == 0         // the allow-nothing policy has an empty spec
		o.Spec.Rules = []*securityv1beta1.Rule{{}} // allow everyone
	case *securityv1.PeerAuthentication:
		o.Spec.Mtls.Mode = securityv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE // accept plain text
	}
	return addsField
}

var _ = Describe("A drift storm", func() {
	It("reverts every deletion and edit with at most one write per drift event, and ends in the exact state", func() {
		ns := newNamespace("drift")
		cleanupGraphs(ns)
		writes := &testenv.RequestLog{}
		startManager(managerOptions{namespaces: []string{ns}, writes: writes})
		sg := ringGraph(ns, "storm", 20, 3, -1, -1) // 20 services, 60 edges, 45 objects
		Expect(k8s.Create(ctx, sg)).To(Succeed())
		waitExactly(sg, timeout)

		rng := rand.New(rand.NewPCG(4, 30))
		mark := writes.Mark()
		var deletes, edits, additions, skipped int
		start := time.Now()
		for time.Since(start) < stormDuration {
			objs := generated(Default, ns)
			obj := objs[refs(objs)[rng.IntN(len(objs))]]
			if rng.IntN(2) == 0 {
				uid := obj.GetUID()
				err := k8s.Delete(ctx, obj, client.Preconditions{UID: &uid})
				if err == nil {
					deletes++
				} else {
					Expect(apierrors.IsNotFound(err) || apierrors.IsConflict(err)).To(BeTrue(), "deleting %s: %v", obj.GetName(), err)
					skipped++
				}
			} else {
				adds := drift(obj)
				// An update at the resourceVersion just read: it fails when the operator got there first.
				err := k8s.Update(ctx, obj, client.FieldOwner("drift-storm"))
				switch {
				case err == nil && adds:
					additions++
				case err == nil:
					edits++
				default:
					Expect(apierrors.IsNotFound(err) || apierrors.IsConflict(err)).To(BeTrue(), "editing %s: %v", obj.GetName(), err)
					skipped++
				}
			}
			time.Sleep(time.Duration(50+rng.IntN(100)) * time.Millisecond) // the storm's pace
		}
		waitExactly(sg, timeout)
		settled := time.Since(start) - stormDuration

		var objectWrites, statusWrites int
		for _, w := range writes.Since(mark, ns) {
			switch {
			case w.Resource == "servicegraphs" && w.Subresource == "status":
				statusWrites++
			default:
				objectWrites++
			}
		}
		AddReportEntry("drift storm", fmt.Sprintf("%v: %d deletions, %d edits of owned fields, %d added fields (%d attempts lost a race), all reverted %v after the storm; the manager wrote %d objects and %d statuses",
			stormDuration, deletes, edits, additions, skipped, settled.Round(time.Millisecond), objectWrites, statusWrites))
		Expect(deletes + edits + additions).To(BeNumerically(">=", 50))
		// No write amplification: one write per drift event at most (an apply that re-creates or
		// restores), two for an added field (apply, then update); a storm quicker than the manager
		// gets several events merged into one write.
		Expect(objectWrites).To(BeNumerically("<=", deletes+edits+2*additions))
		// Status is written only when it changes, and a drift correction does not change it. (An
		// update conflict while replacing a spec with an added field would write two: the retry
		// reported, then cleared.)
		Expect(statusWrites).To(BeNumerically("<=", 2))
	})
})
