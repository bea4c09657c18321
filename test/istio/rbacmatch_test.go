package istio

// An evaluator of Envoy's RBAC configuration (envoy.config.rbac.v3), written from Envoy's API
// documentation and its matcher sources, to referee what Istio's authorization builder emits: given
// the RBAC filters of a filter chain and one request, what Envoy decides. It shares nothing with
// the operator's code. It fails (returns an error) on any configuration Envoy would reject and on
// any matcher it does not implement, instead of guessing.

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	corepb "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacpb "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routepb "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	rbactcp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	uritemplatepb "github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/v3"
	matcherpb "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typepb "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	exprpb "google.golang.org/genproto/googleapis/api/expr/v1alpha1"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pilot/pkg/config/memory"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/security/authz/builder"
	"istio.io/istio/pilot/pkg/security/trustdomain"
	"istio.io/istio/pkg/config/schema/collections"
)

// envoyRequest is what Envoy's RBAC filters see of one connection or HTTP request.
type envoyRequest struct {
	Principal string     // the peer certificate's URI SAN, e.g. "spiffe://cluster.local/ns/shop/sa/web"; "" without mutual TLS
	SourceIP  netip.Addr // the direct peer (direct_remote_ip, source_ip)
	RemoteIP  netip.Addr // the original client (remote_ip); the same as SourceIP when nothing forwards
	DestIP    netip.Addr
	DestPort  uint32
	SNI       string
	HTTP      bool              // false: a TCP connection (network RBAC filter): no headers, path or metadata
	Headers   map[string]string // lower-case names, with ":method", ":path" (may carry a query), ":authority"
	JWT       map[string]any    // the verified token's payload (claims) that Envoy's jwt_authn filter puts in dynamic metadata, nil without a token
}

// The names under which Istio's configuration reaches this state: the JWT payload is dynamic
// metadata of the jwt_authn filter under the key "payload" (istio.io/istio/pilot/pkg/xds/filters
// EnvoyJwtFilterName and EnvoyJwtFilterPayload), and the peer's principal a filter state object
// (Istio's builder with Option.UseFilterState).
const (
	envoyJWTFilter        = "envoy.filters.http.jwt_authn"
	envoyJWTPayloadKey    = "payload"
	envoyPeerPrincipalKey = "io.istio.peer_principal"
	envoyUriTemplateType  = "type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig"
	envoyHTTPRBACFilter   = "envoy.filters.http.rbac"
	envoyTCPRBACFilter    = "envoy.filters.network.rbac"
)

// rbacVerdict runs the filters in order, as the filter chain does, and says whether the request
// passes and which filter/policy decided. A nil filter has no enforced rules (a filter with only
// shadow rules, i.e. dry-run policies) and passes everything. Each filter with rules decides as
// Envoy's RBAC engine does: ALLOW passes iff some policy matches, DENY iff none matches, LOG always
// passes. Every filter is checked against Envoy's own validation and evaluated in full (no
// short-circuit), so an unsupported matcher anywhere is an error, whatever the request.
func rbacVerdict(filters []*rbacpb.RBAC, r envoyRequest) (allowed bool, why string, err error) {
	st, err := envoyStateOf(r)
	if err != nil {
		return false, "", err
	}
	allowed = true
	var reasons []string
	for i, f := range filters {
		if f == nil {
			reasons = append(reasons, fmt.Sprintf("filter %d: no enforced rules", i))
			continue
		}
		if err := f.ValidateAll(); err != nil {
			return false, "", fmt.Errorf("filter %d: Envoy rejects the configuration: %w", i, err)
		}
		names := slices.Sorted(maps.Keys(f.GetPolicies()))
		var matched []string
		for _, name := range names {
			ok, err := st.policy(f.GetPolicies()[name])
			if err != nil {
				return false, "", fmt.Errorf("filter %d, policy %s: %w", i, name, err)
			}
			if ok {
				matched = append(matched, name)
			}
		}
		// Envoy keeps the policies in a std::map and stops at the first that matches: the
		// effective policy is the first matching name in byte order.
		first := ""
		if len(matched) > 0 {
			first = matched[0]
		}
		switch f.GetAction() {
		case rbacpb.RBAC_ALLOW:
			if first == "" {
				if allowed {
					allowed, why = false, fmt.Sprintf("filter %d (ALLOW) denies: none of its %d policies matches", i, len(names))
				}
				reasons = append(reasons, fmt.Sprintf("filter %d (ALLOW): no policy matches", i))
			} else {
				reasons = append(reasons, fmt.Sprintf("filter %d (ALLOW): policy %s matches", i, first))
			}
		case rbacpb.RBAC_DENY:
			if first != "" {
				if allowed {
					allowed, why = false, fmt.Sprintf("filter %d (DENY) denies: policy %s matches", i, first)
				}
				reasons = append(reasons, fmt.Sprintf("filter %d (DENY): policy %s matches", i, first))
			} else {
				reasons = append(reasons, fmt.Sprintf("filter %d (DENY): no policy matches", i))
			}
		case rbacpb.RBAC_LOG:
			reasons = append(reasons, fmt.Sprintf("filter %d (LOG): passes (matched: %q)", i, first))
		default:
			return false, "", fmt.Errorf("filter %d: action %v is not implemented", i, f.GetAction())
		}
	}
	if allowed {
		if len(reasons) == 0 {
			return true, "no RBAC filter", nil
		}
		return true, "allowed: " + strings.Join(reasons, "; "), nil
	}
	return false, why + " [" + strings.Join(reasons, "; ") + "]", nil
}

// httpFilters is the RBAC of each HTTP filter the builder emits, in order: its enforced Rules, nil
// for a filter with only shadow rules (dry-run policies), which enforces nothing.
func httpFilters(b *builder.Builder) ([]*rbacpb.RBAC, error) {
	if b == nil {
		return nil, nil
	}
	var out []*rbacpb.RBAC
	for i, f := range b.BuildHTTP() {
		if f.GetName() != envoyHTTPRBACFilter {
			return nil, fmt.Errorf("HTTP filter %d is %s, not %s: not implemented", i, f.GetName(), envoyHTTPRBACFilter)
		}
		var cfg rbachttp.RBAC
		if err := f.GetTypedConfig().UnmarshalTo(&cfg); err != nil {
			return nil, fmt.Errorf("HTTP filter %d: %w", i, err)
		}
		if err := cfg.ValidateAll(); err != nil {
			return nil, fmt.Errorf("HTTP filter %d: Envoy rejects the configuration: %w", i, err)
		}
		if cfg.GetMatcher() != nil {
			return nil, fmt.Errorf("HTTP filter %d: the matcher tree form of RBAC is not implemented", i)
		}
		out = append(out, cfg.GetRules())
	}
	return out, nil
}

// tcpFilters is httpFilters for the network filters of a TCP filter chain.
func tcpFilters(b *builder.Builder) ([]*rbacpb.RBAC, error) {
	if b == nil {
		return nil, nil
	}
	var out []*rbacpb.RBAC
	for i, f := range b.BuildTCP() {
		if f.GetName() != envoyTCPRBACFilter {
			return nil, fmt.Errorf("TCP filter %d is %s, not %s: not implemented", i, f.GetName(), envoyTCPRBACFilter)
		}
		var cfg rbactcp.RBAC
		if err := f.GetTypedConfig().UnmarshalTo(&cfg); err != nil {
			return nil, fmt.Errorf("TCP filter %d: %w", i, err)
		}
		if err := cfg.ValidateAll(); err != nil {
			return nil, fmt.Errorf("TCP filter %d: Envoy rejects the configuration: %w", i, err)
		}
		if cfg.GetMatcher() != nil {
			return nil, fmt.Errorf("TCP filter %d: the matcher tree form of RBAC is not implemented", i)
		}
		out = append(out, cfg.GetRules())
	}
	return out, nil
}

// envoyState is the request as Envoy's matchers read it.
type envoyState struct {
	r        envoyRequest
	remote   netip.Addr
	headers  map[string]string           // empty on TCP: the network filter matches against an empty header map
	metadata map[string]*structpb.Struct // dynamic metadata by filter name
}

func envoyStateOf(r envoyRequest) (*envoyState, error) {
	st := &envoyState{r: r, remote: r.RemoteIP, headers: map[string]string{}, metadata: map[string]*structpb.Struct{}}
	if !st.remote.IsValid() {
		st.remote = r.SourceIP // nothing forwards
	}
	if !r.HTTP {
		if len(r.Headers) > 0 || r.JWT != nil {
			return nil, errors.New("a TCP request has no headers and no JWT")
		}
		return st, nil
	}
	for k, v := range r.Headers {
		if k != strings.ToLower(k) {
			return nil, fmt.Errorf("header name %q is not lower-case", k)
		}
		if k == "host" {
			return nil, errors.New(`header "host": Envoy holds the host in ":authority"`)
		}
		st.headers[k] = v
	}
	if r.JWT != nil {
		// The payload is JSON converted to a protobuf Struct, as jwt_authn does.
		data, err := json.Marshal(r.JWT)
		if err != nil {
			return nil, fmt.Errorf("JWT: %w", err)
		}
		var payload map[string]any
		if err := json.Unmarshal(data, &payload); err != nil {
			return nil, fmt.Errorf("JWT: %w", err)
		}
		s, err := structpb.NewStruct(payload)
		if err != nil {
			return nil, fmt.Errorf("JWT: %w", err)
		}
		st.metadata[envoyJWTFilter] = &structpb.Struct{Fields: map[string]*structpb.Value{envoyJWTPayloadKey: structpb.NewStructValue(s)}}
	}
	return st, nil
}

// policy: at least one permission and at least one principal match (both lists are required to
// be non-empty, which ValidateAll has checked), and no condition, which is not implemented.
func (st *envoyState) policy(p *rbacpb.Policy) (bool, error) {
	if p.GetCondition() != nil || p.GetCheckedCondition() != nil || p.GetCelConfig() != nil {
		return false, errors.New("CEL conditions are not implemented")
	}
	perm := false
	for _, x := range p.GetPermissions() {
		ok, err := st.permission(x)
		if err != nil {
			return false, err
		}
		perm = perm || ok
	}
	id := false
	for _, x := range p.GetPrincipals() {
		ok, err := st.principal(x)
		if err != nil {
			return false, err
		}
		id = id || ok
	}
	return perm && id, nil
}

