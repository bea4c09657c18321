package traffic

import (
	"bytes"
	"cmp"
	_ "embed"
	"fmt"
	"html/template"
	"math"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/servicegraph/servicegraph-operator/internal/graph"
	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// Verdict is what a drawn edge says of its traffic.
type Verdict string

const (
	VerdictAllowed   Verdict = "allowed"
	VerdictRefused   Verdict = "refused"
	VerdictPlaintext Verdict = "plaintext"
	VerdictUndecided Verdict = "undecided"
	VerdictUnused    Verdict = "unused"
)

// Verdicts are the legend's entries in its order; edges are drawn in the reverse order, so that
// a refusal is never hidden under an allowed or unused edge.
var Verdicts = []Verdict{VerdictAllowed, VerdictRefused, VerdictPlaintext, VerdictUndecided, VerdictUnused}

// Style is how an edge of a verdict is drawn: colour, width and dashes tell verdicts apart even
// for readers who do not see the colours.
type Style struct {
	Colour  string // #rrggbb
	Width   string
	Dashes  string // an SVG stroke-dasharray, "" for a solid line
	Caption string
}

var styles = map[Verdict]Style{
	VerdictAllowed:   {"#2e7d32", "2", "", "allowed"},
	VerdictRefused:   {"#d32f2f", "4", "", "would be refused"},
	VerdictPlaintext: {"#ef6c00", "3", "8 4", "plain text refused by STRICT mTLS"},
	VerdictUndecided: {"#757575", "2", "", "undecided"},
	VerdictUnused:    {"#9e9e9e", "2.5", "1 5", "declared but unused"},
}

// Style is the verdict's drawing style.
func (v Verdict) Style() Style { return styles[v] }

// Colours of the nodes, exported so that a screenshot can be checked against them.
const (
	NodeColour    = "#dbe9f6" // a workload or declared service
	OutsideColour = "#fff3c4" // a party outside the namespaces: an address, an identity, an external peer
	GroupColour   = "#f4f6f8" // a namespace's box
)

// Outside is the group of parties that are no workload of a namespace.
const Outside = "(outside)"

// Rect is a box in the drawing, in pixels from its top left corner.
type Rect struct{ X, Y, W, H int }

// Contains tells whether the point is in the box.
func (r Rect) Contains(x, y int) bool { return x >= r.X && x < r.X+r.W && y >= r.Y && y < r.Y+r.H }

// Drawing is where everything of the picture goes. HTML renders it; tests read it to know where
// to look in a screenshot.
type Drawing struct {
	Width, Height int
	// Summary is Report.Summary, Headline as much of it as the drawing's width holds; Counts the
	// report's numbers in a line; Window its time window, "" when unknown.
	Title, Summary, Headline, Counts, Window string
	// Legend holds one Swatch per verdict (a filled square of its colour), whatever the report.
	Legend  Rect
	Entries []LegendEntry
	Groups  []Group
	Nodes   []Node
	Edges   []Edge
}

// LegendEntry is one verdict's line sample, swatch and caption.
type LegendEntry struct {
	Verdict      Verdict
	Style        Style
	Swatch       Rect
	LineY, LineX int
	TextX        int
}

// Group is a namespace's box (or the outside's).
type Group struct {
	Name string
	Box  Rect
	Fill string
}

// Node is a workload, declared service or outside party: a circle centred on X, Y.
type Node struct {
	ID, Label, Group string
	X, Y, R          int
	Fill             string
	// LabelX, LabelY and Anchor (an SVG text-anchor) place the label, away from the edges.
	LabelX, LabelY int
	Anchor         string
	outX, outY     float64 // away from the group's middle: where a call to itself loops
}

// Edge is an observed flow or a declared edge, as a curve from one node to another.
type Edge struct {
	ID, From, To string
	Verdict      Verdict
	Style        Style
	// Label is the port(s) and path, and the count when observed; Detail the whole finding.
	Label, Detail string
	Count         string
	// Path is the SVG path data; LabelX, LabelY the curve's middle; ProbeX, ProbeY a point of the
	// curve a third of the way, away from the label and the nodes.
	Path                           string
	LabelX, LabelY, ProbeX, ProbeY float64
	// The table's columns: the connection as the text report spells it, how often and when it
	// was last seen, the refusing layer and what decided.
	Connection, Seen, LastSeen, Layer, By string
}

// Layout, in pixels.
const (
	margin     = 20
	top        = 130
	cellW      = 180
	cellH      = 72
	groupGap   = 80
	groupHead  = 28
	groupPad   = 16
	maxRows    = 10
	maxWidth   = 1800 // wider, the boxes wrap to another row
	nodeR      = 14
	labelChars = 26
)

// Draw lays the report out: the namespaces as boxes from left to right (parties outside them
// first; another row of boxes past maxWidth), the nodes of each on a circle or in columns, and
// every flow and unused edge as a curve bent to one side, so that the two directions of a pair
// and several ports between the same ends stay apart. Everything is sorted: the same report
// draws the same picture.
func (r *Report) Draw() *Drawing {
	d := &Drawing{Title: "servicegraph audit", Summary: r.Summary(10), Counts: strings.TrimSuffix(strings.SplitN(string(r.Text()), "\n", 2)[0], "\n")}
	if !r.Since.IsZero() || !r.Until.IsZero() {
		d.Window = fmt.Sprintf("window %s to %s", r.Since.UTC().Format("2006-01-02T15:04:05Z"), r.Until.UTC().Format("2006-01-02T15:04:05Z"))
	}
	nodes := map[string]Node{}
	addNode := func(id, label, group string) string {
		if _, ok := nodes[id]; !ok {
			fill := NodeColour
			if group == Outside {
				fill = OutsideColour
			}
			nodes[id] = Node{ID: id, Label: label, Group: group, R: nodeR, Fill: fill}
		}
		return id
	}
	// party is a flow's end: a workload, else the graph's external peer that stands for it (for a
	// flow into that graph's namespace), else its identity or address. Peers are named alone, so
	// two graphs' peers of one name are one node.
	party := func(p Party, into string) string {
		for _, g := range r.Graphs {
			for _, s := range g.Services {
				if !p.Known() && g.Namespace == into && s.External != nil && callerIs(g, s.Name, p, nil) {
					return addNode(s.Name, s.Name, Outside)
				}
			}
		}
		if p.Known() {
			return addNode(p.String(), p.Workload, p.Namespace)
		}
		if _, ns, sa, ok := semantics.ParsePrincipal(p.Principal); ok && p.String() == p.Principal {
			return addNode(p.String(), "ns/"+ns+"/sa/"+sa, Outside) // the trust domain is the same for all
		}
		return addNode(p.String(), p.String(), Outside)
	}
	service := func(g *graph.Graph, ns, name string) string {
		s, ok := g.Service(name)
		switch {
		case ok && s.External != nil:
			return addNode(name, name, Outside)
		case ok:
			ns = s.Namespace
		}
		ns = cmp.Or(ns, g.Namespace)
		return addNode(ns+"/"+name, name, ns)
	}
	for _, g := range r.Graphs {
		for _, s := range g.Services {
			service(g, "", s.Name)
		}
	}
	for v, list := range map[Verdict][]Finding{VerdictRefused: r.Refused, VerdictPlaintext: r.Plaintext, VerdictUndecided: r.Undecided, VerdictAllowed: r.AllowedFlows} {
		for _, f := range list {
			e := Edge{From: party(f.Flow.From, f.Flow.To.Namespace), To: party(f.Flow.To, ""), Verdict: v, Count: strconv.FormatFloat(f.Flow.Count, 'f', -1, 64)}
			target := findingTarget(f)
			e.ID = e.From + "->" + e.To + ":" + target
			e.Label = target + " · " + e.Count
			e.Detail = findingDetail(f)
			e.Connection, e.Seen, e.LastSeen, e.Layer, e.By = f.String(), count(f.Flow), lastSeen(f.Flow), f.Layer, strings.TrimSpace(f.By+" "+paren(f.Detail))
			d.Edges = append(d.Edges, e)
		}
	}
	for _, u := range r.unusedEdges() {
		e := Edge{From: service(u.g, u.e.FromNamespace, u.e.From), To: service(u.g, u.e.ToNamespace, u.e.To), Verdict: VerdictUnused}
		e.ID = e.From + "->" + e.To + ":" + u.e.Target()
		e.Label, e.Detail = u.e.Target(), u.name+": declared, no observed flow used it"
		e.Connection, e.Seen, e.LastSeen = u.name, "-", "-"
		d.Edges = append(d.Edges, e)
	}
	rank := func(v Verdict) int { return -slices.Index(Verdicts, v) }
	slices.SortFunc(d.Edges, func(a, b Edge) int {
		return cmp.Or(cmp.Compare(rank(a.Verdict), rank(b.Verdict)), strings.Compare(a.ID, b.ID), strings.Compare(a.Detail, b.Detail))
	})
	// Two flows can share ends and port (TCP and UDP, or two Services): every edge keeps a name.
	seen := map[string]int{}
	for i := range d.Edges {
		id := d.Edges[i].ID
		if seen[id]++; seen[id] > 1 {
			d.Edges[i].ID = id + "#" + strconv.Itoa(seen[id])
		}
	}
	d.placeNodes(nodes)
	d.placeEdges()
	d.placeLegend()
	d.Headline = short(d.Summary, (d.Width-2*margin)/7)
	return d
}

// placeNodes fills the groups' boxes left to right, the outside first, and sizes the drawing. A
// namespace of four nodes or more is a circle (no three nodes in a line, so no edge runs through a
// node), its labels outward; smaller ones and the outside are columns.
func (d *Drawing) placeNodes(nodes map[string]Node) {
	byGroup := map[string][]Node{}
	for _, n := range nodes {
		byGroup[n.Group] = append(byGroup[n.Group], n)
	}
	names := make([]string, 0, len(byGroup))
	for g := range byGroup {
		names = append(names, g)
	}
	slices.SortFunc(names, func(a, b string) int {
		outside := func(s string) int { return map[bool]int{true: 0, false: 1}[s == Outside] }
		return cmp.Or(cmp.Compare(outside(a), outside(b)), strings.Compare(a, b))
	})
	x, y, bottom, width := margin, top, top, 0
	for _, name := range names {
		list := byGroup[name]
		slices.SortFunc(list, func(a, b Node) int { return strings.Compare(a.ID, b.ID) })
		place := circle
		if name == Outside || len(list) < 4 {
			place = columns
		}
		box := place(slices.Clone(list), x, y)
		if x > margin && box.X+box.W > maxWidth { // the next row of boxes
			x, y = margin, bottom+groupGap/2
			box = place(list, x, y)
		} else {
			place(list, x, y)
		}
		d.Nodes = append(d.Nodes, list...)
		d.Groups = append(d.Groups, Group{Name: name, Box: box, Fill: GroupColour})
		x += box.W + groupGap
		bottom, width = max(bottom, box.Y+box.H), max(width, box.X+box.W)
	}
	d.Width = max(width+margin, margin+legendWidth())
	d.Height = bottom + margin
}

// columns places nodes in columns of at most maxRows, labels below them.
func columns(list []Node, x, y int) Rect {
	cols := (len(list) + maxRows - 1) / maxRows
	rows := (len(list) + cols - 1) / cols
	for i := range list {
		n := &list[i]
		n.X = x + groupPad + (i/rows)*cellW + cellW/2
		n.Y = y + groupHead + (i%rows)*cellH + nodeR + 8
		n.LabelX, n.LabelY, n.Anchor, n.outX, n.outY = n.X, n.Y+nodeR+15, "middle", 0, -1
	}
	return Rect{X: x, Y: y, W: 2*groupPad + cols*cellW, H: groupHead + rows*cellH + groupPad}
}

// circle places nodes clockwise from the top on a circle sized to give each about spacing pixels.
func circle(list []Node, x, y int) Rect {
	const spacing, minR = 75, 110
	r := max(minR, int(float64(len(list)*spacing)/(2*math.Pi)))
	side := 0 // room for the longest label (cut at labelChars), at about 7 pixels a character
	for _, n := range list {
		side = max(side, min(len([]rune(n.Label)), labelChars)*7+nodeR+12)
	}
	cx, cy := x+groupPad+side+r, y+groupHead+24+r
	for i := range list {
		n := &list[i]
		a := -math.Pi/2 + 2*math.Pi*float64(i)/float64(len(list))
		n.outX, n.outY = math.Cos(a), math.Sin(a)
		n.X, n.Y = cx+int(math.Round(float64(r)*n.outX)), cy+int(math.Round(float64(r)*n.outY))
		switch {
		case n.outX > 0.3:
			n.LabelX, n.LabelY, n.Anchor = n.X+nodeR+5, n.Y+4, "start"
		case n.outX < -0.3:
			n.LabelX, n.LabelY, n.Anchor = n.X-nodeR-5, n.Y+4, "end"
		case n.outY > 0:
			n.LabelX, n.LabelY, n.Anchor = n.X, n.Y+nodeR+15, "middle"
		default:
			n.LabelX, n.LabelY, n.Anchor = n.X, n.Y-nodeR-6, "middle"
		}
	}
	return Rect{X: x, Y: y, W: 2*groupPad + 2*side + 2*r, H: groupHead + 24 + 2*r + 32 + groupPad}
}

// placeEdges draws each edge as a quadratic curve between its nodes' rims, bent by a fifth of its
// length plus a step per earlier edge between the same ends; a call to itself is a loop outwards.
func (d *Drawing) placeEdges() {
	at := map[string]Node{}
	for _, n := range d.Nodes {
		at[n.ID] = n
	}
	seen := map[string]int{}
	for i := range d.Edges {
		e := &d.Edges[i]
		e.Style = styles[e.Verdict]
		a, b := at[e.From], at[e.To]
		k := seen[e.From+"\x00"+e.To]
		seen[e.From+"\x00"+e.To]++
		ax, ay, bx, by := float64(a.X), float64(a.Y), float64(b.X), float64(b.Y)
		if e.From == e.To {
			// A loop outwards: out is away from the group, (px, py) across it.
			h, ox, oy := 30+12*float64(k), a.outX, a.outY
			px, py := -oy, ox
			at := func(along, across float64) (float64, float64) {
				return ax + ox*along + px*across, ay + oy*along + py*across
			}
			x0, y0 := at(nodeR, 5)
			x1, y1 := at(2*h, h)
			x2, y2 := at(2*h, -h)
			x3, y3 := at(nodeR+3, -5)
			e.Path = fmt.Sprintf("M %.1f %.1f C %.1f %.1f %.1f %.1f %.1f %.1f", x0, y0, x1, y1, x2, y2, x3, y3)
			e.LabelX, e.LabelY = at(1.6*h, 0)
			e.ProbeX, e.ProbeY = at(1.2*h, 0.7*h)
			continue
		}
		dx, dy := bx-ax, by-ay
		length := math.Hypot(dx, dy)
		bend := max(16, length/5) + 18*float64(k)
		cx, cy := (ax+bx)/2-dy/length*bend, (ay+by)/2+dx/length*bend
		// Start and end on the rims, along the curve's tangents (towards the control point).
		sx, sy := toward(ax, ay, cx, cy, nodeR+2)
		ex, ey := toward(bx, by, cx, cy, nodeR+5)
		e.Path = fmt.Sprintf("M %.1f %.1f Q %.1f %.1f %.1f %.1f", sx, sy, cx, cy, ex, ey)
		e.LabelX, e.LabelY = quad(sx, cx, ex, 0.5), quad(sy, cy, ey, 0.5)
		e.ProbeX, e.ProbeY = quad(sx, cx, ex, 0.3), quad(sy, cy, ey, 0.3)
	}
}

// toward is the point at distance r from x, y in the direction of tx, ty.
func toward(x, y, tx, ty, r float64) (float64, float64) {
	l := math.Hypot(tx-x, ty-y)
	return x + (tx-x)/l*r, y + (ty-y)/l*r
}

func quad(p0, p1, p2, t float64) float64 { return (1-t)*(1-t)*p0 + 2*(1-t)*t*p1 + t*t*p2 }

// placeLegend puts one entry per verdict in a row above the namespaces: a line as the edges are
// drawn, a square of the colour, the caption.
func (d *Drawing) placeLegend() {
	const y = 96
	x := margin
	for _, v := range Verdicts {
		d.Entries = append(d.Entries, LegendEntry{Verdict: v, Style: styles[v], LineX: x, LineY: y, Swatch: Rect{X: x + 44, Y: y - 7, W: 14, H: 14}, TextX: x + 64})
		x += legendEntryWidth(v)
	}
	d.Legend = Rect{X: margin, Y: y - 12, W: x - margin, H: 24}
}

// legendEntryWidth leaves room for the caption at about 6.5 pixels a character (11px sans-serif).
func legendEntryWidth(v Verdict) int { return 64 + len(styles[v].Caption)*13/2 + 28 }

func legendWidth() int {
	w := 0
	for _, v := range Verdicts {
		w += legendEntryWidth(v)
	}
	return w
}

// findingTarget is the port judged (with its protocol when not TCP) and the path(s).
func findingTarget(f Finding) string {
	port := "?"
	if f.Port != 0 {
		port = strconv.Itoa(int(f.Port))
	}
	if p := cmp.Or(f.Flow.Protocol, corev1.ProtocolTCP); p != corev1.ProtocolTCP {
		port += "(" + string(p) + ")"
	}
	switch {
	case f.Path != "":
		return port + f.Path
	case len(f.Flow.Paths) > 2:
		return port + strings.Join(f.Flow.Paths[:2], ",") + ",…"
	}
	return port + strings.Join(f.Flow.Paths, ",")
}

func findingDetail(f Finding) string {
	s := f.String() + ": " + count(f.Flow)
	if f.Layer != "" || f.By != "" {
		s += ", at " + strings.TrimSpace(f.Layer+" by "+f.By)
	}
	if f.Detail != "" {
		s += " (" + f.Detail + ")"
	}
	return s
}

type unusedEdge struct {
	g    *graph.Graph
	e    graph.Edge
	name string
}

// unusedEdges finds the graphs' edges Unused names (as the graph's author wrote them).
func (r *Report) unusedEdges() []unusedEdge {
	var out []unusedEdge
	for _, g := range r.Graphs {
		for _, e := range g.Edges {
			if name := g.Namespace + ": " + local(g, e); slices.Contains(r.Unused, name) {
				out = append(out, unusedEdge{g, e, name})
			}
		}
	}
	return out
}

//go:embed html/audit.html.tmpl
var pageTemplate string

var page = template.Must(template.New("audit").Funcs(template.FuncMap{
	"short":      short,
	"labelChars": func() int { return labelChars },
	"add":        func(a, b int) int { return a + b },
	"px":         func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
}).Parse(pageTemplate))

// short cuts a text to n characters, the last an ellipsis.
func short(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// tableOrder lists the findings worst first.
var tableOrder = []Verdict{VerdictRefused, VerdictPlaintext, VerdictUndecided, VerdictUnused, VerdictAllowed}

// HTML prints the report as one self-contained page: the drawing as inline SVG (no script, no
// fetch: its Content-Security-Policy forbids both), then every edge drawn as a row of a table.
func (r *Report) HTML() []byte {
	d := r.Draw()
	rows := slices.Clone(d.Edges)
	slices.SortStableFunc(rows, func(a, b Edge) int {
		return cmp.Compare(slices.Index(tableOrder, a.Verdict), slices.Index(tableOrder, b.Verdict))
	})
	var b bytes.Buffer
	if err := page.Execute(&b, struct {
		*Drawing
		Rows    []Edge
		Covered bool
	}{d, rows, r.Covered()}); err != nil {
		panic(err) // the template and its data are this file's: a failure is a bug
	}
	return b.Bytes()
}
