package summary

import (
	"encoding/json"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

const served = `{"apiVersion":"security.istio.io/v1","kind":"AuthorizationPolicy",
 "metadata":{"name":"shop-svc-api","namespace":"shop","uid":"u1","resourceVersion":"42","generation":3,
  "labels":{"app.kubernetes.io/managed-by":"servicegraph-operator","policy.servicegraph.io/graph":"shop"},
  "annotations":{"note":"x"},
  "ownerReferences":[{"apiVersion":"v1","kind":"ConfigMap","name":"other","uid":"u9"},
   {"apiVersion":"policy.servicegraph.io/v1alpha1","kind":"ServiceGraph","name":"shop","uid":"u0","controller":true}],
  "managedFields":[{"manager":"servicegraph-operator","operation":"Apply","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{}}}]},
 "spec":{"action":"ALLOW","rules":[{"to":[{"operation":{"paths":["/data"]}}]}]},
 "status":{"validationMessages":[]}}`

// TestSummary checks what a summary keeps of an object and what its digest covers.
func TestSummary(t *testing.T) {
	var o Object
	if err := json.Unmarshal([]byte(served), &o); err != nil {
		t.Fatal(err)
	}
	if o.Name != "shop-svc-api" || o.Namespace != "shop" || o.UID != "u1" || o.ResourceVersion != "42" || o.Generation != 3 ||
		o.Labels["policy.servicegraph.io/graph"] != "shop" || o.Annotations["note"] != "x" || o.Kind != "AuthorizationPolicy" {
		t.Errorf("metadata not kept: %+v", o.ObjectMeta)
	}
	if len(o.ManagedFields) != 0 || len(o.OwnerReferences) != 1 || o.OwnerReferences[0].UID != "u0" {
		t.Errorf("managed fields %v, owner references %v: only the controller's is kept", o.ManagedFields, o.OwnerReferences)
	}
	var _ client.Object = &o
	copied := o.DeepCopyObject().(*Object)
	copied.Labels["x"] = "y"
	if o.Labels["x"] != "" || copied.Content != o.Content {
		t.Error("DeepCopyObject shares the labels or drops the digest")
	}

	digest := func(doc string) Digest {
		t.Helper()
		d, err := DigestOf([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	spec := `"spec":{"action":"ALLOW","rules":[{"to":[{"operation":{"paths":["/data"]}}]}]}`
	if got := digest(`{"metadata":{"name":"other","labels":{"a":"b"}},"status":{"x":1},` + spec + `}`); got != o.Content {
		t.Error("metadata or status changed the digest")
	}
	for _, changed := range []string{
		`{"spec":{"action":"ALLOW","rules":[{"to":[{"operation":{"paths":["/"]}}]}]}}`,
		`{"spec":{"action":"DENY","rules":[{"to":[{"operation":{"paths":["/data"]}}]}]}}`,
		`{` + spec + `,"data":{"k":"v"}}`,
		`{}`,
	} {
		if digest(changed) == o.Content {
			t.Errorf("%s digests like the served object", changed)
		}
	}
	empty := digest(`{}`)
	for _, same := range []string{`{"spec":null}`, `{"spec":{}}`, `{"metadata":{},"status":{}}`} {
		if digest(same) != empty {
			t.Errorf("%s differs from an absent spec", same)
		}
	}
	// Field boundaries count: moving bytes from one field to the next is a change.
	if digest(`{"a":"1","b":"23"}`) == digest(`{"a":"12","b":"3"}`) {
		t.Error("field boundaries lost")
	}
}
