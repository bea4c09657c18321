// Package istio holds tests that judge the generated Istio objects with Istio's own code.
package istio
