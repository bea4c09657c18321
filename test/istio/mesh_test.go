package istio

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/resolver"
	xdsgrpc "google.golang.org/grpc/xds"

	networking "istio.io/api/networking/v1alpha3"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/config"
	"istio.io/istio/pkg/config/constants"
	"istio.io/istio/pkg/config/host"
	"istio.io/istio/pkg/config/protocol"
	"istio.io/istio/pkg/config/schema/gvk"
	"istio.io/istio/pkg/istio-agent/grpcxds"
)

// mesh is Istio's discovery server running in process (pilot/test/xds, the harness of Istio's own
// proxyless-gRPC tests) with proxyless gRPC workloads: grpc-go xDS servers and clients that get
// their listeners, routes, RBAC and TLS from it, and certificates with SPIFFE identities from a CA
// of the test's own. grpc-go enforces the AuthorizationPolicies with its RBAC engine on real mTLS
// connections.
type mesh struct {
	t       *testing.T
	ds      *xds.FakeDiscoveryServer
	xdsPort int
	ca      *testCA
	mu      sync.Mutex
	next    int
}

func newMesh(t *testing.T) *mesh {
	ds := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{
		ListenerBuilder: func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") },
	})
	_, port, _ := net.SplitHostPort(ds.Listener.Addr().String())
	xdsPort, _ := strconv.Atoi(port)
	return &mesh{t: t, ds: ds, xdsPort: xdsPort, ca: newTestCA(t)}
}

// workload is one gRPC server of the mesh: the pods of a service.
type workload struct {
	Name, Namespace, ServiceAccount string
	Labels                          map[string]string
	ip                              string
	port                            int
	certs                           string
}

func (w *workload) host() string { return w.Name + "." + w.Namespace + ".svc.cluster.local" }

func (w *workload) principal() string {
	return "spiffe://cluster.local/ns/" + w.Namespace + "/sa/" + w.ServiceAccount
}

// add starts a workload: a Service and its endpoint in Istio's registry, a certificate for its
// identity, and a grpc-go xDS server answering the gRPC health service, which is serving once
// Istio has sent it its listener.
func (m *mesh) add(w *workload) {
	m.t.Helper()
	m.mu.Lock()
	m.next++
	w.ip = fmt.Sprintf("127.0.%d.%d", 100+m.next/250, 1+m.next%250)
	m.mu.Unlock()
	lis, err := net.Listen("tcp", w.ip+":0")
	if err != nil {
		m.t.Fatal(err)
	}
	w.port = lis.Addr().(*net.TCPAddr).Port
	w.certs = m.ca.issue(m.t, w.principal())
	m.ds.MemRegistry.AddService(&model.Service{
		Attributes:     model.ServiceAttributes{Name: w.Name, Namespace: w.Namespace},
		Hostname:       host.Name(w.host()),
		DefaultAddress: w.ip,
		Ports:          model.PortList{{Name: "grpc", Port: w.port, Protocol: protocol.GRPC}},
	})
	m.ds.MemRegistry.SetEndpoints(w.host(), w.Namespace, []*model.IstioEndpoint{{
		Addresses: []string{w.ip}, EndpointPort: uint32(w.port), ServicePortName: "grpc",
		Labels: w.Labels, ServiceAccount: w.principal(), Namespace: w.Namespace,
	}})
	creds, err := xdscreds.NewServerCredentials(xdscreds.ServerOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		m.t.Fatal(err)
	}
	serving := make(chan struct{})
	var once sync.Once
	srv, err := xdsgrpc.NewGRPCServer(grpc.Creds(creds),
		xdsgrpc.BootstrapContentsForTesting(m.bootstrap(w.Name, w.Namespace, w.ip, w.Labels, w.certs)),
		xdsgrpc.ServingModeCallback(func(_ net.Addr, args xdsgrpc.ServingModeChangeArgs) {
			if args.Mode == 1 { // connectivity.ServingModeServing
				once.Do(func() { close(serving) })
			}
		}))
	if err != nil {
		m.t.Fatal(err)
	}
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(lis) }()
	m.t.Cleanup(srv.Stop)
	select {
	case <-serving:
	case <-time.After(20 * time.Second):
		m.t.Fatalf("%s: the xDS server never got its listener from Istio", w.host())
	}
}

