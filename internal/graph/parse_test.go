package graph

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func num(n int32) Port       { return Port{Port: intstr.FromInt32(n)} }
func name(s string) Port     { return Port{Port: intstr.FromString(s)} }
func ports(p ...Port) []Port { return p }

var (
	label63 = strings.Repeat("a", 63)
	label64 = strings.Repeat("a", 64)
)

func TestParseEdgeValid(t *testing.T) {
	tests := []struct {
		in   string
		want Edge
	}{
		{"web->api:8080", Edge{From: "web", To: "api", Ports: ports(num(8080))}},
		{"web→api:8080", Edge{From: "web", To: "api", Ports: ports(num(8080))}},
		{"web -> api:8080", Edge{From: "web", To: "api", Ports: ports(num(8080))}},
		{"web   →  api:8080", Edge{From: "web", To: "api", Ports: ports(num(8080))}},
		{"api->database:5432/data", Edge{From: "api", To: "database", Ports: ports(num(5432)), Paths: []string{"/data"}}},
		{"api -> payments/gateway:443", Edge{From: "api", ToNamespace: "payments", To: "gateway", Ports: ports(num(443))}},
		{"payments/gateway -> api:8081", Edge{FromNamespace: "payments", From: "gateway", To: "api", Ports: ports(num(8081))}},
		{"shop/web→shop/api:8080", Edge{FromNamespace: "shop", From: "web", ToNamespace: "shop", To: "api", Ports: ports(num(8080))}},
		{"web->api:8080,8443,http", Edge{From: "web", To: "api", Ports: ports(num(8080), num(8443), name("http"))}},
		{"web->api:http/v1/*", Edge{From: "web", To: "api", Ports: ports(name("http")), Paths: []string{"/v1/*"}}},
		{"web->api:80/", Edge{From: "web", To: "api", Ports: ports(num(80)), Paths: []string{"/"}}},
		{"web->api:80/*", Edge{From: "web", To: "api", Ports: ports(num(80)), Paths: []string{"/*"}}},
		{"web->api:80/a,b?q=%20#x", Edge{From: "web", To: "api", Ports: ports(num(80)), Paths: []string{"/a,b?q=%20#x"}}},
		{"a->b:1", Edge{From: "a", To: "b", Ports: ports(num(1))}},
		{"a->b:65535", Edge{From: "a", To: "b", Ports: ports(num(65535))}},
		{"web-1->api-2:8080-tcp", Edge{From: "web-1", To: "api-2", Ports: ports(name("8080-tcp"))}},
		{"0->9:0a,a0,1-a,a-1", Edge{From: "0", To: "9", Ports: ports(name("0a"), name("a0"), name("1-a"), name("a-1"))}},
		{"web->api:abcdefghijklmno", Edge{From: "web", To: "api", Ports: ports(name("abcdefghijklmno"))}},
		{label63 + "->" + label63 + "/" + label63 + ":80", Edge{From: label63, ToNamespace: label63, To: label63, Ports: ports(num(80))}},
		// A self-edge parses: whether it makes sense is for the graph to say.
		{"web->web:80", Edge{From: "web", To: "web", Ports: ports(num(80))}},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseEdge(tc.in)
			if err != nil {
				t.Fatalf("ParseEdge(%q): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseEdge(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

// invalidEdges are syntax errors and their exact messages. The CRD pattern test and the fuzz seed
// corpus reuse the inputs.
var invalidEdges = []struct{ in, want string }{
	{"", `edge "": column 1: expected a service name, found the end of the edge`},
	{"web", `edge "web": column 4: expected "->" or "→", found the end of the edge`},
	{"web->api", `edge "web->api": column 9: expected ":" and a port, found the end of the edge`},
	{"web->api:", `edge "web->api:": column 10: expected a port (a number or a port name), found the end of the edge`},
	{"web->api:0", `edge "web->api:0": column 10: port must be 1-65535`},
	{"web->api:65536", `edge "web->api:65536": column 10: port must be 1-65535`},
	{"web->api:99999999999999999999", `edge "web->api:99999999999999999999": column 10: port must be 1-65535`},
	{"web->api:08080", `edge "web->api:08080": column 10: port must not have a leading zero`},
	{"web->api:8080,", `edge "web->api:8080,": column 15: expected a port (a number or a port name), found the end of the edge`},
	{"web->api:8080,,80", `edge "web->api:8080,,80": column 15: expected a port (a number or a port name), found ","`},
	{"web->api:HTTP", `edge "web->api:HTTP": column 10: expected a port (a number or a port name), found "H"`},
	{"web->api:http-", `edge "web->api:http-": column 10: port name must start and end with a lowercase letter or digit`},
	{"web->api:-http", `edge "web->api:-http": column 10: port name must start and end with a lowercase letter or digit`},
	{"web->api:ht--tp", `edge "web->api:ht--tp": column 10: port name must not contain "--"`},
	{"api->database:5432data", `edge "api->database:5432data": column 15: port "5432data": did you mean 5432/data? A port name that starts with a port number is refused: it is most likely a forgotten "/"`},
	{"api->database:80,8443v1/x", `edge "api->database:80,8443v1/x": column 18: port "8443v1": did you mean 8443/v1? A port name that starts with a port number is refused: it is most likely a forgotten "/"`},
	{"web->api:abcdefghijklmnop", `edge "web->api:abcdefghijklmnop": column 10: port name must be at most 15 characters`},
	{"web->api:80-80", `edge "web->api:80-80": column 10: port name must contain a letter`},
	{"web->api:80 ", `edge "web->api:80 ": column 12: expected ",", "/" and a path, or the end of the edge, found " "`},
	{"web->api:80:90", `edge "web->api:80:90": column 12: expected ",", "/" and a path, or the end of the edge, found ":"`},
	{"web->api:80/a b", `edge "web->api:80/a b": column 14: a path takes printable ASCII characters other than space, found " "`},
	{"web->api:80/a\tb", `edge "web->api:80/a\tb": column 14: a path takes printable ASCII characters other than space, found "\t"`},
	{"web->api:80/é", `edge "web->api:80/é": column 13: a path takes printable ASCII characters other than space, found "é"`},
	{"web->api:80/a*b", `edge "web->api:80/a*b": column 14: "*" may only end a path (a prefix match)`},
	{"web->api:80/**", `edge "web->api:80/**": column 13: "*" may only end a path (a prefix match)`},
	{"Web->api:80", `edge "Web->api:80": column 1: expected a service name, found "W"`},
	{" web->api:80", `edge " web->api:80": column 1: expected a service name, found " "`},
	{"-web->api:80", `edge "-web->api:80": column 1: service name must start and end with a lowercase letter or digit`},
	{"web-->api:80", `edge "web-->api:80": column 1: service name must start and end with a lowercase letter or digit`},
	{"web->-api:80", `edge "web->-api:80": column 6: service name must start and end with a lowercase letter or digit`},
	{"web->api-:80", `edge "web->api-:80": column 6: service name must start and end with a lowercase letter or digit`},
	{label64 + "->api:80", `edge "` + label64 + `->api:80": column 1: service name must be at most 63 characters`},
	{"web->" + label64 + "/api:80", `edge "web->` + label64 + `/api:80": column 6: namespace must be at most 63 characters`},
	{"web->pay-/api:80", `edge "web->pay-/api:80": column 6: namespace must start and end with a lowercase letter or digit`},
	{"web->pay/:80", `edge "web->pay/:80": column 10: expected a service name, found ":"`},
	{"web->Pay/api:80", `edge "web->Pay/api:80": column 6: expected a service name, found "P"`},
	{"web->pay/api/x:80", `edge "web->pay/api/x:80": column 13: expected ":" and a port, found "/"`},
	{"pay/web/x->api:80", `edge "pay/web/x->api:80": column 8: expected "->" or "→", found "/"`},
	{"pay-/web->api:80", `edge "pay-/web->api:80": column 1: namespace must start and end with a lowercase letter or digit`},
	{"pay/->api:80", `edge "pay/->api:80": column 5: expected a service name, found "-"`},
	{label64 + "/web->api:80", `edge "` + label64 + `/web->api:80": column 1: namespace must be at most 63 characters`},
	{"web=>api:80", `edge "web=>api:80": column 4: expected "->" or "→", found "="`},
	{"web- >api:80", `edge "web- >api:80": column 1: service name must start and end with a lowercase letter or digit`},
	{"web > api:80", `edge "web > api:80": column 5: expected "->" or "→", found ">"`},
	{"web\t->api:80", `edge "web\t->api:80": column 4: expected "->" or "→", found "\t"`},
	// Look-alike arrows: columns count characters, not bytes.
	{"web⟶api:80", `edge "web⟶api:80": column 4: expected "->" or "→", found "⟶"`},
	{"web−>api:80", `edge "web−>api:80": column 4: expected "->" or "→", found "−"`},
	{"web➔api:80", `edge "web➔api:80": column 4: expected "->" or "→", found "➔"`},
	{"web⇒api:80", `edge "web⇒api:80": column 4: expected "->" or "→", found "⇒"`},
	{"web→→api:80", `edge "web→→api:80": column 5: expected a service name, found "→"`},
	{"wéb→api:80", `edge "wéb→api:80": column 2: expected "->" or "→", found "é"`},
	{"web→api:8O", `edge "web→api:8O": column 10: expected ",", "/" and a path, or the end of the edge, found "O"`},
	{"web→api:80/→", `edge "web→api:80/→": column 12: a path takes printable ASCII characters other than space, found "→"`},
	{"web\xff->api:80", `edge "web\xff->api:80": column 4: expected "->" or "→", found "�"`},
}

func TestParseEdgeInvalid(t *testing.T) {
	for _, tc := range invalidEdges {
		t.Run(tc.in, func(t *testing.T) {
			e, err := ParseEdge(tc.in)
			if err == nil {
				t.Fatalf("ParseEdge(%q) = %+v, want error %s", tc.in, e, tc.want)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("ParseEdge(%q) error\n got: %s\nwant: %s", tc.in, got, tc.want)
			}
			if _, ok := err.(*ParseError); !ok {
				t.Errorf("error is a %T, want *ParseError", err)
			}
		})
	}
}

func TestEdgeStringRoundTrip(t *testing.T) {
	for _, in := range []string{"web -> api:8080", "web→pay/api:80,http/a/*", "a->b:1"} {
		e, err := ParseEdge(in)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseEdge(e.String())
		if err != nil {
			t.Fatalf("ParseEdge(%q): %v", e.String(), err)
		}
		if diff := cmp.Diff(e, again); diff != "" {
			t.Errorf("%q -> %q: (-first +again)\n%s", in, e.String(), diff)
		}
	}
}