func (st *envoyState) permission(p *rbacpb.Permission) (bool, error) {
	switch x := p.GetRule().(type) {
	case *rbacpb.Permission_AndRules:
		all := true
		for _, c := range x.AndRules.GetRules() {
			ok, err := st.permission(c)
			if err != nil {
				return false, err
			}
			all = all && ok
		}
		return all, nil
	case *rbacpb.Permission_OrRules:
		some := false
		for _, c := range x.OrRules.GetRules() {
			ok, err := st.permission(c)
			if err != nil {
				return false, err
			}
			some = some || ok
		}
		return some, nil
	case *rbacpb.Permission_Any:
		return x.Any, nil
	case *rbacpb.Permission_NotRule:
		ok, err := st.permission(x.NotRule)
		return !ok, err
	case *rbacpb.Permission_Header:
		return st.header(x.Header)
	case *rbacpb.Permission_UrlPath:
		return st.urlPath(x.UrlPath)
	case *rbacpb.Permission_DestinationIp:
		if !st.r.DestIP.IsValid() {
			return false, errors.New("destination_ip: the request has no destination address")
		}
		return envoyCIDR(x.DestinationIp, st.r.DestIP)
	case *rbacpb.Permission_DestinationPort:
		return st.r.DestPort == x.DestinationPort, nil
	case *rbacpb.Permission_DestinationPortRange:
		// Int32Range is half-open, [start, end); Envoy refuses bounds outside [0, 65536] and
		// start >= end.
		start, end := x.DestinationPortRange.GetStart(), x.DestinationPortRange.GetEnd()
		if start < 0 || start > 65536 || end < 0 || end > 65536 || start >= end {
			return false, fmt.Errorf("destination_port_range [%d, %d): Envoy rejects it", start, end)
		}
		port := int64(st.r.DestPort)
		return int64(start) <= port && port < int64(end), nil
	case *rbacpb.Permission_Metadata:
		return st.metadataMatch(x.Metadata)
	case *rbacpb.Permission_SourcedMetadata:
		return st.sourcedMetadata(x.SourcedMetadata)
	case *rbacpb.Permission_RequestedServerName:
		return envoyString(x.RequestedServerName, st.r.SNI) // "" without SNI
	case *rbacpb.Permission_UriTemplate:
		return st.uriTemplate(x.UriTemplate)
	case *rbacpb.Permission_Matcher:
		return false, fmt.Errorf("permission matcher extension %q is not implemented", x.Matcher.GetName())
	case nil:
		return false, errors.New("a permission without a rule")
	default:
		return false, fmt.Errorf("permission %T is not implemented", x)
	}
}

func (st *envoyState) principal(p *rbacpb.Principal) (bool, error) {
	switch x := p.GetIdentifier().(type) {
	case *rbacpb.Principal_AndIds:
		all := true
		for _, c := range x.AndIds.GetIds() {
			ok, err := st.principal(c)
			if err != nil {
				return false, err
			}
			all = all && ok
		}
		return all, nil
	case *rbacpb.Principal_OrIds:
		some := false
		for _, c := range x.OrIds.GetIds() {
			ok, err := st.principal(c)
			if err != nil {
				return false, err
			}
			some = some || ok
		}
		return some, nil
	case *rbacpb.Principal_Any:
		return x.Any, nil
	case *rbacpb.Principal_NotId:
		ok, err := st.principal(x.NotId)
		return !ok, err
	case *rbacpb.Principal_Authenticated_:
		// Without TLS it never matches; an unset principal_name matches any authenticated peer;
		// otherwise the URI SANs, then the DNS SANs, then the subject are tried in turn. The
		// peer's certificate is an Istio workload certificate: one URI SAN, no DNS SAN, an empty
		// subject.
		name := x.Authenticated.GetPrincipalName()
		if name == nil {
			return st.r.Principal != "", nil
		}
		uri, err := envoyString(name, st.r.Principal)
		if err != nil {
			return false, err
		}
		subject, err := envoyString(name, "")
		if err != nil {
			return false, err
		}
		return st.r.Principal != "" && (uri || subject), nil
	case *rbacpb.Principal_SourceIp:
		// The downstream connection's remote address: it honours the proxy protocol (not
		// modelled here), not XFF.
		if !st.r.SourceIP.IsValid() {
			return false, errors.New("source_ip: the request has no source address")
		}
		return envoyCIDR(x.SourceIp, st.r.SourceIP)
	case *rbacpb.Principal_DirectRemoteIp:
		if !st.r.SourceIP.IsValid() {
			return false, errors.New("direct_remote_ip: the request has no source address")
		}
		return envoyCIDR(x.DirectRemoteIp, st.r.SourceIP)
	case *rbacpb.Principal_RemoteIp:
		if !st.remote.IsValid() {
			return false, errors.New("remote_ip: the request has no source address")
		}
		return envoyCIDR(x.RemoteIp, st.remote)
	case *rbacpb.Principal_Header:
		return st.header(x.Header)
	case *rbacpb.Principal_UrlPath:
		return st.urlPath(x.UrlPath)
	case *rbacpb.Principal_Metadata:
		return st.metadataMatch(x.Metadata)
	case *rbacpb.Principal_SourcedMetadata:
		return st.sourcedMetadata(x.SourcedMetadata)
	case *rbacpb.Principal_FilterState:
		return st.filterState(x.FilterState)
	case *rbacpb.Principal_Custom:
		return false, fmt.Errorf("custom principal extension %q is not implemented", x.Custom.GetName())
	case nil:
		return false, errors.New("a principal without an identifier")
	default:
		return false, fmt.Errorf("principal %T is not implemented", x)
	}
}

// header is Envoy's HeaderUtility::matchHeaders for one header (RBAC matches a single header, and
// this request model has one value per name: Envoy would join repeated headers with ",").
func (st *envoyState) header(h *routepb.HeaderMatcher) (bool, error) {
	value, present := st.headers[strings.ToLower(h.GetName())]
	// The value's match is computed even for a missing header, so that an unsupported matcher is
	// an error whatever the request; a missing header is then matched as "".
	presentMatch, wantPresent := false, false
	var match bool
	switch x := h.GetHeaderMatchSpecifier().(type) {
	case nil:
		// "In the absence of any header match specifier, match will default to present_match."
		presentMatch, wantPresent, match = true, true, true
	case *routepb.HeaderMatcher_PresentMatch:
		presentMatch, wantPresent, match = true, x.PresentMatch, x.PresentMatch
	case *routepb.HeaderMatcher_ExactMatch:
		match = x.ExactMatch == "" || value == x.ExactMatch // an empty exact_match matches any value
	case *routepb.HeaderMatcher_PrefixMatch:
		match = strings.HasPrefix(value, x.PrefixMatch)
	case *routepb.HeaderMatcher_SuffixMatch:
		match = strings.HasSuffix(value, x.SuffixMatch)
	case *routepb.HeaderMatcher_ContainsMatch:
		match = strings.Contains(value, x.ContainsMatch)
	case *routepb.HeaderMatcher_SafeRegexMatch:
		re, err := envoyRegex(x.SafeRegexMatch)
		if err != nil {
			return false, err
		}
		match = re.MatchString(value)
	case *routepb.HeaderMatcher_StringMatch:
		ok, err := envoyString(x.StringMatch, value)
		if err != nil {
			return false, err
		}
		match = ok
	default:
		return false, fmt.Errorf("header matcher %T is not implemented", x)
	}
	if !present && !h.GetTreatMissingHeaderAsEmpty() {
		// A missing header matches only present_match: false, and, inverted, only present_match:
		// true; any other matcher "will be ignored so it will not match", inverted or not.
		if h.GetInvertMatch() {
			return presentMatch && wantPresent, nil
		}
		return presentMatch && !wantPresent, nil
	}
	return match != h.GetInvertMatch(), nil
}

// envoyPathOnly is Envoy's PathUtil::removeQueryAndFragment.
func envoyPathOnly(path string) string {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		return path[:i]
	}
	return path
}

// urlPath: the :path header without its query and fragment; no match without a :path (TCP).
func (st *envoyState) urlPath(m *matcherpb.PathMatcher) (bool, error) {
	sm := m.GetPath()
	if sm == nil {
		return false, fmt.Errorf("path matcher %T is not implemented", m.GetRule())
	}
	path, ok := st.headers[":path"]
	match, err := envoyString(sm, envoyPathOnly(path))
	return ok && match, err
}

func (st *envoyState) sourcedMetadata(m *rbacpb.SourcedMetadata) (bool, error) {
	if m.GetMetadataSource() != rbacpb.MetadataSource_DYNAMIC {
		return false, fmt.Errorf("metadata source %v is not implemented", m.GetMetadataSource())
	}
	return st.metadataMatch(m.GetMetadataMatcher())
}

// metadataMatch is Envoy's MetadataMatcher over the dynamic metadata: the value at the path (unset
// when the filter, a key or an intermediate struct is missing), matched, then inverted if asked.
// Only the jwt_authn filter's metadata is modelled; another filter's is an error.
func (st *envoyState) metadataMatch(m *matcherpb.MetadataMatcher) (bool, error) {
	if m.GetFilter() != envoyJWTFilter {
		return false, fmt.Errorf("metadata of filter %q is not modelled (only %s)", m.GetFilter(), envoyJWTFilter)
	}
	var value *structpb.Value // nil: unset
	data := st.metadata[m.GetFilter()]
	for _, seg := range m.GetPath() {
		key, ok := seg.GetSegment().(*matcherpb.MetadataMatcher_PathSegment_Key)
		if !ok {
			return false, fmt.Errorf("metadata path segment %T is not implemented", seg.GetSegment())
		}
		if data == nil {
			value = nil
			break
		}
		v, found := data.GetFields()[key.Key]
		if !found {
			value = nil
			break
		}
		value, data = v, v.GetStructValue()
	}
	ok, err := envoyValue(m.GetValue(), value)
	if err != nil {
		return false, err
	}
	return ok != m.GetInvert(), nil
}

