package browser_test

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"strconv"
	"testing"
	"time"

	"github.com/servicegraph/servicegraph-operator/internal/traffic"
	"github.com/servicegraph/servicegraph-operator/test/browser"
)

// The screenshot is compared by structure, not pixel by pixel (fonts and antialiasing differ
// between Chromium versions): the picture is where the layout says, in the colours it says.
func TestAuditPageScreenshot(t *testing.T) {
	requireChromium(t)
	s := newShop(t)
	for _, c := range []struct {
		name  string
		flows []traffic.Flow
	}{{"refusing", refusingFlows()}, {"covered", allowedFlows()}} {
		t.Run(c.name, func(t *testing.T) {
			r := s.audit(c.flows)
			d := r.Draw()
			img, res, err := browser.Screenshot(context.Background(), writePage(t, r.HTML()), d.Width, d.Height)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("chromium --screenshot %dx%d: %v", d.Width, d.Height, res.Took.Round(time.Millisecond))
			quiet(t, res)
			if b := img.Bounds(); b.Dx() != d.Width || b.Dy() != d.Height {
				t.Fatalf("screenshot %v, want %dx%d", b, d.Width, d.Height)
			}
			checkScreenshot(t, img, d)
		})
	}
}

func checkScreenshot(t *testing.T, img image.Image, d *traffic.Drawing) {
	t.Helper()
	// Not blank: ink on a good part of it, and the title written at the top left.
	area := img.Bounds().Dx() * img.Bounds().Dy()
	if ink := count(img, img.Bounds(), func(c color.RGBA) bool { return !near(c, rgb("#ffffff"), 8) }); ink < area/10 {
		t.Errorf("%d of %d pixels are not white: blank?", ink, area)
	}
	if ink := count(img, image.Rect(20, 10, 180, 34), func(c color.RGBA) bool { return near(c, rgb("#1b1b1b"), 60) }); ink < 100 {
		t.Errorf("the title has %d dark pixels", ink)
	}
	// The legend shows every verdict's colour, whatever the report holds.
	for _, e := range d.Entries {
		x, y := e.Swatch.X+e.Swatch.W/2, e.Swatch.Y+e.Swatch.H/2
		if c := at(img, x, y); !near(c, rgb(e.Style.Colour), 6) {
			t.Errorf("legend %s at %d,%d is %v, want %s", e.Verdict, x, y, c, e.Style.Colour)
		}
	}
	// Namespace boxes and nodes are where the layout puts them, in their colours.
	for _, g := range d.Groups {
		if c := at(img, g.Box.X+4, g.Box.Y+g.Box.H-4); !near(c, rgb(g.Fill), 6) {
			t.Errorf("box %s: its bottom left corner is %v, want %s", g.Name, c, g.Fill)
		}
	}
	for _, n := range d.Nodes {
		if c := at(img, n.X, n.Y); !near(c, rgb(n.Fill), 6) {
			t.Errorf("node %s: its centre %d,%d is %v, want %s", n.ID, n.X, n.Y, c, n.Fill)
		}
		// Its rim is drawn: dark pixels on the circle, left and right.
		for _, dx := range []int{-n.R, n.R} {
			if count(img, image.Rect(n.X+dx-2, n.Y-2, n.X+dx+3, n.Y+3), func(c color.RGBA) bool { return lum(c) < 140 }) == 0 {
				t.Errorf("node %s: no rim at %d,%d", n.ID, n.X+dx, n.Y)
			}
		}
	}
	// Each curve passes where the layout says, in its verdict's colour.
	drawn := map[traffic.Verdict]bool{}
	for _, e := range d.Edges {
		drawn[e.Verdict] = true
		x, y := int(e.ProbeX), int(e.ProbeY)
		want := rgb(e.Style.Colour)
		if count(img, image.Rect(x-5, y-5, x+6, y+6), func(c color.RGBA) bool { return near(c, want, 40) }) == 0 {
			t.Errorf("curve %s (%s): no %s pixel near %d,%d", e.ID, e.Verdict, e.Style.Colour, x, y)
		}
	}
	// Outside the legend, a saturated verdict colour appears in quantity exactly when the report
	// has an edge of that verdict: red only when something would be refused. (The greys of
	// undecided and unused are also the antialiasing of text: the curves' probes check those.)
	graph := image.Rect(0, d.Legend.Y+d.Legend.H+4, d.Width, d.Height)
	for _, v := range []traffic.Verdict{traffic.VerdictAllowed, traffic.VerdictRefused, traffic.VerdictPlaintext} {
		want := rgb(v.Style().Colour)
		n := count(img, graph, func(c color.RGBA) bool { return near(c, want, 40) })
		switch {
		case drawn[v] && n < 60:
			t.Errorf("%s: %d pixels of %s outside the legend, want a curve's worth", v, n, v.Style().Colour)
		case !drawn[v] && n > 0:
			t.Errorf("%s: nothing is %s, yet %d pixels of %s outside the legend", v, v, n, v.Style().Colour)
		}
		t.Logf("%-9s %6d pixels", v, n)
	}
}

func rgb(hex string) color.RGBA {
	v, err := strconv.ParseUint(hex[1:], 16, 32)
	if err != nil || len(hex) != 7 {
		panic(fmt.Sprintf("colour %q", hex))
	}
	return color.RGBA{uint8(v >> 16), uint8(v >> 8), uint8(v), 255}
}

func at(img image.Image, x, y int) color.RGBA {
	return color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
}

// near tells whether each channel is within tol of the other colour's.
func near(a, b color.RGBA, tol int) bool {
	d := func(x, y uint8) int { return max(int(x)-int(y), int(y)-int(x)) }
	return d(a.R, b.R) <= tol && d(a.G, b.G) <= tol && d(a.B, b.B) <= tol
}

func lum(c color.RGBA) int { return (299*int(c.R) + 587*int(c.G) + 114*int(c.B)) / 1000 }

func count(img image.Image, r image.Rectangle, ok func(color.RGBA) bool) int {
	n := 0
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if ok(at(img, x, y)) {
				n++
			}
		}
	}
	return n
}
