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
