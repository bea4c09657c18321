package graph

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/util/intstr"
)

// ParseError is a syntax error in a compact edge.
type ParseError struct {
	// Edge is the edge as written.
	Edge string
	// Column is the 1-based position, in characters (not bytes), where the problem starts.
	Column int
	// Message says what was expected.
	Message string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("edge %q: %s", e.Edge, e.Detail())
}

// Detail is the error without the edge: "column 10: port must be 1-65535".
func (e *ParseError) Detail() string {
	return fmt.Sprintf("column %d: %s", e.Column, e.Message)
}

// ParseEdge parses the compact grammar of spec.edges:
//
//	[NAMESPACE "/"] FROM ("->" | "→") [NAMESPACE "/"] TO ":" PORT ["," PORT]... ["/" PATH]
//
// with any number of spaces around the arrow and nowhere else. FROM, NAMESPACE and TO are DNS
// labels, PORT a number (1-65535, no leading zero) or a container port name, PATH printable ASCII
// without spaces with "*" allowed only as its last character (a prefix match). Ports keep the order
// written and carry no protocol: defaults are a Graph's business.
func ParseEdge(s string) (Edge, error) {
	p := parser{src: s}
	e, err := p.edge()
	if err != nil {
		return Edge{}, err
	}
	return e, nil
}

// parser walks the edge byte by byte but counts columns in characters, so that an error after a
// "→" points where a reader sees it.
type parser struct {
	src string
	pos int // byte offset
	col int // 0-based character column of pos
}

func (p *parser) edge() (Edge, error) {
	var e Edge
	var err error
	if e.From, err = p.label("service name", true); err != nil {
		return e, err
	}
	if p.peek() == '/' {
		p.advance()
		e.FromNamespace = e.From
		if e.From, err = p.label("service name", true); err != nil {
			return e, err
		}
	}
	p.spaces()
	if err := p.arrow(); err != nil {
		return e, err
	}
	p.spaces()
	if e.To, err = p.label("service name", false); err != nil {
		return e, err
	}
	if p.peek() == '/' {
		p.advance()
		e.ToNamespace = e.To
		if e.To, err = p.label("service name", false); err != nil {
			return e, err
		}
	}
	if p.peek() != ':' {
		return e, p.errorf(p.col, "expected \":\" and a port, found %s", p.found())
	}
	p.advance()
	for {
		port, err := p.port()
		if err != nil {
			return e, err
		}
		e.Ports = append(e.Ports, port)
		if p.peek() != ',' {
			break
		}
		p.advance()
	}
	switch p.peek() {
	case '/':
		path, err := p.path()
		if err != nil {
			return e, err
		}
		e.Paths = []string{path}
	case eof:
	default:
		return e, p.errorf(p.col, "expected \",\", \"/\" and a path, or the end of the edge, found %s", p.found())
	}
	return e, nil
}

const eof = -1

// peek returns the next character, eof at the end (utf8.RuneError for an invalid byte).
func (p *parser) peek() rune {
	if p.pos >= len(p.src) {
		return eof
	}
	if c := p.src[p.pos]; c < utf8.RuneSelf {
		return rune(c)
	}
	r, _ := utf8.DecodeRuneInString(p.src[p.pos:])
	return r
}

func (p *parser) advance() {
	n := 1
	if p.src[p.pos] >= utf8.RuneSelf {
		_, n = utf8.DecodeRuneInString(p.src[p.pos:])
	}
	p.pos += n
	p.col++
}

// found names the next character for a message.
func (p *parser) found() string {
	if r := p.peek(); r != eof {
		return fmt.Sprintf("%q", string(r))
	}
	return "the end of the edge"
}

func (p *parser) errorf(col int, format string, args ...any) error {
	return &ParseError{Edge: p.src, Column: col + 1, Message: fmt.Sprintf(format, args...)}
}

func (p *parser) spaces() {
	for p.peek() == ' ' {
		p.advance()
	}
}

