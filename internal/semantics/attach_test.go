package semantics

import (
	"testing"
	"time"

	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func peerAuth(name, ns string, age int, sel map[string]string, mode securityv1beta1.PeerAuthentication_MutualTLS_Mode, ports map[uint32]securityv1beta1.PeerAuthentication_MutualTLS_Mode) *securityv1.PeerAuthentication {
	pa := &securityv1.PeerAuthentication{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, CreationTimestamp: metav1.NewTime(t0.Add(time.Duration(age) * time.Minute))}}
	if sel != nil {
		pa.Spec.Selector = &typev1beta1.WorkloadSelector{MatchLabels: sel}
	}
	pa.Spec.Mtls = &securityv1beta1.PeerAuthentication_MutualTLS{Mode: mode}
	for p, m := range ports {
		if pa.Spec.PortLevelMtls == nil {
			pa.Spec.PortLevelMtls = map[uint32]*securityv1beta1.PeerAuthentication_MutualTLS{}
		}
		pa.Spec.PortLevelMtls[p] = &securityv1beta1.PeerAuthentication_MutualTLS{Mode: m}
	}
	return pa
}

const (
	unset      = securityv1beta1.PeerAuthentication_MutualTLS_UNSET
	strict     = securityv1beta1.PeerAuthentication_MutualTLS_STRICT
	permissive = securityv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE
	disable    = securityv1beta1.PeerAuthentication_MutualTLS_DISABLE
)

// authn.ComposePeerAuthentication: the oldest policy of each scope, UNSET inheriting, ports last.
func TestEffectiveMTLS(t *testing.T) {
	api := Workload{Namespace: "shop", Labels: map[string]string{"app": "api"}}
	app := map[string]string{"app": "api"}
	for _, tc := range []struct {
		name   string
		pas    []*securityv1.PeerAuthentication
		port   int32
		mode   securityv1beta1.PeerAuthentication_MutualTLS_Mode
		by     string
		byPort bool
	}{
		{"none: PERMISSIVE", nil, 80, permissive, "", false},
		{"mesh", []*securityv1.PeerAuthentication{peerAuth("m", "istio-system", 0, nil, strict, nil)}, 80, strict, "m", false},
		{"namespace over mesh", []*securityv1.PeerAuthentication{peerAuth("m", "istio-system", 0, nil, strict, nil), peerAuth("n", "shop", 0, nil, permissive, nil)}, 80, permissive, "n", false},
		{"UNSET inherits", []*securityv1.PeerAuthentication{peerAuth("m", "istio-system", 0, nil, strict, nil), peerAuth("n", "shop", 0, nil, unset, nil)}, 80, strict, "m", false},
		{"the oldest namespace policy wins, whatever the order", []*securityv1.PeerAuthentication{peerAuth("young", "shop", 5, nil, disable, nil), peerAuth("old", "shop", 1, nil, strict, nil)}, 80, strict, "old", false},
		{"same age: by name", []*securityv1.PeerAuthentication{peerAuth("b", "shop", 1, nil, disable, nil), peerAuth("a", "shop", 1, nil, strict, nil)}, 80, strict, "a", false},
		{"the oldest workload policy wins", []*securityv1.PeerAuthentication{peerAuth("w2", "shop", 3, app, disable, nil), peerAuth("w1", "shop", 2, app, permissive, nil)}, 80, permissive, "w1", false},
		{"a selector in the root namespace is ignored", []*securityv1.PeerAuthentication{peerAuth("n", "shop", 0, nil, strict, nil), peerAuth("r", "istio-system", 0, app, disable, nil)}, 80, strict, "n", false},
		{"another namespace's policy", []*securityv1.PeerAuthentication{peerAuth("n", "other", 0, nil, disable, nil)}, 80, permissive, "", false},
		{"a port level mode", []*securityv1.PeerAuthentication{peerAuth("n", "shop", 0, nil, strict, nil), peerAuth("w", "shop", 0, app, unset, map[uint32]securityv1beta1.PeerAuthentication_MutualTLS_Mode{9090: disable})}, 9090, disable, "w", true},
		{"another port", []*securityv1.PeerAuthentication{peerAuth("n", "shop", 0, nil, strict, nil), peerAuth("w", "shop", 0, app, unset, map[uint32]securityv1beta1.PeerAuthentication_MutualTLS_Mode{9090: disable})}, 80, strict, "n", false},
		{"a selector it does not match", []*securityv1.PeerAuthentication{peerAuth("w", "shop", 0, map[string]string{"app": "web"}, disable, nil)}, 80, permissive, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := EffectiveMTLS(tc.pas, api, tc.port, DefaultRootNamespace)
			by := ""
			if got.By != nil {
				by = got.By.Name
			}
			if got.Mode != tc.mode || by != tc.by || got.Port != tc.byPort {
				t.Errorf("got %v by %q port %v, want %v by %q port %v", got.Mode, by, got.Port, tc.mode, tc.by, tc.byPort)
			}
		})
	}
}

