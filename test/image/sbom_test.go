package image

import (
	"bufio"
	"bytes"
	"debug/buildinfo"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

type cycloneDX struct {
	BOMFormat string `json:"bomFormat"`
	Metadata  struct {
		Component struct {
			Name string `json:"name"`
		} `json:"component"`
	} `json:"metadata"`
	Components []struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		PURL    string `json:"purl"`
	} `json:"components"`
}

// TestSBOMListsTheManagersModules: every module linked into the image's manager (its build info,
// what `go version -m` prints) is in the SBOM attached to the image, at the version go.mod requires.
func TestSBOMListsTheManagersModules(t *testing.T) {
	img := distImage(t)
	if img.sbom == nil {
		t.Fatal("no CycloneDX artifact in the layout refers to the image")
	}
	beside, err := os.ReadFile(filepath.Join(distDir(), "image", "sbom.cdx.json"))
	if err != nil || !bytes.Equal(beside, img.sbom) {
		t.Errorf("dist/image/sbom.cdx.json differs from the SBOM attached to the image (%v)", err)
	}
	var bom cycloneDX
	if err := json.Unmarshal(img.sbom, &bom); err != nil {
		t.Fatal(err)
	}
	info, err := buildinfo.ReadFile(extractManager(t))
	if err != nil {
		t.Fatal(err)
	}
	if bom.BOMFormat != "CycloneDX" || bom.Metadata.Component.Name != info.Main.Path {
		t.Errorf("SBOM %q of %q, want CycloneDX of %s", bom.BOMFormat, bom.Metadata.Component.Name, info.Main.Path)
	}
	listed := map[string]string{}
	for _, c := range bom.Components {
		listed[c.Name] = c.Version
		if !strings.HasPrefix(c.PURL, "pkg:golang/"+c.Name+"@"+c.Version) {
			t.Errorf("%s %s: purl %s", c.Name, c.Version, c.PURL)
		}
	}
	required := goModRequirements(t, filepath.Join("..", "..", "go.mod"))
	if len(info.Deps) < 20 {
		t.Fatalf("the manager links %d modules; its build info looks wrong", len(info.Deps))
	}
	for _, dep := range info.Deps {
		mod := dep
		if dep.Replace != nil {
			mod = dep.Replace
		}
		if got, ok := listed[mod.Path]; !ok || got != mod.Version {
			t.Errorf("the manager links %s %s; the SBOM lists %q", mod.Path, mod.Version, got)
		}
		if req, ok := required[dep.Path]; ok && req != dep.Version {
			t.Errorf("%s: go.mod requires %s, the manager links %s", dep.Path, req, dep.Version)
		} else if !ok {
			t.Errorf("%s %s is linked but not in go.mod", dep.Path, dep.Version)
		}
	}
}

// goModRequirements reads the require directives of a go.mod (both forms: single line and block).
func goModRequirements(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	reqs := map[string]string{}
	inBlock := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "//")
		fields := strings.Fields(line)
		switch {
		case len(fields) == 2 && fields[0] == "require" && fields[1] == "(":
			inBlock = true
		case inBlock && len(fields) == 1 && fields[0] == ")":
			inBlock = false
		case inBlock && len(fields) == 2:
			reqs[fields[0]] = fields[1]
		case len(fields) == 3 && fields[0] == "require":
			reqs[fields[1]] = fields[2]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return reqs
}

// TestRebuildGivesTheSameDigest runs make image once more into a fresh directory: the manager,
// the SBOM and the image must come out byte for byte the same.
func TestRebuildGivesTheSameDigest(t *testing.T) {
	first := distImage(t)
	dir := t.TempDir()
	cmd := exec.Command("make", "-C", filepath.Join("..", ".."), "--no-print-directory", "image", "DIST="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	second, err := loadImage(filepath.Join(dir, "image", "oci"))
	if err != nil {
		t.Fatal(err)
	}
	if first.desc.Digest != second.desc.Digest {
		t.Errorf("two builds, two digests: %s and %s", first.desc.Digest, second.desc.Digest)
	}
	if first.sbomOwner.Digest != second.sbomOwner.Digest {
		t.Errorf("two builds, two SBOM artifacts: %s and %s", first.sbomOwner.Digest, second.sbomOwner.Digest)
	}
	for _, f := range []string{"digest", "manager-image.tar"} {
		a, _ := os.ReadFile(filepath.Join(distDir(), "image", f))
		b, _ := os.ReadFile(filepath.Join(dir, "image", f))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("dist/image/%s differs between the two builds", f)
		}
	}
	if digest, _ := os.ReadFile(filepath.Join(dir, "image", "digest")); strings.TrimSpace(string(digest)) != second.desc.Digest {
		t.Errorf("make image printed %q, the layout holds %s", digest, second.desc.Digest)
	}
}
