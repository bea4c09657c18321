// Command image assembles the manager's container image without a container engine: a
// distroless-equivalent base layer built here (no registry image is reachable), the statically
// linked manager as a second layer, written as an OCI image layout and as a `docker load` tarball,
// with the CycloneDX SBOM attached to the image as an OCI 1.1 referrer in the same layout.
//
// Every input that could vary between builds is fixed: tar entries are sorted with zero owners
// and one modification time (SOURCE_DATE_EPOCH), gzip headers carry no time or name, and the
// config's timestamps are the same epoch, so the same binary gives the same digest.
package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"servicegraph.io/hack/tools/image/epoch"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// The user distroless calls nonroot: the manifests in config/ run the pod as 65532.
const (
	nonrootID = 65532
	sbomType  = "application/vnd.cyclonedx+json"
	// The OCI 1.1 empty config of an artifact manifest: the two bytes "{}".
	emptyConfigType   = "application/vnd.oci.empty.v1+json"
	emptyConfigDigest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
)

type options struct {
	binary, arch, sbom, layoutDir, tarPath, ref, version, source string
	epoch                                                        time.Time
}

func main() {
	var o options
	flag.StringVar(&o.binary, "binary", "", "the statically linked manager (linux)")
	flag.StringVar(&o.arch, "arch", "amd64", "GOARCH the manager was built for")
	flag.StringVar(&o.sbom, "sbom", "", "the manager's CycloneDX JSON SBOM, attached as a referrer")
	flag.StringVar(&o.layoutDir, "oci", "", "directory of the OCI image layout to write (replaced)")
	flag.StringVar(&o.tarPath, "tar", "", "docker-load tarball to write")
	flag.StringVar(&o.ref, "ref", "servicegraph-operator:dev", "image reference the tarball and the layout name")
	flag.StringVar(&o.version, "version", "dev", "version recorded in the image's annotations and labels")
	flag.StringVar(&o.source, "source", "https://github.com/servicegraph/servicegraph-operator", "source repository recorded in the image")
	flag.Parse()
	stamp, err := epoch.SourceDate()
	if err == nil {
		o.epoch = stamp
		err = run(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.binary == "" || o.layoutDir == "" {
		return fmt.Errorf("-binary and -oci are required")
	}
	manager, err := os.ReadFile(o.binary)
	if err != nil {
		return err
	}
	img, err := build(o, manager)
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	if err := writeLayout(o, img); err != nil {
		return err
	}
	if o.tarPath != "" {
		ref, err := name.NewTag(o.ref)
		if err != nil {
			return err
		}
		if err := tarball.WriteToFile(o.tarPath, ref, img); err != nil {
			return err
		}
	}
	fmt.Println(digest)
	return nil
}

// build stacks the base and the manager on an empty image and sets a config with no shell to fall
// back on: the entrypoint is the manager itself, run as nonroot.
func build(o options, manager []byte) (v1.Image, error) {
	base, err := baseLayer(o.epoch)
	if err != nil {
		return nil, err
	}
	app, err := layer(o.epoch, []entry{{name: "manager", mode: 0o755, data: manager}})
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	labels := map[string]string{
		"org.opencontainers.image.source":  o.source,
		"org.opencontainers.image.version": o.version,
		"org.opencontainers.image.title":   "servicegraph-operator manager",
	}
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: o.arch,
		OS:           "linux",
		Config: v1.Config{
			User:       fmt.Sprintf("%d:%d", nonrootID, nonrootID),
			Entrypoint: []string{"/manager"},
			WorkingDir: "/",
			Env: []string{
				"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
				"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
			},
			Labels: labels,
		},
		RootFS: v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: o.epoch}
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{Created: created, CreatedBy: "servicegraph hack/tools/image: nonroot user, /tmp, CA certificates", Comment: "distroless-equivalent base"}},
		mutate.Addendum{Layer: app, History: v1.History{Created: created, CreatedBy: "servicegraph hack/tools/image: /manager"}},
	)
	if err != nil {
		return nil, err
	}
	img, err = mutate.CreatedAt(img, created)
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(img, map[string]string{
		"org.opencontainers.image.source":  o.source,
		"org.opencontainers.image.version": o.version,
		"org.opencontainers.image.created": o.epoch.Format(time.RFC3339),
	}).(v1.Image), nil
}

