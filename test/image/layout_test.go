package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The OCI image layout as https://github.com/opencontainers/image-spec/blob/main/image-layout.md
// defines it: only the fields the tests read.
type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

type index struct {
	Manifests []descriptor `json:"manifests"`
}

type manifest struct {
	MediaType    string            `json:"mediaType"`
	ArtifactType string            `json:"artifactType"`
	Config       descriptor        `json:"config"`
	Layers       []descriptor      `json:"layers"`
	Subject      *descriptor       `json:"subject"`
	Annotations  map[string]string `json:"annotations"`
}

type imageConfig struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Config       struct {
		User       string            `json:"User"`
		Entrypoint []string          `json:"Entrypoint"`
		Cmd        []string          `json:"Cmd"`
		Env        []string          `json:"Env"`
		WorkingDir string            `json:"WorkingDir"`
		Labels     map[string]string `json:"Labels"`
	} `json:"config"`
	RootFS struct {
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// file is one entry of the image's filesystem after the layers are applied in order.
type file struct {
	hdr  *tar.Header
	data []byte
}

// image is what the tests read of one layout: the image, its files, and the SBOM that refers to it.
type image struct {
	dir       string
	desc      descriptor
	manifest  manifest
	config    imageConfig
	files     map[string]file
	sbom      []byte
	sbomOwner descriptor
}

// distDir is where make release wrote its output (RELEASE_DIST, or the repository's dist/).
func distDir() string {
	if d := os.Getenv("RELEASE_DIST"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "dist")
}

// blob reads a blob and checks it is the content its digest names: a layout that lies about a
// digest would pass every other test.
func blob(dir, digest string) ([]byte, error) {
	algo, hexsum, ok := strings.Cut(digest, ":")
	if !ok || algo != "sha256" {
		return nil, fmt.Errorf("digest %q: want sha256", digest)
	}
	b, err := os.ReadFile(filepath.Join(dir, "blobs", algo, hexsum))
	if err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != hexsum {
		return nil, fmt.Errorf("blob %s holds content with sha256 %x", digest, sum)
	}
	return b, nil
}

func readJSON(dir, digest string, v any) error {
	b, err := blob(dir, digest)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func loadImage(dir string) (*image, error) {
	layoutFile, err := os.ReadFile(filepath.Join(dir, "oci-layout"))
	if err != nil {
		return nil, err
	}
	if !bytes.Contains(layoutFile, []byte(`"imageLayoutVersion"`)) {
		return nil, fmt.Errorf("oci-layout: %s", layoutFile)
	}
	var idx index
	raw, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, err
	}
	img := &image{dir: dir}
	var artifacts []descriptor
	for _, d := range idx.Manifests {
		if _, named := d.Annotations["org.opencontainers.image.ref.name"]; named {
			if img.desc.Digest != "" {
				return nil, errors.New("index.json names more than one image")
			}
			img.desc = d
		} else {
			artifacts = append(artifacts, d)
		}
	}
	if img.desc.Digest == "" {
		return nil, errors.New("index.json names no image")
	}
	if err := readJSON(dir, img.desc.Digest, &img.manifest); err != nil {
		return nil, err
	}
	if err := readJSON(dir, img.manifest.Config.Digest, &img.config); err != nil {
		return nil, err
	}
	if img.files, err = applyLayers(dir, img.manifest.Layers, img.config.RootFS.DiffIDs); err != nil {
		return nil, err
	}
	for _, a := range artifacts {
		var m manifest
		if err := readJSON(dir, a.Digest, &m); err != nil {
			return nil, err
		}
		if m.ArtifactType != "application/vnd.cyclonedx+json" || m.Subject == nil || m.Subject.Digest != img.desc.Digest || len(m.Layers) != 1 {
			continue
		}
		img.sbomOwner = a
		if img.sbom, err = blob(dir, m.Layers[0].Digest); err != nil {
			return nil, err
		}
	}
	return img, nil
}

// applyLayers unpacks the layers in order, checking each uncompressed layer against the diff ID
// the config records (what a container runtime verifies).
func applyLayers(dir string, layers []descriptor, diffIDs []string) (map[string]file, error) {
	if len(layers) != len(diffIDs) {
		return nil, fmt.Errorf("%d layers but %d diff IDs", len(layers), len(diffIDs))
	}
	files := map[string]file{}
	for i, l := range layers {
		if l.MediaType != "application/vnd.oci.image.layer.v1.tar+gzip" {
			return nil, fmt.Errorf("layer %d has media type %s", i, l.MediaType)
		}
		compressed, err := blob(dir, l.Digest)
		if err != nil {
			return nil, err
		}
		zr, err := gzip.NewReader(bytes.NewReader(compressed))
		if err != nil {
			return nil, err
		}
		raw, err := io.ReadAll(zr)
		if err != nil {
			return nil, err
		}
		if sum := sha256.Sum256(raw); "sha256:"+hex.EncodeToString(sum[:]) != diffIDs[i] {
			return nil, fmt.Errorf("layer %d: diff ID %s, content sha256:%x", i, diffIDs[i], sum)
		}
		tr := tar.NewReader(bytes.NewReader(raw))
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, err
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				return nil, err
			}
			files[strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")] = file{hdr: h, data: data}
		}
	}
	return files, nil
}

// testImage is dist/image/oci, read once for all the tests of a run.
var testImage = struct {
	img *image
	err error
	set bool
}{}

func distImage(t *testing.T) *image {
	t.Helper()
	if !testImage.set {
		testImage.img, testImage.err = loadImage(filepath.Join(distDir(), "image", "oci"))
		testImage.set = true
	}
	if testImage.err != nil {
		t.Fatalf("reading the image make image wrote: %v (run make image first)", testImage.err)
	}
	return testImage.img
}
