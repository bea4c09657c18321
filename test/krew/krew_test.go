// Package krew checks the kubectl plugin release with krew itself: the manifests pass krew's
// validator (validate-krew-manifest, what krew-index's CI runs), every archive installs with
// `kubectl krew install --manifest --archive` (which checks its sha256), and the installed plugin
// runs as `kubectl servicegraph`.
package krew

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/krew/pkg/index"
	"sigs.k8s.io/yaml"
)

const uriBase = "https://github.com/servicegraph/servicegraph-operator/releases/download/"

var platforms = []string{"darwin/amd64", "darwin/arm64", "linux/amd64", "linux/arm64", "windows/amd64"}

func distDir() string {
	if d := os.Getenv("RELEASE_DIST"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "dist")
}

// krewTool is a binary make builds from this module's sigs.k8s.io/krew into KREW_DIR.
func krewTool(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv("KREW_DIR")
	if dir == "" {
		t.Fatal("KREW_DIR is unset: run make test-release")
	}
	return filepath.Join(dir, name)
}

func readManifest(t *testing.T, file string) index.Plugin {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var p index.Plugin
	if err := yaml.UnmarshalStrict(raw, &p); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return p
}

func generated() string { return filepath.Join(distDir(), "plugin", "servicegraph.yaml") }

const committed = "../../plugins/krew/servicegraph.yaml"

func TestManifestsPassKrewValidation(t *testing.T) {
	for _, file := range []string{generated(), committed} {
		// -skip-install: the validator would download the release URIs; TestKrewInstallsEveryArchive
		// installs the archives from dist/ instead.
		out, err := exec.Command(krewTool(t, "validate-krew-manifest"), "-manifest", file, "-skip-install").CombinedOutput()
		if err != nil {
			t.Errorf("validate-krew-manifest %s: %v\n%s", file, err, out)
		}
	}
}