func (p *parser) arrow() error {
	switch {
	case p.peek() == '→':
		p.advance()
	case p.peek() == '-' && p.pos+1 < len(p.src) && p.src[p.pos+1] == '>':
		p.advance()
		p.advance()
	default:
		return p.errorf(p.col, "expected \"->\" or \"→\", found %s", p.found())
	}
	return nil
}

// word reads the longest run of [a-z0-9-]; stopAtArrow leaves the "-" of a "->" to the arrow.
func (p *parser) word(stopAtArrow bool) (start int, w string) {
	start, from := p.col, p.pos
	for r := p.peek(); isLower(r) || isDigit(r) || r == '-'; r = p.peek() {
		if stopAtArrow && r == '-' && p.pos+1 < len(p.src) && p.src[p.pos+1] == '>' {
			break
		}
		p.advance()
	}
	return start, p.src[from:p.pos]
}

// label reads a DNS label; what names it in messages.
func (p *parser) label(what string, stopAtArrow bool) (string, error) {
	start, w := p.word(stopAtArrow)
	if w == "" {
		return "", p.errorf(start, "expected a %s, found %s", what, p.found())
	}
	if p.peek() == '/' {
		what = "namespace" // the word is the NAMESPACE of NAMESPACE/NAME
	}
	if err := checkLabel(w, what); err != nil {
		return "", p.errorf(start, "%s", err)
	}
	return w, nil
}

func (p *parser) port() (Port, error) {
	start, w := p.word(false)
	if w == "" {
		return Port{}, p.errorf(start, "expected a port (a number or a port name), found %s", p.found())
	}
	port, err := parsePort(w)
	if err != nil {
		return Port{}, p.errorf(start, "%s", err)
	}
	if n := numberPrefix(w); n != "" {
		return Port{}, p.errorf(start, "port %q: did you mean %s/%s? A port name that starts with a port number is refused: %s",
			w, n, w[len(n):], forgottenSlash)
	}
	return Port{Port: port}, nil
}

// forgottenSlash ends the message for a port name such as "5432data". Names like "8080-tcp"
// (OpenShift's default) are fine: a hyphen is not a slash one forgot.
const forgottenSlash = `it is most likely a forgotten "/"`

// numberPrefix is the leading port number of a word made of a number and a letter ("5432data"),
// or "".
func numberPrefix(w string) string {
	i := strings.IndexFunc(w, func(r rune) bool { return r < '0' || r > '9' })
	if i <= 0 || w[0] == '0' || !isLower(rune(w[i])) {
		return ""
	}
	return w[:i]
}

func (p *parser) path() (string, error) {
	start := p.pos
	for r := p.peek(); r != eof; r = p.peek() {
		if !isPathChar(r) {
			return "", p.errorf(p.col, "a path takes printable ASCII characters other than space, found %s", p.found())
		}
		p.advance()
		if r == '*' && p.peek() != eof {
			return "", p.errorf(p.col-1, "\"*\" may only end a path (a prefix match)")
		}
	}
	return p.src[start:], nil
}

// parsePort reads a port written as a number or a name, the word being [a-z0-9-]+.
func parsePort(w string) (intstr.IntOrString, error) {
	if !isNumber(w) {
		return intstr.FromString(w), checkPortName(w)
	}
	if len(w) > 5 {
		return intstr.IntOrString{}, errPortRange // and keep Atoi away from overflow
	}
	n := 0
	for _, c := range w {
		n = n*10 + int(c-'0')
	}
	switch {
	case n < 1 || n > 65535:
		return intstr.IntOrString{}, errPortRange
	case w[0] == '0':
		return intstr.IntOrString{}, errLeadingZero
	}
	return intstr.FromInt32(int32(n)), nil
}

func isNumber(w string) bool {
	for _, c := range w {
		if !isDigit(c) {
			return false
		}
	}
	return w != ""
}
