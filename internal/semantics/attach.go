package semantics

import (
	"cmp"
	"slices"

	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Workload is what Istio's policy selection reads of a pod.
type Workload struct {
	Namespace string
	Labels    map[string]string
}

// selected is Istio's selector test (model.WorkloadPolicyMatcher.isSelected): every label of the
// selector on the workload; no selector, or an empty one, selects every workload.
func selected(sel *typev1beta1.WorkloadSelector, l map[string]string) bool {
	for k, v := range sel.GetMatchLabels() {
		if got, ok := l[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// TargetsRefs tells whether a policy attaches with targetRef(s) instead of a selector: to a
// gateway or waypoint, never to a sidecar.
func TargetsRefs(ap *securityv1.AuthorizationPolicy) bool {
	return ap.Spec.GetTargetRef() != nil || len(ap.Spec.GetTargetRefs()) > 0
}

// NamespaceWide tells whether a policy without targetRefs applies to every workload of its
// namespace (every workload of the mesh from the root namespace).
func NamespaceWide(sel *typev1beta1.WorkloadSelector) bool {
	return len(sel.GetMatchLabels()) == 0
}

// AuthorizationPolicyApplies tells whether a workload's sidecar enforces a policy
// (model.ShouldAttachPolicy for a workload that is not a gateway): a policy of its namespace or of
// the root namespace, without targetRefs, whose selector selects it. Dry-run policies apply too,
// as shadow rules that enforce nothing (see DryRun).
func AuthorizationPolicyApplies(ap *securityv1.AuthorizationPolicy, w Workload, rootNamespace string) bool {
	return (ap.Namespace == w.Namespace || ap.Namespace == rootNamespace) && !TargetsRefs(ap) && selected(ap.Spec.GetSelector(), w.Labels)
}

// Enforced tells whether a policy's rules are enforced: not a dry run. A dry-run CUSTOM policy is
// the exception Istio's builder makes: its provider is still asked (builder.go).
func Enforced(ap *securityv1.AuthorizationPolicy) bool {
	return !DryRun(ap.Annotations) || ap.Spec.GetAction() == securityv1beta1.AuthorizationPolicy_CUSTOM
}

// Aged is an object with a creation time: a policy.
type Aged interface {
	GetCreationTimestamp() metav1.Time
	GetName() string
	GetNamespace() string
}

// Oldest orders policies as Istio does when the oldest one wins (model.configCompareByCreationTime):
// by creation time, then name, then namespace.
func Oldest[T Aged](a, b T) int {
	ta, tb := a.GetCreationTimestamp(), b.GetCreationTimestamp()
	return cmp.Or(ta.Compare(tb.Time), cmp.Compare(a.GetName(), b.GetName()), cmp.Compare(a.GetNamespace(), b.GetNamespace()))
}

// MTLS is the mutual-TLS mode Istio puts on a workload's port, and the policy that set it (nil
// for Istio's default, PERMISSIVE).
type MTLS struct {
	Mode securityv1beta1.PeerAuthentication_MutualTLS_Mode
	By   *securityv1.PeerAuthentication
	// Port is true when the workload policy's portLevelMtls decided.
	Port bool
}

// EffectiveMTLS composes the PeerAuthentications as Istio does (authn.ComposePeerAuthentication):
// the mesh's (root namespace, no selector), the namespace's (no selector) and the workload's
// (a selector it matches, outside the root namespace), each the oldest of its scope; a mode UNSET
// inherits the wider scope's; the workload policy's portLevelMtls decides its ports.
func EffectiveMTLS(pas []*securityv1.PeerAuthentication, w Workload, port int32, rootNamespace string) MTLS {
	var mesh, namespace, workload *securityv1.PeerAuthentication
	oldest := func(cur, pa *securityv1.PeerAuthentication) *securityv1.PeerAuthentication {
		if cur == nil || Oldest(pa, cur) < 0 {
			return pa
		}
		return cur
	}
	for _, pa := range pas {
		if pa.Namespace != w.Namespace && pa.Namespace != rootNamespace || !selected(pa.Spec.GetSelector(), w.Labels) {
			continue
		}
		switch {
		case NamespaceWide(pa.Spec.GetSelector()) && pa.Namespace == rootNamespace:
			mesh = oldest(mesh, pa)
		case NamespaceWide(pa.Spec.GetSelector()):
			namespace = oldest(namespace, pa)
		case pa.Namespace != rootNamespace:
			workload = oldest(workload, pa)
		}
	}
	out := MTLS{Mode: securityv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE}
	for _, pa := range []*securityv1.PeerAuthentication{mesh, namespace, workload} {
		if pa == nil {
			continue
		}
		if m := pa.Spec.GetMtls().GetMode(); m != securityv1beta1.PeerAuthentication_MutualTLS_UNSET {
			out = MTLS{Mode: m, By: pa}
		}
	}
	if workload != nil {
		if pl, ok := workload.Spec.GetPortLevelMtls()[uint32(port)]; ok && pl.GetMode() != securityv1beta1.PeerAuthentication_MutualTLS_UNSET {
			out = MTLS{Mode: pl.GetMode(), By: workload, Port: true}
		}
	}
	return out
}

// SortedByAge returns policies oldest first, as Istio lists them.
func SortedByAge[T Aged](in []T) []T {
	out := slices.Clone(in)
	slices.SortStableFunc(out, Oldest[T])
	return out
}

// AppliesAtWaypoint tells whether a waypoint enforces a policy for traffic to a destination's
// Services (model.ShouldAttachPolicy for a waypoint): one whose targetRefs name one of the
// Services (Kubernetes Services of the policy's namespace), the waypoint's Gateway (of the policy's
// namespace), or, from the root namespace, the GatewayClass istio-waypoint. A waypoint never uses
// a selector or namespace-wide policy.
func AppliesAtWaypoint(ap *securityv1.AuthorizationPolicy, waypoint, waypointNamespace string, services []string, servicesNamespace, rootNamespace string) bool {
	refs := ap.Spec.GetTargetRefs()
	if len(refs) == 0 && ap.Spec.GetTargetRef() != nil {
		refs = []*typev1beta1.PolicyTargetReference{ap.Spec.GetTargetRef()}
	}
	for _, ref := range refs {
		group, kind, name := ref.GetGroup(), ref.GetKind(), ref.GetName()
		switch {
		case group == "" && kind == "Service" && ap.Namespace == servicesNamespace && slices.Contains(services, name):
			return true
		case group == "gateway.networking.k8s.io" && kind == "Gateway" && ap.Namespace == waypointNamespace && name == waypoint &&
			(ref.GetNamespace() == "" || ref.GetNamespace() == waypointNamespace):
			return true
		case group == "gateway.networking.k8s.io" && kind == "GatewayClass" && ap.Namespace == rootNamespace && name == WaypointClass:
			return true
		}
	}
	return false
}
