package controllers

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/servicegraph/servicegraph-operator/internal/object"
)

func TestPodChanged(t *testing.T) {
	base := func() *metav1.PartialObjectMetadata {
		return &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "api-1", Namespace: "shop", ResourceVersion: "1",
			Labels:          map[string]string{"app": "api"},
			Annotations:     map[string]string{object.AnnotationSidecarStatus: "{}", "kubectl.kubernetes.io/restartedAt": "t1"},
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "api-7d4b9", Controller: ptr.To(true)}}}}
	}
	for _, tc := range []struct {
		name    string
		edit    func(*metav1.PartialObjectMetadata)
		changed bool
	}{
		{"a status update (resourceVersion only)", func(p *metav1.PartialObjectMetadata) { p.ResourceVersion = "2" }, false},
		{"another annotation", func(p *metav1.PartialObjectMetadata) { p.Annotations["kubectl.kubernetes.io/restartedAt"] = "t2" }, false},
		{"managed fields", func(p *metav1.PartialObjectMetadata) {
			p.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubelet", Subresource: "status"}}
		}, false},
		{"a label", func(p *metav1.PartialObjectMetadata) { p.Labels["version"] = "v2" }, true},
		{"a label removed", func(p *metav1.PartialObjectMetadata) { delete(p.Labels, "app") }, true},
		{"the sidecar mark", func(p *metav1.PartialObjectMetadata) { delete(p.Annotations, object.AnnotationSidecarStatus) }, true},
		{"ambient", func(p *metav1.PartialObjectMetadata) { p.Annotations[object.AnnotationAmbient] = "enabled" }, true},
		{"going away", func(p *metav1.PartialObjectMetadata) { p.DeletionTimestamp = ptr.To(metav1.Now()) }, true},
		{"another owner", func(p *metav1.PartialObjectMetadata) { p.OwnerReferences[0].Name = "api-5c6f8" }, true},
	} {
		newer := base()
		tc.edit(newer)
		if got := podChanged(base(), newer); got != tc.changed {
			t.Errorf("%s: changed %v, want %v", tc.name, got, tc.changed)
		}
	}
}
