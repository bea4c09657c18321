package v1alpha1

// Waypoint names the Istio waypoint that enforces the layer-7 part of edges (paths, methods) into
// services whose pods run in ambient mode, where the node's ztunnel enforces layer 4 only.
type Waypoint struct {
	// name of the waypoint: a Gateway of class istio-waypoint in the graph's namespace. Defaults to
	// what the namespace's istio.io/use-waypoint label names, and to "waypoint" when create is set.
	// A Service that names its own waypoint (istio.io/use-waypoint) keeps it.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name,omitempty"`

	// create makes the operator create the waypoint (a Gateway of class istio-waypoint with the
	// listener mesh on port 15008, protocol HBONE, owned by the graph and deleted with it) and label
	// the Service of each ambient service with layer-7 edges istio.io/use-waypoint=NAME (the label
	// only, with a field manager of its own; removed when no longer needed). When false (the
	// default) the waypoint and the labels are the user's: a missing one makes WaypointReady False
	// and the layer-7 edges stay closed.
	// +optional
	Create bool `json:"create,omitempty"`
}
