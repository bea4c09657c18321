// Package object names what every pure package passes around: a Kubernetes object. It has the
// method set of controller-runtime's client.Object, so values convert both ways without a cast,
// and lets the pure core import no client library.
package object

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
)

// Object is a Kubernetes object with metadata.
type Object interface {
	metav1.Object
	runtime.Object
}

// Ref names an object the way a ServiceGraph's status lists it.
func Ref(obj Object) v1alpha1.ObjectReference {
	gvk := obj.GetObjectKind().GroupVersionKind()
	return v1alpha1.ObjectReference{Group: gvk.Group, Kind: gvk.Kind, Name: obj.GetName()}
}

// Istio's marks on a pod whose traffic it handles.
const (
	// AnnotationSidecarStatus is set by Istio's sidecar injector on every injected pod.
	AnnotationSidecarStatus = "sidecar.istio.io/status"
	// AnnotationAmbient is set by Istio's CNI on pods enrolled in ambient mode.
	AnnotationAmbient = "ambient.istio.io/redirection"
)

// IstioMarked tells from a pod's annotations whether Istio injected a sidecar or enrolled it in
// ambient mode. A pod without a mark may still run an istio-proxy container.
func IstioMarked(annotations map[string]string) bool {
	return annotations[AnnotationSidecarStatus] != "" || annotations[AnnotationAmbient] == "enabled"
}
