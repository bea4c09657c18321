package compiler

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Object names. Every name is the graph's name, a dash, and a suffix; per-service suffixes start
// with "svc-" (with "wp-" for what a service's waypoint enforces), per-external-peer ones with
// "ext-", and no namespace-wide suffix does, so no service
// or peer name (not even "default-deny" or the graph's own name) can produce another object's
// name, and distinct services get distinct names. Names are unique per kind; the namespace-wide
// PeerAuthentication and Sidecar are the graph's name itself.
const (
	suffixDefaultDeny = "default-deny"
	suffixAllowDNS    = "allow-dns"
	suffixAllowIstiod = "allow-istiod"
	suffixDenyAll     = "deny-all"
	// suffixWaypointDenyAll names the waypoints' allow-nothing; the NetworkPolicy of a waypoint's
	// pods is prefixWaypointPods and the waypoint's name.
	suffixWaypointDenyAll = "waypoint-deny-all"
	prefixWaypointPods    = "waypoint-"
	prefixService         = "svc-"
	prefixWaypoint        = "wp-"
	prefixExternal        = "ext-"
)

// maxNameLength keeps names usable as label values (and short in kubectl output).
const maxNameLength = 63

// hashLength hex digits of SHA-256 keep shortened names apart: 40 bits.
const hashLength = 10

func graphObjectName(graph, suffix string) string {
	return shorten(graph + "-" + suffix)
}

func serviceObjectName(graph, service string) string {
	return shorten(graph + "-" + prefixService + service)
}

func waypointObjectName(graph, service string) string {
	return shorten(graph + "-" + prefixWaypoint + service)
}

func externalObjectName(graph, peer string) string {
	return shorten(graph + "-" + prefixExternal + peer)
}

// shorten cuts a name longer than 63 characters and appends a hash of the full name, so that
// distinct long names stay distinct and the same name always shortens the same way.
func shorten(name string) string {
	if len(name) <= maxNameLength {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	head := strings.TrimRight(name[:maxNameLength-hashLength-1], "-.")
	return head + "-" + hex.EncodeToString(sum[:])[:hashLength]
}