func TestAuthorizationPolicyApplies(t *testing.T) {
	api := Workload{Namespace: "shop", Labels: map[string]string{"app": "api", "v": "1"}}
	policy := func(ns string, sel map[string]string, target bool) *securityv1.AuthorizationPolicy {
		ap := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: ns}}
		if sel != nil {
			ap.Spec.Selector = &typev1beta1.WorkloadSelector{MatchLabels: sel}
		}
		if target {
			ap.Spec.TargetRefs = []*typev1beta1.PolicyTargetReference{{Kind: "Service", Name: "api"}}
		}
		return ap
	}
	for _, tc := range []struct {
		name string
		ap   *securityv1.AuthorizationPolicy
		want bool
	}{
		{"namespace-wide", policy("shop", nil, false), true},
		{"empty selector", policy("shop", map[string]string{}, false), true},
		{"selector subset", policy("shop", map[string]string{"app": "api"}, false), true},
		{"selector not matching", policy("shop", map[string]string{"app": "web"}, false), false},
		{"root namespace", policy("istio-system", nil, false), true},
		{"root namespace with a selector", policy("istio-system", map[string]string{"v": "1"}, false), true},
		{"another namespace", policy("other", nil, false), false},
		{"targetRefs: not for a sidecar", policy("shop", nil, true), false},
	} {
		if got := AuthorizationPolicyApplies(tc.ap, api, DefaultRootNamespace); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestNetworkPolicyPeers(t *testing.T) {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	web := Peer{Namespace: "shop", Labels: map[string]string{"app": "web"}, IP: "10.0.0.1"}
	mon := Peer{Namespace: "monitoring", Labels: map[string]string{"app": "prometheus"}, NamespaceLabels: map[string]string{"team": "obs"}, IP: "10.0.1.1"}
	out := Peer{IP: "192.0.2.7"}
	sel := func(k, v string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{k: v}}
	}
	for _, tc := range []struct {
		name string
		peer networkingv1.NetworkPolicyPeer
		p    Peer
		want bool
	}{
		{"podSelector: the policy's namespace", networkingv1.NetworkPolicyPeer{PodSelector: sel("app", "web")}, web, true},
		{"podSelector alone: not another namespace", networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{}}, mon, false},
		{"namespaceSelector", networkingv1.NetworkPolicyPeer{NamespaceSelector: sel("team", "obs")}, mon, true},
		{"namespaceSelector by name", networkingv1.NetworkPolicyPeer{NamespaceSelector: sel(corev1.LabelMetadataName, "monitoring")}, mon, true},
		{"both", networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{}, PodSelector: sel("app", "web")}, mon, false},
		{"ipBlock", networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "192.0.2.0/24"}}, out, true},
		{"ipBlock except", networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "192.0.2.0/24", Except: []string{"192.0.2.0/29"}}}, out, false},
		{"selectors do not match addresses", networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{}}, out, false},
		{"an empty peer, which the API server refuses, matches nothing", networkingv1.NetworkPolicyPeer{}, web, false},
	} {
		if got := PeerMatches(tc.peer, "shop", tc.p); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	port := func(p intstr.IntOrString, proto *corev1.Protocol, end *int32) networkingv1.NetworkPolicyPort {
		return networkingv1.NetworkPolicyPort{Port: &p, Protocol: proto, EndPort: end}
	}
	end := int32(8090)
	for _, tc := range []struct {
		name  string
		ports []networkingv1.NetworkPolicyPort
		proto corev1.Protocol
		port  int32
		pname string
		want  bool
	}{
		{"no ports", nil, udp, 53, "", true},
		{"number", []networkingv1.NetworkPolicyPort{port(intstr.FromInt32(8080), nil, nil)}, tcp, 8080, "", true},
		{"number, other protocol", []networkingv1.NetworkPolicyPort{port(intstr.FromInt32(53), nil, nil)}, udp, 53, "", false},
		{"range", []networkingv1.NetworkPolicyPort{port(intstr.FromInt32(8080), nil, &end)}, tcp, 8085, "", true},
		{"name", []networkingv1.NetworkPolicyPort{port(intstr.FromString("http"), nil, nil)}, tcp, 8080, "http", true},
		{"name, unnamed port", []networkingv1.NetworkPolicyPort{port(intstr.FromString("http"), nil, nil)}, tcp, 8080, "", false},
		{"protocol only", []networkingv1.NetworkPolicyPort{{Protocol: &udp}}, udp, 9999, "", true},
	} {
		if got := PortMatches(tc.ports, tc.proto, tc.port, tc.pname); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestIsolates(t *testing.T) {
	for _, tc := range []struct {
		spec     networkingv1.NetworkPolicySpec
		in, eout bool
	}{
		{networkingv1.NetworkPolicySpec{}, true, false},
		{networkingv1.NetworkPolicySpec{Egress: []networkingv1.NetworkPolicyEgressRule{{}}}, true, true},
		{networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}}, false, true},
	} {
		np := &networkingv1.NetworkPolicy{Spec: tc.spec}
		if Isolates(np, Ingress) != tc.in || Isolates(np, Egress) != tc.eout {
			t.Errorf("%+v: ingress %v egress %v", tc.spec, Isolates(np, Ingress), Isolates(np, Egress))
		}
	}
}