// TestManifestNamesTheArchives: one platform per krew target, each URI a release download of an
// archive make release wrote, with that archive's sha256, holding only the plugin built for it.
func TestManifestNamesTheArchives(t *testing.T) {
	p := readManifest(t, generated())
	var got []string
	for _, pl := range p.Spec.Platforms {
		target := pl.Selector.MatchLabels["os"] + "/" + pl.Selector.MatchLabels["arch"]
		got = append(got, target)
		if want := uriBase + p.Spec.Version + "/"; !strings.HasPrefix(pl.URI, want) {
			t.Errorf("%s: uri %s, want it under %s", target, pl.URI, want)
		}
		archive := filepath.Join(distDir(), "plugin", path.Base(pl.URI))
		raw, err := os.ReadFile(archive)
		if err != nil {
			t.Error(err)
			continue
		}
		if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != pl.Sha256 {
			t.Errorf("%s: sha256 %x, the manifest says %s", archive, sum, pl.Sha256)
		}
		files := unpack(t, archive, raw)
		exe, ok := files[pl.Bin]
		if !ok {
			t.Errorf("%s lacks bin %s", archive, pl.Bin)
			continue
		}
		if wantBin := "kubectl-servicegraph" + map[bool]string{true: ".exe"}[strings.HasPrefix(target, "windows/")]; pl.Bin != wantBin {
			t.Errorf("%s: bin %s, want %s", target, pl.Bin, wantBin)
		}
		if built := builtFor(t, exe); built != target {
			t.Errorf("%s holds a binary built for %s", archive, built)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, platforms) {
		t.Errorf("platforms %q, want %q", got, platforms)
	}
}

// TestCommittedManifestIsTheGeneratedOne: plugins/krew/servicegraph.yaml is make release's output
// for the default VERSION. The sha256 values are those of the archives of the tree it was
// generated from; the CLI's code moves on after a release, so here they are reported, not failed.
func TestCommittedManifestIsTheGeneratedOne(t *testing.T) {
	gen, com := readManifest(t, generated()), readManifest(t, committed)
	for i := range gen.Spec.Platforms {
		if i < len(com.Spec.Platforms) && gen.Spec.Platforms[i].Sha256 != com.Spec.Platforms[i].Sha256 {
			t.Logf("%s: committed sha256 %s, this tree builds %s (make release rewrites it)",
				path.Base(gen.Spec.Platforms[i].URI), com.Spec.Platforms[i].Sha256, gen.Spec.Platforms[i].Sha256)
			com.Spec.Platforms[i].Sha256 = gen.Spec.Platforms[i].Sha256
		}
	}
	a, _ := yaml.Marshal(gen)
	b, _ := yaml.Marshal(com)
	if !bytes.Equal(a, b) {
		t.Errorf("%s differs from what make release writes (apart from sha256); run make release:\n%s\nwant:\n%s", committed, b, a)
	}
}

// TestKrewInstallsEveryArchive installs each platform's archive the way a user's krew does (it
// verifies the sha256 and applies files/bin), and runs the host's through kubectl.
func TestKrewInstallsEveryArchive(t *testing.T) {
	p := readManifest(t, generated())
	for _, pl := range p.Spec.Platforms {
		goos, arch := pl.Selector.MatchLabels["os"], pl.Selector.MatchLabels["arch"]
		t.Run(goos+"/"+arch, func(t *testing.T) {
			root := t.TempDir()
			cmd := exec.Command(krewTool(t, "kubectl-krew"), "install", "--manifest", generated(),
				"--archive", filepath.Join(distDir(), "plugin", path.Base(pl.URI)))
			cmd.Env = append(os.Environ(), "KREW_ROOT="+root, "KREW_OS="+goos, "KREW_ARCH="+arch, "KREW_NO_UPGRADE_CHECK=1")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("krew install: %v\n%s", err, out)
			}
			link := filepath.Join(root, "bin", "kubectl-servicegraph")
			if goos == "windows" {
				link += ".exe"
			}
			if _, err := os.Stat(link); err != nil {
				t.Fatalf("krew installed no %s: %v", link, err)
			}
			if goos != runtime.GOOS || arch != runtime.GOARCH {
				return
			}
			kubectl := os.Getenv("KUBECTL")
			if kubectl == "" {
				t.Fatal("KUBECTL is unset: run make test-release")
			}
			run := exec.Command(kubectl, "servicegraph", "--help")
			run.Env = append(os.Environ(), "PATH="+filepath.Join(root, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"))
			out, err := run.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Usage: servicegraph COMMAND") {
				t.Errorf("kubectl servicegraph --help: %v\n%s", err, out)
			}
		})
	}
}

// TestRebuildGivesTheSameArchives runs make plugin-archives once more into a fresh directory: every
// archive must come out with the sha256 the manifest records.
func TestRebuildGivesTheSameArchives(t *testing.T) {
	p := readManifest(t, generated())
	dir := t.TempDir()
	cmd := exec.Command("make", "-C", filepath.Join("..", ".."), "--no-print-directory", "plugin-archives", "DIST="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make plugin-archives: %v\n%s", err, out)
	}
	for _, pl := range p.Spec.Platforms {
		raw, err := os.ReadFile(filepath.Join(dir, "plugin", path.Base(pl.URI)))
		if err != nil {
			t.Error(err)
			continue
		}
		if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != pl.Sha256 {
			t.Errorf("%s: the second build's sha256 is %x, the first's %s", path.Base(pl.URI), sum, pl.Sha256)
		}
	}
}

// unpack reads a tar.gz or zip archive into memory, checking every entry is a root-owned regular
// file with the one fixed time: what makes the archive reproducible.
func unpack(t *testing.T, name string, raw []byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	if strings.HasSuffix(name, ".zip") {
		zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			files[f.Name] = b
		}
		return files
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if !zr.ModTime.IsZero() || zr.Name != "" {
		t.Errorf("%s: gzip header carries %q %v", name, zr.Name, zr.ModTime)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg || h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.ModTime.Unix() != sourceDateEpoch(t) {
			t.Errorf("%s: entry %s type %q owner %d:%d %q time %v", name, h.Name, h.Typeflag, h.Uid, h.Gid, h.Uname, h.ModTime)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = b
	}
	return files
}

// sourceDateEpoch is the time make release stamped (SOURCE_DATE_EPOCH, 0 unless set).
func sourceDateEpoch(t *testing.T) int64 {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// builtFor reads the GOOS/GOARCH a Go binary was built for from its build info.
func builtFor(t *testing.T, exe []byte) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "exe")
	if err := os.WriteFile(f, exe, 0o644); err != nil {
		t.Fatal(err)
	}
	info, err := buildinfo.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	var goos, arch string
	for _, s := range info.Settings {
		switch s.Key {
		case "GOOS":
			goos = s.Value
		case "GOARCH":
			arch = s.Value
		}
	}
	return goos + "/" + arch
}
