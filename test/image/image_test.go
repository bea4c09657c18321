// Package image tests the manager image make image writes to dist/image: its config, its files, the
// manager inside it, its SBOM, and that building it again gives the same digest.
package image

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
)

func TestConfigRunsTheManagerAsNonroot(t *testing.T) {
	img := distImage(t)
	c := img.config
	if c.OS != "linux" {
		t.Errorf("os %q, want linux", c.OS)
	}
	if c.Config.User != "65532:65532" {
		t.Errorf("User %q, want 65532:65532 (nonroot, as the Deployment's runAsNonRoot needs a numeric user)", c.Config.User)
	}
	if !slices.Equal(c.Config.Entrypoint, []string{"/manager"}) || len(c.Config.Cmd) != 0 {
		t.Errorf("Entrypoint %q Cmd %q, want [/manager] and no Cmd", c.Config.Entrypoint, c.Config.Cmd)
	}
	if img.manifest.MediaType != "application/vnd.oci.image.manifest.v1+json" || img.manifest.Config.MediaType != "application/vnd.oci.image.config.v1+json" {
		t.Errorf("manifest %s with config %s, want OCI media types", img.manifest.MediaType, img.manifest.Config.MediaType)
	}
	for _, k := range []string{"org.opencontainers.image.source", "org.opencontainers.image.version"} {
		if img.manifest.Annotations[k] == "" || c.Config.Labels[k] == "" {
			t.Errorf("%s missing from the manifest's annotations or the config's labels", k)
		}
	}
}

// The filesystem is exactly the distroless-equivalent base and the manager: no shell, no package
// manager, nothing else executable.
func TestFilesystemHasNoShell(t *testing.T) {
	img := distImage(t)
	var regular, dirs []string
	for name, f := range img.files {
		switch f.hdr.Typeflag {
		case tar.TypeReg:
			regular = append(regular, name)
		case tar.TypeDir:
			dirs = append(dirs, name)
		default:
			t.Errorf("%s: tar type %q, want only files and directories (no links to a shell)", name, f.hdr.Typeflag)
		}
		if f.hdr.Mode&0o111 != 0 && f.hdr.Typeflag == tar.TypeReg && name != "manager" {
			t.Errorf("%s is executable; only /manager should be", name)
		}
		if base := filepath.Base(name); slices.Contains([]string{"sh", "bash", "ash", "dash", "busybox"}, base) {
			t.Errorf("%s: a shell in the image", name)
		}
	}
	sort.Strings(regular)
	sort.Strings(dirs)
	wantFiles := []string{"etc/group", "etc/passwd", "etc/ssl/certs/ca-certificates.crt", "manager"}
	if !slices.Equal(regular, wantFiles) {
		t.Errorf("files %q, want %q", regular, wantFiles)
	}
	wantDirs := []string{"etc", "etc/ssl", "etc/ssl/certs", "home", "home/nonroot", "root", "tmp"}
	if !slices.Equal(dirs, wantDirs) {
		t.Errorf("directories %q, want %q", dirs, wantDirs)
	}
	if m := img.files["manager"].hdr; m.Mode != 0o755 || m.Uid != 0 {
		t.Errorf("/manager mode %o owner %d, want 755 owned by root (nonroot cannot replace it)", m.Mode, m.Uid)
	}
	if tmp := img.files["tmp"].hdr; tmp.Mode != 0o1777 {
		t.Errorf("/tmp mode %o, want 1777", tmp.Mode)
	}
	if home := img.files["home/nonroot"].hdr; home.Uid != 65532 || home.Gid != 65532 {
		t.Errorf("/home/nonroot owned by %d:%d, want 65532:65532", home.Uid, home.Gid)
	}
	if !strings.Contains(string(img.files["etc/passwd"].data), "nonroot:x:65532:65532:") ||
		!strings.Contains(string(img.files["etc/group"].data), "nonroot:x:65532:") {
		t.Errorf("/etc/passwd or /etc/group lacks nonroot 65532:\n%s%s", img.files["etc/passwd"].data, img.files["etc/group"].data)
	}
}

// The CA bundle is what --prometheus-url and --audit-webhook-url verify public https endpoints with.
func TestCABundleParses(t *testing.T) {
	rest := distImage(t).files["etc/ssl/certs/ca-certificates.crt"].data
	pool := x509.NewCertPool()
	n := 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("certificate %d: %v", n, err)
		}
		if !cert.IsCA {
			t.Errorf("%s is not a CA", cert.Subject)
		}
		pool.AddCert(cert)
		n++
	}
	if len(bytes.TrimSpace(rest)) != 0 || n < 100 {
		t.Errorf("%d certificates and %d bytes left over, want the NSS roots (over 100) and nothing else", n, len(rest))
	}
}

// extractManager writes the image's /manager to a temporary file.
func extractManager(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "manager")
	if err := os.WriteFile(path, distImage(t).files["manager"].data, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestManagerInTheImageRuns(t *testing.T) {
	img := distImage(t)
	// make test builds the image for this machine (IMAGE_ARCH defaults to it), so its manager runs here.
	if img.config.Architecture != runtime.GOARCH {
		t.Fatalf("image built for %s (IMAGE_ARCH), this machine runs %s: run the suite with the default IMAGE_ARCH", img.config.Architecture, runtime.GOARCH)
	}
	out, err := exec.Command(extractManager(t), "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("/manager --help: %v\n%s", err, out)
	}
	for _, flag := range []string{"-leader-elect", "-health-probe-bind-address", "-metrics-bind-address"} {
		if !strings.Contains(string(out), flag) {
			t.Errorf("/manager --help does not list %s:\n%s", flag, out)
		}
	}
}

// TestTarballIsTheSameImage: the docker-load tarball holds the layout's config and layers.
func TestTarballIsTheSameImage(t *testing.T) {
	img := distImage(t)
	f, err := os.Open(filepath.Join(distDir(), "image", "manager-image.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		b := new(bytes.Buffer)
		if _, err := b.ReadFrom(tr); err != nil {
			t.Fatal(err)
		}
		entries[h.Name] = b.Bytes()
	}
	var loads []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(entries["manifest.json"], &loads); err != nil || len(loads) != 1 {
		t.Fatalf("manifest.json: %v %s", err, entries["manifest.json"])
	}
	config, _ := blob(img.dir, img.manifest.Config.Digest)
	if !bytes.Equal(entries[loads[0].Config], config) {
		t.Errorf("the tarball's config %s differs from the layout's", loads[0].Config)
	}
	if len(loads[0].Layers) != len(img.manifest.Layers) {
		t.Fatalf("tarball has %d layers, layout %d", len(loads[0].Layers), len(img.manifest.Layers))
	}
	for i, l := range img.manifest.Layers {
		layer, _ := blob(img.dir, l.Digest)
		if !bytes.Equal(entries[loads[0].Layers[i]], layer) {
			t.Errorf("the tarball's layer %d differs from the layout's %s", i, l.Digest)
		}
	}
	if want := img.desc.Annotations["org.opencontainers.image.ref.name"]; !slices.Contains(loads[0].RepoTags, want) {
		t.Errorf("tarball tags %q, want %q", loads[0].RepoTags, want)
	}
}
