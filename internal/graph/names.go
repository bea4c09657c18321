package graph

import (
	"errors"
	"fmt"
	"strings"
)

var (
	errPortRange   = errors.New("port must be 1-65535")
	errLeadingZero = errors.New("port must not have a leading zero")
)

func isLower(r rune) bool { return r >= 'a' && r <= 'z' }
func isDigit(r rune) bool { return r >= '0' && r <= '9' }

// isPathChar is printable ASCII other than space, as in an HTTP path.
func isPathChar(r rune) bool { return r >= '!' && r <= '~' }

func onlyLabelChars(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return !isLower(r) && !isDigit(r) && r != '-' }) < 0
}

// checkLabel accepts an RFC 1123 DNS label (service names, namespaces); what names it in messages.
func checkLabel(s, what string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s must not be empty", what)
	case len(s) > 63:
		return fmt.Errorf("%s must be at most 63 characters", what)
	case !onlyLabelChars(s):
		return fmt.Errorf("%s may contain only lowercase letters, digits and \"-\"", what)
	case s[0] == '-' || s[len(s)-1] == '-':
		return fmt.Errorf("%s must start and end with a lowercase letter or digit", what)
	}
	return nil
}

// checkPortName accepts an IANA service name, which is what Kubernetes takes as a container port
// name: at most 15 characters of [a-z0-9-], at least one letter, no "-" at either end or twice in
// a row.
func checkPortName(s string) error {
	switch {
	case s == "":
		return errors.New("port name must not be empty")
	case len(s) > 15:
		return errors.New("port name must be at most 15 characters")
	case !onlyLabelChars(s):
		return errors.New("port name may contain only lowercase letters, digits and \"-\"")
	case s[0] == '-' || s[len(s)-1] == '-':
		return errors.New("port name must start and end with a lowercase letter or digit")
	case strings.Contains(s, "--"):
		return errors.New("port name must not contain \"--\"")
	case strings.IndexFunc(s, isLower) < 0:
		return errors.New("port name must contain a letter")
	}
	return nil
}

// checkPath accepts the HTTP paths Istio matches: exact ("/a"), prefix ("/a/*"), suffix ("*.css")
// and presence ("*"). The compact grammar can only write the first two.
func checkPath(p string) error {
	if p == "" {
		return errors.New("path must not be empty")
	}
	if p[0] != '/' && p[0] != '*' {
		return fmt.Errorf("path %q must start with \"/\" (exact or prefix match) or \"*\" (suffix match)", p)
	}
	for i, r := range p {
		if !isPathChar(r) {
			return fmt.Errorf("path %q: a path takes printable ASCII characters other than space, found %q", p, string(r))
		}
		if r == '*' && p[0] == '/' && i != len(p)-1 {
			return fmt.Errorf("path %q: \"*\" may only end a path that starts with \"/\" (a prefix match)", p)
		}
	}
	return nil
}

// checkMethod accepts an HTTP method name as the CRD does.
func checkMethod(m string) error {
	if m == "" || len(m) > 16 || strings.IndexFunc(m, func(r rune) bool { return r < 'A' || r > 'Z' }) >= 0 {
		return fmt.Errorf("method %q must be 1-16 uppercase letters", m)
	}
	return nil
}