// envoyValue is Envoy's ValueMatcher; value nil is a value whose kind is not set.
func envoyValue(m *matcherpb.ValueMatcher, value *structpb.Value) (bool, error) {
	switch x := m.GetMatchPattern().(type) {
	case *matcherpb.ValueMatcher_StringMatch:
		_, ok := value.GetKind().(*structpb.Value_StringValue)
		// Evaluate the matcher even without a string, so that an unsupported one is an error.
		match, err := envoyString(x.StringMatch, value.GetStringValue())
		return ok && match, err
	case *matcherpb.ValueMatcher_PresentMatch:
		// Envoy's PresentMatcher: present_match true and any kind set (the API doc speaks of
		// "primitive" values; Envoy's code accepts lists and structs too).
		return x.PresentMatch && value.GetKind() != nil, nil
	case *matcherpb.ValueMatcher_ListMatch:
		one, ok := x.ListMatch.GetMatchPattern().(*matcherpb.ListMatcher_OneOf)
		if !ok {
			return false, fmt.Errorf("list matcher %T is not implemented", x.ListMatch.GetMatchPattern())
		}
		// Check the inner matcher once against an unset value, so that an unsupported one is an
		// error even for an empty or missing list.
		if _, err := envoyValue(one.OneOf, nil); err != nil {
			return false, err
		}
		list, isList := value.GetKind().(*structpb.Value_ListValue)
		if !isList {
			return false, nil
		}
		for _, v := range list.ListValue.GetValues() {
			ok, err := envoyValue(one.OneOf, v)
			if err != nil {
				return false, err
			}
			if ok {
				return true, nil
			}
		}
		return false, nil
	case *matcherpb.ValueMatcher_OrMatch:
		some := false
		for _, c := range x.OrMatch.GetValueMatchers() {
			ok, err := envoyValue(c, value)
			if err != nil {
				return false, err
			}
			some = some || ok
		}
		return some, nil
	case nil:
		return false, errors.New("a value matcher without a pattern")
	default:
		return false, fmt.Errorf("value matcher %T is not implemented", x)
	}
}

// filterState: only Istio's peer principal object is modelled; it holds the same principal as the
// certificate and is absent without mutual TLS (an absent object matches nothing).
func (st *envoyState) filterState(m *matcherpb.FilterStateMatcher) (bool, error) {
	if m.GetKey() != envoyPeerPrincipalKey {
		return false, fmt.Errorf("filter state %q is not modelled (only %s)", m.GetKey(), envoyPeerPrincipalKey)
	}
	sm, ok := m.GetMatcher().(*matcherpb.FilterStateMatcher_StringMatch)
	if !ok {
		return false, fmt.Errorf("filter state matcher %T is not implemented", m.GetMatcher())
	}
	match, err := envoyString(sm.StringMatch, st.r.Principal)
	return st.r.Principal != "" && match, err
}

// envoyCIDR: the address is in the range (address_prefix masked to prefix_len, an unset length
// being 0); an address of the other family never is.
func envoyCIDR(c *corepb.CidrRange, addr netip.Addr) (bool, error) {
	base, err := netip.ParseAddr(c.GetAddressPrefix())
	if err != nil {
		return false, fmt.Errorf("CIDR address_prefix %q: %w", c.GetAddressPrefix(), err)
	}
	bits := int(c.GetPrefixLen().GetValue())
	if bits > base.BitLen() {
		return false, fmt.Errorf("CIDR %s/%d: the length exceeds the address", c.GetAddressPrefix(), bits)
	}
	prefix, err := base.Prefix(bits)
	if err != nil {
		return false, err
	}
	return prefix.Contains(addr), nil
}

// envoyString is Envoy's StringMatcher: ignore_case folds ASCII only and does not apply to
// safe_regex, which must match the whole string.
func envoyString(m *matcherpb.StringMatcher, s string) (bool, error) {
	fold := m.GetIgnoreCase()
	lower := func(v string) string {
		if !fold {
			return v
		}
		b := []byte(v)
		for i, c := range b {
			if 'A' <= c && c <= 'Z' {
				b[i] = c + 'a' - 'A'
			}
		}
		return string(b)
	}
	switch x := m.GetMatchPattern().(type) {
	case *matcherpb.StringMatcher_Exact:
		return lower(s) == lower(x.Exact), nil
	case *matcherpb.StringMatcher_Prefix:
		if x.Prefix == "" {
			return false, errors.New("an empty prefix: Envoy rejects it")
		}
		return strings.HasPrefix(lower(s), lower(x.Prefix)), nil
	case *matcherpb.StringMatcher_Suffix:
		if x.Suffix == "" {
			return false, errors.New("an empty suffix: Envoy rejects it")
		}
		return strings.HasSuffix(lower(s), lower(x.Suffix)), nil
	case *matcherpb.StringMatcher_Contains:
		if x.Contains == "" {
			return false, errors.New("an empty contains: Envoy rejects it")
		}
		return strings.Contains(lower(s), lower(x.Contains)), nil
	case *matcherpb.StringMatcher_SafeRegex:
		re, err := envoyRegex(x.SafeRegex)
		if err != nil {
			return false, err
		}
		return re.MatchString(s), nil
	case nil:
		return false, errors.New("a string matcher without a pattern")
	default:
		return false, fmt.Errorf("string matcher %T is not implemented", x)
	}
}

var envoyRegexCache sync.Map // regex source → *regexp.Regexp

// envoyRegex compiles an RE2 regex for a full match (Go's regexp implements RE2's syntax).
func envoyRegex(m *matcherpb.RegexMatcher) (*regexp.Regexp, error) {
	src := m.GetRegex()
	if re, ok := envoyRegexCache.Load(src); ok {
		return re.(*regexp.Regexp), nil
	}
	re, err := regexp.Compile(`\A(?:` + src + `)\z`)
	if err != nil {
		return nil, fmt.Errorf("regex %q: %w", src, err)
	}
	envoyRegexCache.Store(src, re)
	return re, nil
}

// uriTemplate is Envoy's uri_template path matcher: the template compiled to a regex as Envoy's
// uri_template_lib does, matched in full against the :path without query and fragment ("" without
// a :path, which never matches).
func (st *envoyState) uriTemplate(ext *corepb.TypedExtensionConfig) (bool, error) {
	if got := ext.GetTypedConfig().GetTypeUrl(); got != envoyUriTemplateType {
		return false, fmt.Errorf("uri_template extension %s is not implemented", got)
	}
	var cfg uritemplatepb.UriTemplateMatchConfig
	if err := ext.GetTypedConfig().UnmarshalTo(&cfg); err != nil {
		return false, err
	}
	if err := cfg.ValidateAll(); err != nil {
		return false, fmt.Errorf("uri_template: Envoy rejects it: %w", err)
	}
	re, err := envoyURITemplateRegex(cfg.GetPathTemplate())
	if err != nil {
		return false, err
	}
	return re.MatchString(envoyPathOnly(st.headers[":path"])), nil
}

// envoyTemplateLiteral is the characters a template literal and a glob may hold: RFC 3986 pchar
// (unreserved, "%", sub-delims but "*", ":" and "@") plus "=" (Envoy's kLiteral).
const envoyTemplateLiteral = `a-zA-Z0-9\-._~%!$&'()+,;:@=`

var (
	envoyTemplatePrintable = regexp.MustCompile(`\A/[[:graph:]]*\z`)
	envoyTemplateLiteralRe = regexp.MustCompile(`\A[` + envoyTemplateLiteral + `]+\z`)
)

// envoyURITemplateRegex follows Envoy's parsePathPatternSyntax and toRegexPattern: segments
// separated by "/", each "*" (one segment: [pchar]+), "**" (any number of segments: [pchar/]*) or
// a literal; a single trailing "/" is an empty last segment; text right after an operator is a
// suffix of the whole pattern and must be the end of it; no operator may follow "**". Variables
// ({name}, {name=...}) are not implemented: Istio's builder does not emit them.
func envoyURITemplateRegex(tmpl string) (*regexp.Regexp, error) {
	if !envoyTemplatePrintable.MatchString(tmpl) {
		return nil, fmt.Errorf("uri_template %q: Envoy rejects it (not / and printable characters)", tmpl)
	}
	literal := func(s string) (lit, rest string, err error) {
		lit, rest = s, ""
		if i := strings.IndexByte(s, '/'); i >= 0 {
			lit, rest = s[:i], s[i:]
		}
		if !envoyTemplateLiteralRe.MatchString(lit) {
			return "", "", fmt.Errorf("uri_template %q: invalid literal %q: Envoy rejects it", tmpl, lit)
		}
		return lit, rest, nil
	}
	const oneSegment, anySegments = "[" + envoyTemplateLiteral + "]+", "[" + envoyTemplateLiteral + "/]*"
	var segments []string
	suffix := ""
	sawTextGlob := false
	rest := tmpl[1:]
	for rest != "" {
		switch {
		case strings.HasPrefix(rest, "**"):
			if sawTextGlob {
				return nil, fmt.Errorf("uri_template %q: an operator after **: Envoy rejects it", tmpl)
			}
			segments, rest, sawTextGlob = append(segments, anySegments), rest[2:], true
		case strings.HasPrefix(rest, "*"):
			if sawTextGlob {
				return nil, fmt.Errorf("uri_template %q: an operator after **: Envoy rejects it", tmpl)
			}
			segments, rest = append(segments, oneSegment), rest[1:]
		case strings.HasPrefix(rest, "{"):
			return nil, fmt.Errorf("uri_template %q: variables are not implemented", tmpl)
		default:
			lit, r, err := literal(rest)
			if err != nil {
				return nil, err
			}
			segments, rest = append(segments, regexp.QuoteMeta(lit)), r
		}
		switch {
		case rest == "":
		case rest == "/":
			segments, rest = append(segments, ""), ""
		case rest[0] == '/':
			rest = rest[1:]
		default:
			lit, r, err := literal(rest)
			if err != nil {
				return nil, err
			}
			if r != "" {
				return nil, fmt.Errorf("uri_template %q: text after a suffix (prefix match): Envoy rejects it", tmpl)
			}
			suffix, rest = regexp.QuoteMeta(lit), ""
		}
	}
	return regexp.Compile(`\A/` + strings.Join(segments, "/") + suffix + `\z`)
}

