package compiler

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestIstioProtocol(t *testing.T) {
	tests := []struct {
		port     KubeServicePort
		protocol string
	}{
		{KubeServicePort{Name: "http", Port: 80}, "HTTP"},
		{KubeServicePort{Name: "http-web", Port: 80}, "HTTP"},
		{KubeServicePort{Name: "HTTP2-api", Port: 80}, "HTTP2"},
		{KubeServicePort{Name: "grpc-web", Port: 80}, "GRPC-Web"},
		{KubeServicePort{Name: "grpc-webui", Port: 80}, "GRPC-Web"},
		{KubeServicePort{Name: "grpc", Port: 80}, "GRPC"},
		{KubeServicePort{Name: "tcp-postgres", Port: 5432}, "TCP"},
		{KubeServicePort{Name: "mongo", Port: 27017}, "Mongo"},
		{KubeServicePort{Name: "https", Port: 443}, "HTTPS"},
		{KubeServicePort{Name: "tls-x", Port: 443}, "TLS"},
		{KubeServicePort{Name: "web", Port: 8080}, ""},
		{KubeServicePort{Port: 8080}, ""},
		{KubeServicePort{Name: "db", Port: 3306}, "TCP"},
		{KubeServicePort{Port: 53}, "TCP"},
		{KubeServicePort{Name: "http", Port: 80, AppProtocol: "tcp"}, "TCP"},
		{KubeServicePort{Name: "tcp", Port: 80, AppProtocol: "http"}, "HTTP"},
		{KubeServicePort{Name: "x", Port: 80, AppProtocol: "kubernetes.io/h2c"}, "HTTP2"},
		{KubeServicePort{Name: "x", Port: 80, AppProtocol: "kubernetes.io/ws"}, "HTTP"},
		{KubeServicePort{Name: "x", Port: 80, AppProtocol: "kubernetes.io/wss"}, "HTTPS"},
		{KubeServicePort{Name: "http", Port: 80, AppProtocol: "postgresql"}, ""},
		{KubeServicePort{Name: "http", Port: 80, Protocol: corev1.ProtocolUDP}, "UDP"},
	}
	for _, tt := range tests {
		if got, _ := IstioProtocol(tt.port); got != tt.protocol {
			t.Errorf("%+v: %q, want %q", tt.port, got, tt.protocol)
		}
	}
}

func TestProtocolMismatches(t *testing.T) {
	seed := readGraph(t, "testdata/input/seed.yaml") // api→database:5432/data
	service := func(name string, selector map[string]string, ports ...KubeServicePort) KubeService {
		return KubeService{Name: name, Namespace: "shop", Selector: selector, Ports: ports}
	}
	database := map[string]string{"app": "database"}
	tests := []struct {
		name     string
		services []KubeService
		want     []string // parts of the one mismatch's text; none when there is no mismatch
	}{
		{"no Service: Istio sniffs", nil, nil},
		{"a port named tcp-", []KubeService{service("database", database, KubeServicePort{Name: "tcp-postgres", Port: 5432})},
			[]string{"edge api->shop/database:5432/data", "Service shop/database port 5432 (tcp-postgres) declares TCP (its name tcp-postgres)"}},
		{"appProtocol tcp on a target port", []KubeService{service("db", database, KubeServicePort{Name: "data", Port: 80, TargetPort: intstr.FromInt32(5432), AppProtocol: "tcp"})},
			[]string{"Service shop/db port 80 (data) declares TCP (appProtocol tcp)"}},
		{"a port named http-", []KubeService{service("database", database, KubeServicePort{Name: "http-data", Port: 5432})}, nil},
		{"another port of the Service", []KubeService{service("database", database, KubeServicePort{Name: "tcp-admin", Port: 9000})}, nil},
		{"a Service of other pods", []KubeService{service("api", map[string]string{"app": "api"}, KubeServicePort{Name: "tcp", Port: 5432})}, nil},
		{"a Service without selector", []KubeService{service("manual", nil, KubeServicePort{Name: "tcp", Port: 5432})}, nil},
		{"a Service in another namespace", []KubeService{{Name: "database", Namespace: "other", Selector: database, Ports: []KubeServicePort{{Name: "tcp", Port: 5432}}}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := mustCompile(t, seed, DefaultOptions(), Facts{Services: tt.services})
			if want := min(len(tt.want), 1); len(res.ProtocolMismatches) != want {
				t.Fatalf("mismatches %v, want %d", res.ProtocolMismatches, want)
			}
			for _, part := range tt.want {
				if got := res.ProtocolMismatches[0].String(); !strings.Contains(got, part) {
					t.Errorf("%q lacks %q", got, part)
				}
			}
		})
	}
	if got := mustCompile(t, seed, DefaultOptions(), Facts{Missing: Builtin().KindsOf(LayerIstio),
		Services: tests[1].services}).ProtocolMismatches; len(got) != 0 {
		t.Errorf("without Istio there is nothing to skip: %v", got)
	}
}