// writeLayout replaces the layout directory: an index with the image (named by its reference) and,
// when there is an SBOM, the artifact manifest that refers to the image as its subject.
func writeLayout(o options, img v1.Image) error {
	if err := os.RemoveAll(o.layoutDir); err != nil {
		return err
	}
	p, err := layout.Write(o.layoutDir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": o.ref,
	})); err != nil {
		return err
	}
	if o.sbom == "" {
		return nil
	}
	sbom, err := os.ReadFile(o.sbom)
	if err != nil {
		return err
	}
	return attachSBOM(p, img, sbom, o.epoch)
}

// attachSBOM writes the SBOM as an OCI 1.1 artifact whose subject is the image, so
// `oras discover`/`regctl artifact list` find it and a copy with referrers carries it along.
func attachSBOM(p layout.Path, img v1.Image, sbom []byte, epoch time.Time) error {
	subject, err := descriptorOf(img)
	if err != nil {
		return err
	}
	if err := p.WriteBlob(mustHash(emptyConfigDigest), io.NopCloser(bytes.NewReader([]byte("{}")))); err != nil {
		return err
	}
	sbomDigest := sha256Digest(sbom)
	if err := p.WriteBlob(mustHash(sbomDigest), io.NopCloser(bytes.NewReader(sbom))); err != nil {
		return err
	}
	manifest := map[string]any{
		"schemaVersion": 2,
		"mediaType":     types.OCIManifestSchema1,
		"artifactType":  sbomType,
		"config":        map[string]any{"mediaType": emptyConfigType, "digest": emptyConfigDigest, "size": 2},
		"layers": []any{map[string]any{
			"mediaType":   sbomType,
			"digest":      sbomDigest,
			"size":        len(sbom),
			"annotations": map[string]string{"org.opencontainers.image.title": "sbom.cdx.json"},
		}},
		"subject":     subject,
		"annotations": map[string]string{"org.opencontainers.image.created": epoch.Format(time.RFC3339)},
	}
	raw, err := json.Marshal(manifest)
	if err != nil {
		return err
	}
	digest := sha256Digest(raw)
	if err := p.WriteBlob(mustHash(digest), io.NopCloser(bytes.NewReader(raw))); err != nil {
		return err
	}
	return p.AppendDescriptor(v1.Descriptor{
		MediaType:    types.OCIManifestSchema1,
		Size:         int64(len(raw)),
		Digest:       mustHash(digest),
		ArtifactType: sbomType,
	})
}

func descriptorOf(img v1.Image) (map[string]any, error) {
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	size, err := img.Size()
	if err != nil {
		return nil, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return nil, err
	}
	return map[string]any{"mediaType": mt, "digest": digest.String(), "size": size}, nil
}

// baseLayer is what distroless/static offers a static Go binary, built from pinned inputs: the
// users root and nonroot, nonroot's home, a world-writable sticky /tmp, and Mozilla's CA roots.
// The manager reaches the API server with the in-cluster CA, but --prometheus-url and
// --audit-webhook-url may be https endpoints signed by a public CA, which the system roots verify.
func baseLayer(epoch time.Time) (v1.Layer, error) {
	certs, err := caBundle()
	if err != nil {
		return nil, err
	}
	return layer(epoch, []entry{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: certs},
		{name: "home/", mode: 0o755, dir: true},
		{name: "home/nonroot/", mode: 0o700, dir: true, owner: nonrootID},
		{name: "root/", mode: 0o700, dir: true},
		{name: "tmp/", mode: 0o1777, dir: true},
	})
}

// caBundle is the NSS trust store as golang.org/x/crypto/x509roots/fallback pins it (its module
// version in go.mod fixes the content). Roots with a distrust-after date are left out: a PEM file
// cannot carry that constraint, and trusting them without it would trust more than NSS does.
func caBundle() ([]byte, error) {
	var buf bytes.Buffer
	for root := range bundle.Roots() {
		if root.Constraint != nil {
			continue
		}
		if err := pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: root.Certificate}); err != nil {
			return nil, err
		}
	}
	if buf.Len() == 0 {
		return nil, fmt.Errorf("no CA roots in golang.org/x/crypto/x509roots/fallback")
	}
	return buf.Bytes(), nil
}

type entry struct {
	name  string
	mode  int64
	dir   bool
	owner int
	data  []byte
}

// layer writes entries in the given (sorted, parents first) order with one owner per entry and
// one time, then lets go-containerregistry gzip it (no name or time in the gzip header).
func layer(epoch time.Time, entries []entry) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name:    e.name,
			Mode:    e.mode,
			Uid:     e.owner,
			Gid:     e.owner,
			ModTime: epoch,
		}
		if e.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	raw := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

func sha256Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func mustHash(s string) v1.Hash {
	h, err := v1.NewHash(s)
	if err != nil {
		panic(err)
	}
	return h
}