// envoyOpt changes one thing of a test request.
type envoyOpt func(*envoyRequest)

// envoyHTTPReq is a GET of / for api.shop.svc.cluster.local on port 8080 from 10.0.0.5, with the
// given peer principal ("" without mutual TLS).
func envoyHTTPReq(principal string, opts ...envoyOpt) envoyRequest {
	r := envoyRequest{Principal: principal, SourceIP: netip.MustParseAddr("10.0.0.5"), RemoteIP: netip.MustParseAddr("10.0.0.5"),
		DestIP: netip.MustParseAddr("10.0.1.10"), DestPort: 8080, HTTP: true,
		Headers: map[string]string{":method": "GET", ":path": "/", ":authority": "api.shop.svc.cluster.local"}}
	for _, o := range opts {
		o(&r)
	}
	return r
}

// envoyTCPReq is a TCP connection to 10.0.1.10:8080 from 10.0.0.5.
func envoyTCPReq(principal string, opts ...envoyOpt) envoyRequest {
	r := envoyRequest{Principal: principal, SourceIP: netip.MustParseAddr("10.0.0.5"), RemoteIP: netip.MustParseAddr("10.0.0.5"),
		DestIP: netip.MustParseAddr("10.0.1.10"), DestPort: 8080}
	for _, o := range opts {
		o(&r)
	}
	return r
}

func envoyPath(p string) envoyOpt   { return func(r *envoyRequest) { r.Headers[":path"] = p } }
func envoyMethod(m string) envoyOpt { return func(r *envoyRequest) { r.Headers[":method"] = m } }
func envoyHost(h string) envoyOpt   { return func(r *envoyRequest) { r.Headers[":authority"] = h } }
func envoyHeader(k, v string) envoyOpt {
	return func(r *envoyRequest) { r.Headers[k] = v }
}
func envoyClaims(c map[string]any) envoyOpt { return func(r *envoyRequest) { r.JWT = c } }
func envoyPort(p uint32) envoyOpt           { return func(r *envoyRequest) { r.DestPort = p } }
func envoyDest(ip string) envoyOpt {
	return func(r *envoyRequest) { r.DestIP = netip.MustParseAddr(ip) }
}
func envoySNI(s string) envoyOpt { return func(r *envoyRequest) { r.SNI = s } }

// envoyFrom sets the direct peer; the original client is the same unless envoyVia follows.
func envoyFrom(ip string) envoyOpt {
	return func(r *envoyRequest) { r.SourceIP, r.RemoteIP = netip.MustParseAddr(ip), netip.MustParseAddr(ip) }
}

// envoyVia sets the original client (remote_ip) behind the direct peer.
func envoyVia(ip string) envoyOpt {
	return func(r *envoyRequest) { r.RemoteIP = netip.MustParseAddr(ip) }
}

// envoyAP is an AuthorizationPolicy named name in namespace shop for the workload app=api; spec
// is the rest of its spec, in YAML.
func envoyAP(name, spec string) string {
	return envoyAPWith(name, "", spec)
}

// envoyDryRunAP is envoyAP with the annotation istio.io/dry-run: "true".
func envoyDryRunAP(name, spec string) string {
	return envoyAPWith(name, "  annotations:\n    istio.io/dry-run: \"true\"\n", spec)
}

func envoyAPWith(name, annotations, spec string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: %s\n  namespace: shop\n%s", name, annotations)
	b.WriteString("spec:\n  selector:\n    matchLabels:\n      app: api\n")
	for _, line := range strings.Split(strings.TrimSpace(spec), "\n") {
		if line != "" {
			b.WriteString("  " + line + "\n")
		}
	}
	return b.String() + "---\n"
}

// envoyBuilder runs Istio over the policies as istiod does for the workload app=api in namespace
// shop: Istio's validation, the policies that select the proxy, the authorization builder.
func envoyBuilder(t *testing.T, docs string, useFilterState bool) *builder.Builder {
	t.Helper()
	configs, _, err := crd.ParseInputs(docs)
	if err != nil {
		t.Fatalf("Istio cannot parse the policies: %v\n%s", err, docs)
	}
	store := memory.Make(collections.Pilot)
	for _, c := range configs {
		s, ok := collections.Pilot.FindByGroupVersionAliasesKind(c.GroupVersionKind)
		if !ok {
			t.Fatalf("no schema for %v", c.GroupVersionKind)
		}
		if _, err := s.ValidateConfig(c); err != nil {
			t.Fatalf("Istio's validation refuses %s: %v\n%s", c.Name, err, docs)
		}
		if _, err := store.Create(c); err != nil {
			t.Fatal(err)
		}
	}
	push := &model.PushContext{AuthzPolicies: model.GetAuthorizationPolicies(&model.Environment{ConfigStore: store})}
	labels := map[string]string{"app": "api"}
	proxy := &model.Proxy{ConfigNamespace: "shop", Labels: labels, Metadata: &model.NodeMetadata{Labels: labels, Namespace: "shop"}}
	policies := push.AuthzPolicies.ListAuthorizationPolicies(model.PolicyMatcherForProxy(proxy))
	return builder.New(trustdomain.NewBundle("cluster.local", nil), push, policies, builder.Option{UseFilterState: useFilterState})
}