// bootstrap is a proxyless gRPC bootstrap pointing at the discovery server, naming the workload as
// Istio's agent would, with its certificates (none when certs is "").
func (m *mesh) bootstrap(name, namespace, ip string, labels map[string]string, certs string) []byte {
	b, err := grpcxds.GenerateBootstrap(grpcxds.GenerateBootstrapOptions{
		Node: &model.Node{
			ID: "sidecar~" + ip + "~" + name + "." + namespace + "~" + namespace + ".svc.cluster.local",
			Metadata: &model.BootstrapNodeMetadata{NodeMetadata: model.NodeMetadata{
				Namespace: namespace, Generator: "grpc", ClusterID: constants.DefaultClusterName, Labels: labels,
			}},
		},
		DiscoveryAddress: "127.0.0.1:" + strconv.Itoa(m.xdsPort),
		CertDir:          certs,
	})
	if err != nil {
		m.t.Fatal(err)
	}
	data, err := json.Marshal(b)
	if err != nil {
		m.t.Fatal(err)
	}
	return data
}

// call makes one gRPC health check from a workload, with its identity, resolved through xDS and
// over mutual TLS as Istio tells it; or, when from is nil, from an unmeshed client: plaintext,
// no certificate, straight to the server's address. It returns the call's error.
func (m *mesh) call(from, to *workload) error {
	m.t.Helper()
	target, opts := net.JoinHostPort(to.ip, strconv.Itoa(to.port)), []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if from != nil {
		creds, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
		if err != nil {
			m.t.Fatal(err)
		}
		builder, err := xdsgrpc.NewXDSResolverWithConfigForTesting(m.bootstrap(from.Name, from.Namespace, "127.0.0.1", nil, from.certs))
		if err != nil {
			m.t.Fatal(err)
		}
		target = fmt.Sprintf("xds:///%s:%d", to.host(), to.port)
		opts = []grpc.DialOption{grpc.WithTransportCredentials(creds), grpc.WithResolvers(builder.(resolver.Builder))}
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		m.t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	return err
}

// apply puts configuration into Istio's store, replacing what has the same kind, namespace and name.
func (m *mesh) apply(configs ...config.Config) {
	m.t.Helper()
	for _, c := range configs {
		if m.ds.Store().Get(c.GroupVersionKind, c.Name, c.Namespace) == nil {
			_, err := m.ds.Store().Create(c)
			if err != nil {
				m.t.Fatal(err)
			}
			continue
		}
		if _, err := m.ds.Store().Update(c); err != nil {
			m.t.Fatal(err)
		}
	}
}

// mutualTLS is the test's DestinationRule: proxyless clients use mutual TLS only when one says
// ISTIO_MUTUAL (a fixture of the mesh, not something the operator writes).
func mutualTLS(namespace string) config.Config {
	return config.Config{
		Meta: config.Meta{GroupVersionKind: gvk.DestinationRule, Name: "mutual-tls", Namespace: namespace},
		Spec: &networking.DestinationRule{Host: "*." + namespace + ".svc.cluster.local",
			TrafficPolicy: &networking.TrafficPolicy{Tls: &networking.ClientTLSSettings{Mode: networking.ClientTLSSettings_ISTIO_MUTUAL}}},
	}
}

// testCA issues workload certificates with SPIFFE identities.
type testCA struct {
	dir  string
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
	root []byte
}

func newTestCA(t *testing.T) *testCA {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{Organization: []string{"test mesh"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{dir: t.TempDir(), key: key, cert: cert, root: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes key.pem, cert-chain.pem and root-cert.pem for an identity, as Istio's agent does,
// and returns their directory.
func (ca *testCA) issue(t *testing.T, spiffeID string) string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	uri, err := url.Parse(spiffeID)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, URIs: []*url.URL{uri},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(ca.dir, uri.Path[1:])
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for file, data := range map[string][]byte{
		"key.pem":        pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		"cert-chain.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"root-cert.pem":  ca.root,
	} {
		if err := os.WriteFile(filepath.Join(dir, file), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