// TestEnvoyRBACMatcher checks the evaluator on policies Istio's builder translates, with verdicts
// read by hand from Istio's AuthorizationPolicy reference and Envoy's RBAC documentation, and on
// hand-built RBAC configurations for the matchers the builder does not emit and the errors.
func TestEnvoyRBACMatcher(t *testing.T) {
	const (
		web      = "spiffe://cluster.local/ns/shop/sa/web"
		db       = "spiffe://cluster.local/ns/shop/sa/db"
		otherWeb = "spiffe://cluster.local/ns/other/sa/web"
		east     = "spiffe://east.example.com/ns/shop/sa/web"
		none     = "" // no mutual TLS
	)
	allowFrom := func(name, source string) string {
		return envoyAP(name, "action: ALLOW\nrules:\n- from:\n  - source:\n      "+source)
	}
	allowTo := func(name, operation string) string {
		return envoyAP(name, "action: ALLOW\nrules:\n- to:\n  - operation:\n      "+operation)
	}
	allowWhen := func(name, key, values string) string {
		return envoyAP(name, "action: ALLOW\nrules:\n- when:\n  - key: "+key+"\n    values: "+values)
	}
	var (
		exact       = allowFrom("exact", `principals: ["cluster.local/ns/shop/sa/web"]`)
		prefix      = allowFrom("prefix", `principals: ["cluster.local/ns/shop/*"]`)
		suffix      = allowFrom("suffix", `principals: ["*/sa/web"]`)
		anyone      = allowFrom("any", `principals: ["*"]`)
		notEvil     = allowFrom("not-evil", `notPrincipals: ["cluster.local/ns/shop/sa/evil"]`)
		nsShop      = allowFrom("ns", `namespaces: ["shop"]`)
		nsGlob      = allowFrom("ns-glob", `namespaces: ["team-*-prod"]`)
		saBare      = allowFrom("sa", `serviceAccounts: ["web"]`)
		saOther     = allowFrom("sa-other", `serviceAccounts: ["other/web"]`)
		tdLocal     = allowFrom("td", `trustDomains: ["cluster.local"]`)
		tdGlob      = allowFrom("td-glob", `trustDomains: ["*.example.com"]`)
		ips         = allowFrom("ips", `{ipBlocks: ["10.0.0.0/24", "2001:db8::/32"], notIpBlocks: ["10.0.0.7"]}`)
		remote      = allowFrom("remote", `remoteIpBlocks: ["192.168.0.0/16"]`)
		ports       = allowTo("ports", `ports: ["8080"]`)
		notPorts    = allowTo("not-ports", `notPorts: ["9090"]`)
		pathExact   = allowTo("path", `paths: ["/api/v1/items"]`)
		pathPrefix  = allowTo("path-prefix", `paths: ["/api/*"]`)
		pathSuffix  = allowTo("path-suffix", `paths: ["*.css"]`)
		pathAny     = allowTo("path-any", `paths: ["*"]`)
		template    = allowTo("template", `paths: ["/api/{*}/items/{**}"]`)
		methods     = allowTo("methods", `methods: ["GET", "HEAD"]`)
		hosts       = allowTo("hosts", `hosts: ["API.example.com", "*.shop.example.com"]`)
		hostAny     = allowTo("host-any", `hosts: ["*"]`)
		jwtAny      = allowFrom("jwt-any", `requestPrincipals: ["*"]`)
		jwtExact    = allowFrom("jwt", `requestPrincipals: ["https://issuer.example.com/alice"]`)
		team        = allowWhen("team", "request.headers[x-team]", `["payments"]`)
		teamPresent = allowWhen("team-present", "request.headers[x-team]", `["*"]`)
		groups      = allowWhen("groups", "request.auth.claims[groups]", `["admins"]`)
		fromSubnet  = allowWhen("subnet", "source.ip", `["10.0.0.0/24"]`)
		toPort      = allowWhen("port", "destination.port", `["8080"]`)
		toIP        = allowWhen("dest-ip", "destination.ip", `["10.0.1.0/24"]`)
		sni         = allowWhen("sni", "connection.sni", `["*.shop.svc.cluster.local"]`)
		denyAdmin   = envoyAP("deny-admin", "action: DENY\nrules:\n- from:\n  - source:\n      namespaces: [\"blocked\"]\n  to:\n  - operation:\n      paths: [\"/admin/*\"]")
		denyPost    = envoyAP("deny-post", "action: DENY\nrules:\n- to:\n  - operation:\n      methods: [\"POST\"]")
		nothing     = envoyAP("allow-nothing", "")
		dryRun      = envoyDryRunAP("dry-run", "action: ALLOW\nrules:\n- from:\n  - source:\n      principals: [\"cluster.local/ns/shop/sa/web\"]")
	)
	rows := []struct {
		name     string
		policies string
		req      envoyRequest
		state    bool // builder.Option.UseFilterState: principals as filter state, as for a waypoint
		want     bool
	}{
		{"principal exact: the caller", exact, envoyHTTPReq(web), false, true},
		{"principal exact: another caller", exact, envoyHTTPReq(db), false, false},
		{"principal exact: no mTLS", exact, envoyHTTPReq(none), false, false},
		{"principal exact on TCP", exact, envoyTCPReq(web), false, true},
		{"principal exact on TCP: another caller", exact, envoyTCPReq(db), false, false},
		{"principal exact as filter state", exact, envoyHTTPReq(web), true, true},
		{"principal exact as filter state: no mTLS", exact, envoyHTTPReq(none), true, false},
		{"principal prefix: same namespace", prefix, envoyHTTPReq(db), false, true},
		{"principal prefix: a namespace it prefixes", prefix, envoyHTTPReq("spiffe://cluster.local/ns/shopping/sa/db"), false, false},
		{"principal suffix: any namespace", suffix, envoyHTTPReq(otherWeb), false, true},
		{"principal suffix: a longer account", suffix, envoyHTTPReq("spiffe://cluster.local/ns/other/sa/webx"), false, false},
		{"principal *: any peer with mTLS", anyone, envoyHTTPReq("spiffe://cluster.local/ns/x/sa/y"), false, true},
		{"principal *: no mTLS", anyone, envoyTCPReq(none), false, false},
		{"notPrincipals: no mTLS is not the excluded one", notEvil, envoyHTTPReq(none), false, true},
		{"notPrincipals: the excluded one", notEvil, envoyHTTPReq("spiffe://cluster.local/ns/shop/sa/evil"), false, false},
		{"namespace: in it", nsShop, envoyHTTPReq(db), false, true},
		{"namespace: a longer one", nsShop, envoyHTTPReq("spiffe://cluster.local/ns/shopx/sa/web"), false, false},
		{"namespace glob: matching", nsGlob, envoyHTTPReq("spiffe://cluster.local/ns/team-a-prod/sa/x"), false, true},
		{"namespace glob: not matching", nsGlob, envoyHTTPReq("spiffe://cluster.local/ns/team-a-dev/sa/x"), false, false},
		{"namespace glob on TCP", nsGlob, envoyTCPReq("spiffe://cluster.local/ns/team-b-c-prod/sa/x"), false, true},
		{"serviceAccount bare: the policy's namespace", saBare, envoyHTTPReq(web), false, true},
		{"serviceAccount bare: another namespace", saBare, envoyHTTPReq(otherWeb), false, false},
		{"serviceAccount bare: a longer account", saBare, envoyHTTPReq("spiffe://cluster.local/ns/shop/sa/web-2"), false, false},
		{"serviceAccount ns/name: that namespace", saOther, envoyTCPReq(otherWeb), false, true},
		{"serviceAccount ns/name: the policy's namespace", saOther, envoyHTTPReq(web), false, false},
		{"trustDomain: local", tdLocal, envoyHTTPReq(web), false, true},
		{"trustDomain: another", tdLocal, envoyHTTPReq(east), false, false},
		{"trustDomain glob", tdGlob, envoyHTTPReq(east), false, true},
		{"trustDomain glob: not matching", tdGlob, envoyHTTPReq(web), false, false},
		{"ipBlocks: in the block", ips, envoyHTTPReq(none, envoyFrom("10.0.0.5")), false, true},
		{"ipBlocks: the excluded address", ips, envoyHTTPReq(none, envoyFrom("10.0.0.7")), false, false},
		{"ipBlocks: outside", ips, envoyHTTPReq(none, envoyFrom("10.0.1.5")), false, false},
		{"ipBlocks: IPv6 block", ips, envoyHTTPReq(none, envoyFrom("2001:db8::1")), false, true},
		{"ipBlocks: the direct peer, not the original client", ips, envoyHTTPReq(none, envoyFrom("172.16.0.1"), envoyVia("10.0.0.5")), false, false},
		{"ipBlocks on TCP", ips, envoyTCPReq(none, envoyFrom("10.0.0.9")), false, true},
		{"remoteIpBlocks: the original client", remote, envoyHTTPReq(none, envoyFrom("10.0.0.5"), envoyVia("192.168.3.4")), false, true},
		{"remoteIpBlocks: not the direct peer", remote, envoyHTTPReq(none, envoyFrom("192.168.3.4"), envoyVia("10.0.0.5")), false, false},
		{"ports: the port", ports, envoyHTTPReq(web), false, true},
		{"ports: another port", ports, envoyHTTPReq(web, envoyPort(9090)), false, false},
		{"ports on TCP", ports, envoyTCPReq(web), false, true},
		{"notPorts: another port", notPorts, envoyHTTPReq(web), false, true},
		{"notPorts on TCP: the excluded port", notPorts, envoyTCPReq(web, envoyPort(9090)), false, false},
		{"path exact", pathExact, envoyHTTPReq(web, envoyPath("/api/v1/items")), false, true},
		{"path exact: the query is not the path", pathExact, envoyHTTPReq(web, envoyPath("/api/v1/items?page=2")), false, true},
		{"path exact: a trailing slash", pathExact, envoyHTTPReq(web, envoyPath("/api/v1/items/")), false, false},
		{"path exact on TCP: the rule is left out", pathExact, envoyTCPReq(web), false, false},
		{"path prefix", pathPrefix, envoyHTTPReq(web, envoyPath("/api/x")), false, true},
		{"path prefix: not at a slash", pathPrefix, envoyHTTPReq(web, envoyPath("/apix")), false, false},
		{"path suffix, with a query", pathSuffix, envoyHTTPReq(web, envoyPath("/static/a.css?v=1")), false, true},
		{"path suffix: another extension", pathSuffix, envoyHTTPReq(web, envoyPath("/static/a.js")), false, false},
		{"path *", pathAny, envoyHTTPReq(none, envoyPath("/anything")), false, true},
		{"path *: on TCP", pathAny, envoyTCPReq(none), false, false},
		{"path template: segments under **", template, envoyHTTPReq(web, envoyPath("/api/v1/items/a/b")), false, true},
		{"path template: ** as no segment", template, envoyHTTPReq(web, envoyPath("/api/v1/items/")), false, true},
		{"path template: without the slash before **", template, envoyHTTPReq(web, envoyPath("/api/v1/items")), false, false},
		{"path template: * is one segment", template, envoyHTTPReq(web, envoyPath("/api/v1/v2/items/a")), false, false},
		{"path template: the query is not the path", template, envoyHTTPReq(web, envoyPath("/api/v1/items/a?q=/x")), false, true},
		{"path template: * takes no character outside pchar", template, envoyHTTPReq(web, envoyPath("/api/v*1/items/a")), false, false},
		{"methods: GET", methods, envoyHTTPReq(web), false, true},
		{"methods: POST", methods, envoyHTTPReq(web, envoyMethod("POST")), false, false},
		{"methods: case matters", methods, envoyHTTPReq(web, envoyMethod("get")), false, false},
		{"methods on TCP: the rule is left out", methods, envoyTCPReq(web), false, false},
		{"hosts: case-insensitive", hosts, envoyHTTPReq(web, envoyHost("api.EXAMPLE.com")), false, true},
		{"hosts: suffix, case-insensitive", hosts, envoyHTTPReq(web, envoyHost("WWW.Shop.Example.COM")), false, true},
		{"hosts: another host", hosts, envoyHTTPReq(web, envoyHost("other.example.com")), false, false},
		{"hosts *: any host", hostAny, envoyHTTPReq(web), false, true},
		{"requestPrincipals *: a token", jwtAny, envoyHTTPReq(none, envoyClaims(map[string]any{"iss": "https://issuer.example.com", "sub": "alice"})), false, true},
		{"requestPrincipals *: no token", jwtAny, envoyHTTPReq(web), false, false},
		{"requestPrincipals *: on TCP", jwtAny, envoyTCPReq(web), false, false},
		{"requestPrincipals iss/sub: that token", jwtExact, envoyHTTPReq(none, envoyClaims(map[string]any{"iss": "https://issuer.example.com", "sub": "alice"})), false, true},
		{"requestPrincipals iss/sub: another subject", jwtExact, envoyHTTPReq(none, envoyClaims(map[string]any{"iss": "https://issuer.example.com", "sub": "bob"})), false, false},
		{"requestPrincipals iss/sub: no token", jwtExact, envoyHTTPReq(web), false, false},
		{"when header: the value", team, envoyHTTPReq(web, envoyHeader("x-team", "payments")), false, true},
		{"when header: another value", team, envoyHTTPReq(web, envoyHeader("x-team", "payments-eu")), false, false},
		{"when header: missing", team, envoyHTTPReq(web), false, false},
		{"when header *: present, empty", teamPresent, envoyHTTPReq(web, envoyHeader("x-team", "")), false, true},
		{"when header *: missing", teamPresent, envoyHTTPReq(web), false, false},
		{"when header on TCP: the rule is left out", team, envoyTCPReq(web), false, false},
		{"when claim: in a list", groups, envoyHTTPReq(none, envoyClaims(map[string]any{"groups": []string{"dev", "admins"}})), false, true},
		{"when claim: a string", groups, envoyHTTPReq(none, envoyClaims(map[string]any{"groups": "admins"})), false, true},
		{"when claim: not in the list", groups, envoyHTTPReq(none, envoyClaims(map[string]any{"groups": []string{"dev"}})), false, false},
		{"when claim: not a string", groups, envoyHTTPReq(none, envoyClaims(map[string]any{"groups": 7})), false, false},
		{"when claim: no token", groups, envoyHTTPReq(web), false, false},
		{"when source.ip: in it", fromSubnet, envoyHTTPReq(none, envoyFrom("10.0.0.200")), false, true},
		{"when source.ip: outside", fromSubnet, envoyTCPReq(none, envoyFrom("10.9.9.9")), false, false},
		{"when destination.port: the port", toPort, envoyTCPReq(none), false, true},
		{"when destination.port: another port", toPort, envoyHTTPReq(none, envoyPort(9090)), false, false},
		{"when destination.ip: in it", toIP, envoyTCPReq(none), false, true},
		{"when destination.ip: outside", toIP, envoyTCPReq(none, envoyDest("10.0.2.10")), false, false},
		{"when connection.sni: matching", sni, envoyTCPReq(web, envoySNI("outbound_.8080_._.api.shop.svc.cluster.local")), false, true},
		{"when connection.sni: no SNI", sni, envoyTCPReq(web), false, false},
		{"DENY: both conditions", denyAdmin, envoyHTTPReq("spiffe://cluster.local/ns/blocked/sa/x", envoyPath("/admin/users")), false, false},
		{"DENY: another path", denyAdmin, envoyHTTPReq("spiffe://cluster.local/ns/blocked/sa/x", envoyPath("/public")), false, true},
		{"DENY: another caller", denyAdmin, envoyHTTPReq(web, envoyPath("/admin/users")), false, true},
		{"DENY on TCP: the path is left out, the rest kept", denyAdmin, envoyTCPReq("spiffe://cluster.local/ns/blocked/sa/x"), false, false},
		{"DENY on TCP: another caller", denyAdmin, envoyTCPReq(web), false, true},
		{"DENY with HTTP-only fields only, on TCP: denies everything", denyPost, envoyTCPReq(web), false, false},
		{"DENY and ALLOW: allowed, not denied", denyPost + exact, envoyHTTPReq(web), false, true},
		{"DENY and ALLOW: denied first", denyPost + exact, envoyHTTPReq(web, envoyMethod("POST")), false, false},
		{"DENY and ALLOW: not allowed", denyPost + exact, envoyHTTPReq(db), false, false},
		{"allow-nothing", nothing, envoyHTTPReq(web), false, false},
		{"allow-nothing on TCP", nothing, envoyTCPReq(web), false, false},
		{"allow-nothing and an ALLOW: allowed", nothing + exact, envoyHTTPReq(web), false, true},
		{"allow-nothing and an ALLOW: the others", nothing + exact, envoyTCPReq(db), false, false},
		{"dry-run ALLOW: enforces nothing", dryRun, envoyHTTPReq(db), false, true},
		{"dry-run ALLOW on TCP: enforces nothing", dryRun, envoyTCPReq(none), false, true},
		{"dry-run ALLOW and allow-nothing: denied", dryRun + nothing, envoyHTTPReq(web), false, false},
	}
	if len(rows) < 40 {
		t.Fatalf("%d rows: at least 40 wanted", len(rows))
	}
	builders := map[string]*builder.Builder{}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			key := fmt.Sprint(row.state, row.policies)
			b, ok := builders[key]
			if !ok {
				b = envoyBuilder(t, row.policies, row.state)
				builders[key] = b
			}
			filters, err := httpFilters(b)
			if !row.req.HTTP {
				filters, err = tcpFilters(b)
			}
			if err != nil {
				t.Fatal(err)
			}
			got, why, err := rbacVerdict(filters, row.req)
			if err != nil {
				t.Fatalf("rbacVerdict: %v\nfilters: %v", err, filters)
			}
			if got != row.want {
				t.Errorf("allowed = %v, want %v: %s\nfilters: %v", got, row.want, why, filters)
			}
		})
	}

	t.Run("hand-built", func(t *testing.T) { envoyHandBuilt(t) })
}

// envoyHandBuilt checks the matchers and behaviours Istio's builder does not emit, and the errors,
// on hand-built configurations; the verdicts are read from Envoy's API documentation.
func envoyHandBuilt(t *testing.T) {
	const web = "spiffe://cluster.local/ns/shop/sa/web"
	anyPerm := &rbacpb.Permission{Rule: &rbacpb.Permission_Any{Any: true}}
	anyID := &rbacpb.Principal{Identifier: &rbacpb.Principal_Any{Any: true}}
	filter := func(action rbacpb.RBAC_Action, perm *rbacpb.Permission, id *rbacpb.Principal) []*rbacpb.RBAC {
		return []*rbacpb.RBAC{{Action: action, Policies: map[string]*rbacpb.Policy{
			"p": {Permissions: []*rbacpb.Permission{perm}, Principals: []*rbacpb.Principal{id}}}}}
	}
	allowID := func(id *rbacpb.Principal) []*rbacpb.RBAC { return filter(rbacpb.RBAC_ALLOW, anyPerm, id) }
	allowPerm := func(perm *rbacpb.Permission) []*rbacpb.RBAC { return filter(rbacpb.RBAC_ALLOW, perm, anyID) }
	cidr := func(prefix string, bits uint32) *corepb.CidrRange {
		return &corepb.CidrRange{AddressPrefix: prefix, PrefixLen: wrapperspb.UInt32(bits)}
	}
	str := func(m *matcherpb.StringMatcher) *matcherpb.StringMatcher { return m }
	exact := func(s string) *matcherpb.StringMatcher {
		return &matcherpb.StringMatcher{MatchPattern: &matcherpb.StringMatcher_Exact{Exact: s}}
	}
	regex := func(s string) *matcherpb.StringMatcher {
		return &matcherpb.StringMatcher{MatchPattern: &matcherpb.StringMatcher_SafeRegex{SafeRegex: &matcherpb.RegexMatcher{Regex: s}}}
	}
	header := func(h *routepb.HeaderMatcher) *rbacpb.Principal {
		return &rbacpb.Principal{Identifier: &rbacpb.Principal_Header{Header: h}}
	}
	jwt := func(invert bool, v *matcherpb.ValueMatcher, path ...string) *rbacpb.Principal {
		m := &matcherpb.MetadataMatcher{Filter: envoyJWTFilter, Invert: invert, Value: v}
		for _, k := range append([]string{envoyJWTPayloadKey}, path...) {
			m.Path = append(m.Path, &matcherpb.MetadataMatcher_PathSegment{Segment: &matcherpb.MetadataMatcher_PathSegment_Key{Key: k}})
		}
		return &rbacpb.Principal{Identifier: &rbacpb.Principal_Metadata{Metadata: m}}
	}
	present := &matcherpb.ValueMatcher{MatchPattern: &matcherpb.ValueMatcher_PresentMatch{PresentMatch: true}}
	strValue := func(s string) *matcherpb.ValueMatcher {
		return &matcherpb.ValueMatcher{MatchPattern: &matcherpb.ValueMatcher_StringMatch{StringMatch: exact(s)}}
	}
	template := func(tmpl string) *rbacpb.Permission {
		a, err := anypb.New(&uritemplatepb.UriTemplateMatchConfig{PathTemplate: tmpl})
		if err != nil {
			t.Fatal(err)
		}
		return &rbacpb.Permission{Rule: &rbacpb.Permission_UriTemplate{UriTemplate: &corepb.TypedExtensionConfig{Name: "uri-template", TypedConfig: a}}}
	}
	claims := envoyClaims(map[string]any{"iss": "i", "sub": "alice", "n": 3, "roles": []any{"a", map[string]any{"x": "y"}}})

	rows := []struct {
		name    string
		filters []*rbacpb.RBAC
		req     envoyRequest
		want    bool
		wantErr string // a part of the error; the verdict is not checked then
	}{
		{name: "no filter", req: envoyHTTPReq(web), want: true},
		{name: "a filter with only shadow rules", filters: []*rbacpb.RBAC{nil}, req: envoyHTTPReq(web), want: true},
		{name: "ALLOW without policies", filters: []*rbacpb.RBAC{{Action: rbacpb.RBAC_ALLOW}}, req: envoyHTTPReq(web), want: false},
		{name: "DENY without policies", filters: []*rbacpb.RBAC{{Action: rbacpb.RBAC_DENY}}, req: envoyHTTPReq(web), want: true},
		{name: "LOG, matching, passes", filters: filter(rbacpb.RBAC_LOG, anyPerm, anyID), req: envoyHTTPReq(web), want: true},
		{name: "DENY then ALLOW: the DENY decides", filters: append(filter(rbacpb.RBAC_DENY, anyPerm, anyID), filter(rbacpb.RBAC_ALLOW, anyPerm, anyID)...), req: envoyHTTPReq(web), want: false},
		{name: "authenticated without a name: mTLS", filters: allowID(&rbacpb.Principal{Identifier: &rbacpb.Principal_Authenticated_{Authenticated: &rbacpb.Principal_Authenticated{}}}), req: envoyTCPReq(web), want: true},
		{name: "authenticated without a name: no mTLS", filters: allowID(&rbacpb.Principal{Identifier: &rbacpb.Principal_Authenticated_{Authenticated: &rbacpb.Principal_Authenticated{}}}), req: envoyTCPReq(""), want: false},
		{name: "authenticated: the empty subject is tried last", filters: allowID(&rbacpb.Principal{Identifier: &rbacpb.Principal_Authenticated_{Authenticated: &rbacpb.Principal_Authenticated{PrincipalName: regex("x*")}}}), req: envoyTCPReq(web), want: true},
		{name: "source_ip: the direct peer", filters: allowID(&rbacpb.Principal{Identifier: &rbacpb.Principal_SourceIp{SourceIp: cidr("10.0.0.0", 8)}}), req: envoyHTTPReq("", envoyFrom("10.1.2.3"), envoyVia("192.168.0.1")), want: true},
		{name: "remote_ip: the peer when nothing forwards", filters: allowID(&rbacpb.Principal{Identifier: &rbacpb.Principal_RemoteIp{RemoteIp: cidr("10.1.2.3", 32)}}), req: envoyHTTPReq("", envoyFrom("10.1.2.3")), want: true},
		{name: "CIDR: the prefix is masked", filters: allowID(&rbacpb.Principal{Identifier: &rbacpb.Principal_DirectRemoteIp{DirectRemoteIp: cidr("10.1.2.3", 16)}}), req: envoyHTTPReq("", envoyFrom("10.1.200.1")), want: true},
		{name: "CIDR: an IPv4-mapped IPv6 peer is not in an IPv4 range", filters: allowID(&rbacpb.Principal{Identifier: &rbacpb.Principal_DirectRemoteIp{DirectRemoteIp: cidr("10.0.0.0", 8)}}), req: envoyHTTPReq("", envoyFrom("::ffff:10.1.2.3")), want: false},
		{name: "url_path principal: without the query", filters: allowID(&rbacpb.Principal{Identifier: &rbacpb.Principal_UrlPath{UrlPath: &matcherpb.PathMatcher{Rule: &matcherpb.PathMatcher_Path{Path: exact("/admin")}}}}), req: envoyHTTPReq("", envoyPath("/admin#top")), want: true},
		{name: "url_path on TCP", filters: allowID(&rbacpb.Principal{Identifier: &rbacpb.Principal_UrlPath{UrlPath: &matcherpb.PathMatcher{Rule: &matcherpb.PathMatcher_Path{Path: regex(".*")}}}}), req: envoyTCPReq(""), want: false},
		{name: "header :path keeps the query", filters: allowID(header(&routepb.HeaderMatcher{Name: ":path", HeaderMatchSpecifier: &routepb.HeaderMatcher_StringMatch{StringMatch: exact("/a")}})), req: envoyHTTPReq("", envoyPath("/a?b")), want: false},
		{name: "header name case-insensitive", filters: allowID(header(&routepb.HeaderMatcher{Name: "X-Team", HeaderMatchSpecifier: &routepb.HeaderMatcher_StringMatch{StringMatch: exact("a")}})), req: envoyHTTPReq("", envoyHeader("x-team", "a")), want: true},
		{name: "header exact_match empty: any value", filters: allowID(header(&routepb.HeaderMatcher{Name: "x-a", HeaderMatchSpecifier: &routepb.HeaderMatcher_ExactMatch{ExactMatch: ""}})), req: envoyHTTPReq("", envoyHeader("x-a", "anything")), want: true},
		{name: "header exact_match", filters: allowID(header(&routepb.HeaderMatcher{Name: "x-a", HeaderMatchSpecifier: &routepb.HeaderMatcher_ExactMatch{ExactMatch: "v"}})), req: envoyHTTPReq("", envoyHeader("x-a", "V")), want: false},
		{name: "header prefix_match", filters: allowID(header(&routepb.HeaderMatcher{Name: "authorization", HeaderMatchSpecifier: &routepb.HeaderMatcher_PrefixMatch{PrefixMatch: "Bearer "}})), req: envoyHTTPReq("", envoyHeader("authorization", "Bearer x")), want: true},
		{name: "header suffix_match", filters: allowID(header(&routepb.HeaderMatcher{Name: "x-a", HeaderMatchSpecifier: &routepb.HeaderMatcher_SuffixMatch{SuffixMatch: "-prod"}})), req: envoyHTTPReq("", envoyHeader("x-a", "eu-dev")), want: false},
		{name: "header contains_match", filters: allowID(header(&routepb.HeaderMatcher{Name: "x-a", HeaderMatchSpecifier: &routepb.HeaderMatcher_ContainsMatch{ContainsMatch: "abcd"}})), req: envoyHTTPReq("", envoyHeader("x-a", "xyzabcdpqr")), want: true},
		{name: "header safe_regex_match is a full match", filters: allowID(header(&routepb.HeaderMatcher{Name: "x-a", HeaderMatchSpecifier: &routepb.HeaderMatcher_SafeRegexMatch{SafeRegexMatch: &matcherpb.RegexMatcher{Regex: `\d{3}`}}})), req: envoyHTTPReq("", envoyHeader("x-a", "1234")), want: false},
		{name: "header invert_match", filters: allowID(header(&routepb.HeaderMatcher{Name: "x-a", InvertMatch: true, HeaderMatchSpecifier: &routepb.HeaderMatcher_SafeRegexMatch{SafeRegexMatch: &matcherpb.RegexMatcher{Regex: `\d{3}`}}})), req: envoyHTTPReq("", envoyHeader("x-a", "1234")), want: true},
		{name: "header invert_match: a missing header does not match", filters: allowID(header(&routepb.HeaderMatcher{Name: "x-a", InvertMatch: true, HeaderMatchSpecifier: &routepb.HeaderMatcher_StringMatch{StringMatch: exact("v")}})), req: envoyHTTPReq(""), want: false},
		{name: "header treat_missing_header_as_empty", filters: allowID(header(&routepb.HeaderMatcher{Name: "x-a", TreatMissingHeaderAsEmpty: true, HeaderMatchSpecifier: &routepb.HeaderMatcher_StringMatch{StringMatch: regex("^$")}})), req: envoyHTTPReq(""), want: true},
		{name: "header treat_missing_header_as_empty, inverted", filters: allowID(header(&routepb.HeaderMatcher{Name: "x-a", TreatMissingHeaderAsEmpty: true, InvertMatch: true, HeaderMatchSpecifier: &routepb.HeaderMatcher_StringMatch{StringMatch: exact("v")}})), req: envoyTCPReq(""), want: true},
		{name: "header present_match false: missing", filters: allowID(header(&routepb.HeaderMatcher{Name: "x-a", HeaderMatchSpecifier: &routepb.HeaderMatcher_PresentMatch{PresentMatch: false}})), req: envoyHTTPReq(""), want: true},
		{name: "header present_match false on TCP: no headers", filters: allowID(header(&routepb.HeaderMatcher{Name: "x-a", HeaderMatchSpecifier: &routepb.HeaderMatcher_PresentMatch{PresentMatch: false}})), req: envoyTCPReq(""), want: true},
		{name: "header present_match true, inverted: missing", filters: allowID(header(&routepb.HeaderMatcher{Name: "x-a", InvertMatch: true, HeaderMatchSpecifier: &routepb.HeaderMatcher_PresentMatch{PresentMatch: true}})), req: envoyHTTPReq(""), want: true},
		{name: "header without a specifier: present", filters: allowID(header(&routepb.HeaderMatcher{Name: "x-a"})), req: envoyHTTPReq("", envoyHeader("x-a", "")), want: true},
		{name: "string contains, ignore_case", filters: allowID(header(&routepb.HeaderMatcher{Name: "x-a", HeaderMatchSpecifier: &routepb.HeaderMatcher_StringMatch{StringMatch: str(&matcherpb.StringMatcher{IgnoreCase: true, MatchPattern: &matcherpb.StringMatcher_Contains{Contains: "bearer"}})}})), req: envoyHTTPReq("", envoyHeader("x-a", "x BEARER y")), want: true},
		{name: "string ignore_case does not apply to safe_regex", filters: allowID(header(&routepb.HeaderMatcher{Name: "x-a", HeaderMatchSpecifier: &routepb.HeaderMatcher_StringMatch{StringMatch: str(&matcherpb.StringMatcher{IgnoreCase: true, MatchPattern: &matcherpb.StringMatcher_SafeRegex{SafeRegex: &matcherpb.RegexMatcher{Regex: "abc"}}})}})), req: envoyHTTPReq("", envoyHeader("x-a", "ABC")), want: false},
		{name: "string ignore_case folds ASCII only", filters: allowID(header(&routepb.HeaderMatcher{Name: "x-a", HeaderMatchSpecifier: &routepb.HeaderMatcher_StringMatch{StringMatch: str(&matcherpb.StringMatcher{IgnoreCase: true, MatchPattern: &matcherpb.StringMatcher_Exact{Exact: "é"}})}})), req: envoyHTTPReq("", envoyHeader("x-a", "É")), want: false},
		{name: "metadata present_match", filters: allowID(jwt(false, present, "sub")), req: envoyHTTPReq("", claims), want: true},
		{name: "metadata present_match: a list", filters: allowID(jwt(false, present, "roles")), req: envoyHTTPReq("", claims), want: true},
		{name: "metadata present_match: no token", filters: allowID(jwt(false, present, "sub")), req: envoyHTTPReq(""), want: false},
		{name: "metadata invert: no token", filters: allowID(jwt(true, strValue("alice"), "sub")), req: envoyHTTPReq(""), want: true},
		{name: "metadata invert on TCP", filters: allowID(jwt(true, present, "sub")), req: envoyTCPReq(""), want: true},
		{name: "metadata string_match on a number", filters: allowID(jwt(false, strValue("3"), "n")), req: envoyHTTPReq("", claims), want: false},
		{name: "metadata path through a string", filters: allowID(jwt(false, present, "sub", "x")), req: envoyHTTPReq("", claims), want: false},
		{name: "metadata list one_of skips other kinds", filters: allowID(jwt(false, &matcherpb.ValueMatcher{MatchPattern: &matcherpb.ValueMatcher_ListMatch{ListMatch: &matcherpb.ListMatcher{MatchPattern: &matcherpb.ListMatcher_OneOf{OneOf: strValue("a")}}}}, "roles")), req: envoyHTTPReq("", claims), want: true},
		{name: "metadata list_match on a string", filters: allowID(jwt(false, &matcherpb.ValueMatcher{MatchPattern: &matcherpb.ValueMatcher_ListMatch{ListMatch: &matcherpb.ListMatcher{MatchPattern: &matcherpb.ListMatcher_OneOf{OneOf: strValue("alice")}}}}, "sub")), req: envoyHTTPReq("", claims), want: false},
		{name: "metadata nested struct", filters: allowID(jwt(false, strValue("y"), "roles", "x")), req: envoyHTTPReq("", envoyClaims(map[string]any{"roles": map[string]any{"x": "y"}})), want: true},
		{name: "metadata: a token without the claim", filters: allowID(jwt(false, present, "groups")), req: envoyHTTPReq("", claims), want: false},
		{name: "metadata as a permission", filters: allowPerm(&rbacpb.Permission{Rule: &rbacpb.Permission_Metadata{Metadata: jwt(false, strValue("alice"), "sub").GetMetadata()}}), req: envoyHTTPReq("", claims), want: true},
		{name: "sourced_metadata, dynamic, as a permission", filters: allowPerm(&rbacpb.Permission{Rule: &rbacpb.Permission_SourcedMetadata{SourcedMetadata: &rbacpb.SourcedMetadata{MetadataMatcher: jwt(false, strValue("i"), "iss").GetMetadata()}}}), req: envoyHTTPReq("", claims), want: true},
		{name: "sourced_metadata, dynamic, as a principal", filters: allowID(&rbacpb.Principal{Identifier: &rbacpb.Principal_SourcedMetadata{SourcedMetadata: &rbacpb.SourcedMetadata{MetadataMatcher: jwt(false, strValue("bob"), "sub").GetMetadata()}}}), req: envoyHTTPReq("", claims), want: false},
		{name: "filter_state: no mTLS", filters: allowID(&rbacpb.Principal{Identifier: &rbacpb.Principal_FilterState{FilterState: &matcherpb.FilterStateMatcher{Key: envoyPeerPrincipalKey, Matcher: &matcherpb.FilterStateMatcher_StringMatch{StringMatch: regex(".*")}}}}), req: envoyHTTPReq(""), want: false},
		{name: "destination_port_range: the last port", filters: allowPerm(&rbacpb.Permission{Rule: &rbacpb.Permission_DestinationPortRange{DestinationPortRange: &typepb.Int32Range{Start: 8000, End: 8080}}}), req: envoyTCPReq("", envoyPort(8079)), want: true},
		{name: "destination_port_range: the end is excluded", filters: allowPerm(&rbacpb.Permission{Rule: &rbacpb.Permission_DestinationPortRange{DestinationPortRange: &typepb.Int32Range{Start: 8000, End: 8080}}}), req: envoyTCPReq(""), want: false},
		{name: "requested_server_name: no SNI is the empty name", filters: allowPerm(&rbacpb.Permission{Rule: &rbacpb.Permission_RequestedServerName{RequestedServerName: exact("")}}), req: envoyTCPReq(""), want: true},
		{name: "and_rules, or_rules, not_rule", filters: allowPerm(&rbacpb.Permission{Rule: &rbacpb.Permission_AndRules{AndRules: &rbacpb.Permission_Set{Rules: []*rbacpb.Permission{
			{Rule: &rbacpb.Permission_OrRules{OrRules: &rbacpb.Permission_Set{Rules: []*rbacpb.Permission{{Rule: &rbacpb.Permission_DestinationPort{DestinationPort: 1}}, {Rule: &rbacpb.Permission_DestinationPort{DestinationPort: 8080}}}}}},
			{Rule: &rbacpb.Permission_NotRule{NotRule: &rbacpb.Permission{Rule: &rbacpb.Permission_DestinationIp{DestinationIp: cidr("10.0.1.10", 32)}}}},
		}}}}), req: envoyTCPReq(""), want: false},
		{name: "uri_template doc example: **.mpd", filters: allowPerm(template("/**.mpd")), req: envoyHTTPReq("", envoyPath("/content/123/india/dash/55/manifest.mpd")), want: true},
		{name: "uri_template doc example: */*/*.m4s", filters: allowPerm(template("/videos/*/*/*.m4s")), req: envoyHTTPReq("", envoyPath("/videos/123414/hls/1080p5000_00001.m4s")), want: true},
		{name: "uri_template: a literal after **", filters: allowPerm(template("/api/**/items")), req: envoyHTTPReq("", envoyPath("/api/a/b/items")), want: true},
		{name: "uri_template: a trailing slash", filters: allowPerm(template("/api/*/")), req: envoyHTTPReq("", envoyPath("/api/x")), want: false},
		{name: "uri_template on TCP", filters: allowPerm(template("/**")), req: envoyTCPReq(""), want: false},

		{name: "error: a CEL condition", filters: []*rbacpb.RBAC{{Action: rbacpb.RBAC_ALLOW, Policies: map[string]*rbacpb.Policy{"p": {Permissions: []*rbacpb.Permission{anyPerm}, Principals: []*rbacpb.Principal{anyID}, Condition: &exprpb.Expr{}}}}}, req: envoyHTTPReq(""), wantErr: "CEL"},
		{name: "error: a policy without principals", filters: []*rbacpb.RBAC{{Action: rbacpb.RBAC_ALLOW, Policies: map[string]*rbacpb.Policy{"p": {Permissions: []*rbacpb.Permission{anyPerm}}}}}, req: envoyHTTPReq(""), wantErr: "Envoy rejects"},
		{name: "error: any false", filters: allowPerm(&rbacpb.Permission{Rule: &rbacpb.Permission_Any{Any: false}}), req: envoyHTTPReq(""), wantErr: "Envoy rejects"},
		{name: "error: a permission matcher extension", filters: allowPerm(&rbacpb.Permission{Rule: &rbacpb.Permission_Matcher{Matcher: &corepb.TypedExtensionConfig{Name: "x", TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/x"}}}}), req: envoyHTTPReq(""), wantErr: "not implemented"},
		{name: "error: a custom principal", filters: allowID(&rbacpb.Principal{Identifier: &rbacpb.Principal_Custom{Custom: &corepb.TypedExtensionConfig{Name: "x", TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/x"}}}}), req: envoyHTTPReq(""), wantErr: "not implemented"},
		{name: "error: header range_match, even on TCP", filters: allowID(header(&routepb.HeaderMatcher{Name: "x-a", HeaderMatchSpecifier: &routepb.HeaderMatcher_RangeMatch{RangeMatch: &typepb.Int64Range{Start: 0, End: 10}}})), req: envoyTCPReq(""), wantErr: "not implemented"},
		{name: "error: value double_match, even without a token", filters: allowID(jwt(false, &matcherpb.ValueMatcher{MatchPattern: &matcherpb.ValueMatcher_DoubleMatch{DoubleMatch: &matcherpb.DoubleMatcher{MatchPattern: &matcherpb.DoubleMatcher_Exact{Exact: 3}}}}, "n")), req: envoyHTTPReq(""), wantErr: "not implemented"},
		{name: "error: another filter's metadata", filters: allowID(&rbacpb.Principal{Identifier: &rbacpb.Principal_Metadata{Metadata: &matcherpb.MetadataMatcher{Filter: "istio_authn", Path: []*matcherpb.MetadataMatcher_PathSegment{{Segment: &matcherpb.MetadataMatcher_PathSegment_Key{Key: "k"}}}, Value: present}}}), req: envoyHTTPReq(""), wantErr: "not modelled"},
		{name: "error: route metadata", filters: allowID(&rbacpb.Principal{Identifier: &rbacpb.Principal_SourcedMetadata{SourcedMetadata: &rbacpb.SourcedMetadata{MetadataSource: rbacpb.MetadataSource_ROUTE, MetadataMatcher: &matcherpb.MetadataMatcher{Filter: envoyJWTFilter, Path: []*matcherpb.MetadataMatcher_PathSegment{{Segment: &matcherpb.MetadataMatcher_PathSegment_Key{Key: "k"}}}, Value: present}}}}), req: envoyHTTPReq(""), wantErr: "not implemented"},
		{name: "error: another filter state", filters: allowID(&rbacpb.Principal{Identifier: &rbacpb.Principal_FilterState{FilterState: &matcherpb.FilterStateMatcher{Key: "other", Matcher: &matcherpb.FilterStateMatcher_StringMatch{StringMatch: exact("")}}}}), req: envoyHTTPReq(""), wantErr: "not modelled"},
		{name: "error: a uri_template variable", filters: allowPerm(template("/a/{name}")), req: envoyHTTPReq(""), wantErr: "not implemented"},
		{name: "error: a uri_template operator after **", filters: allowPerm(template("/**/*")), req: envoyHTTPReq(""), wantErr: "Envoy rejects"},
		{name: "error: a uri_template literal outside pchar", filters: allowPerm(template("/a b")), req: envoyHTTPReq(""), wantErr: "Envoy rejects"},
		{name: "error: a uri_template literal with an operator inside", filters: allowPerm(template("/a*")), req: envoyHTTPReq(""), wantErr: "Envoy rejects"},
		{name: "error: a uri_template suffix followed by a segment", filters: allowPerm(template("/*.x/y")), req: envoyHTTPReq(""), wantErr: "Envoy rejects"},
		{name: "error: a CIDR longer than the address", filters: allowID(&rbacpb.Principal{Identifier: &rbacpb.Principal_DirectRemoteIp{DirectRemoteIp: cidr("10.0.0.0", 33)}}), req: envoyHTTPReq(""), wantErr: "exceeds"},
		{name: "error: destination_ip without a destination", filters: allowPerm(&rbacpb.Permission{Rule: &rbacpb.Permission_DestinationIp{DestinationIp: cidr("10.0.0.0", 8)}}), req: envoyRequest{SourceIP: netip.MustParseAddr("10.0.0.5")}, wantErr: "no destination"},
		{name: "error: a bad regex", filters: allowID(&rbacpb.Principal{Identifier: &rbacpb.Principal_Authenticated_{Authenticated: &rbacpb.Principal_Authenticated{PrincipalName: regex("(")}}}), req: envoyHTTPReq(""), wantErr: "regex"},
		{name: "error: a TCP request with headers", filters: nil, req: envoyRequest{Headers: map[string]string{"x": "y"}}, wantErr: "TCP request"},
		{name: "error: an upper-case header name", filters: nil, req: envoyHTTPReq("", envoyHeader("X-A", "v")), wantErr: "lower-case"},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			got, why, err := rbacVerdict(row.filters, row.req)
			if row.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), row.wantErr) {
					t.Fatalf("error %v, want one with %q", err, row.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != row.want {
				t.Errorf("allowed = %v, want %v: %s", got, row.want, why)
			}
		})
	}
}
