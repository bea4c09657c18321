package dataplane

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// MatrixTable draws results as one grid, a row per destination:port and a column per source (the
// narrow way round: a scenario has more ports than pods), each cell "ok" (connected), "--"
// (refused) or blank (not tried), and below it each reason a refusal was given, once, with the
// connections it refused: a change between two grids shows at a glance.
func MatrixTable(results []Result, reason func(Probe) string) string {
	type target struct {
		to   *Pod
		port Port
	}
	var sources []*Pod
	var targets []target
	cell := map[target]map[*Pod]bool{}
	refused := map[string][]string{}
	for _, r := range results {
		t := target{r.To, r.Port}
		if !slices.Contains(sources, r.From) {
			sources = append(sources, r.From)
		}
		if cell[t] == nil {
			targets = append(targets, t)
			cell[t] = map[*Pod]bool{}
		}
		cell[t][r.From] = r.Connected
		if !r.Connected {
			why := reason(r.Probe)
			refused[why] = append(refused[why], fmt.Sprintf("%s->%s:%d", r.From.Name, r.To.Name, r.Port.Number))
		}
	}
	slices.SortFunc(sources, func(a, b *Pod) int { return strings.Compare(a.Key(), b.Key()) })
	slices.SortFunc(targets, func(a, b target) int {
		return cmp.Or(strings.Compare(a.to.Key(), b.to.Key()), cmp.Compare(a.port.Number, b.port.Number), strings.Compare(string(a.port.Protocol), string(b.port.Protocol)))
	})
	name := func(t target) string {
		return fmt.Sprintf("%s:%d/%s", t.to.Name, t.port.Number, strings.ToLower(string(t.port.Protocol)))
	}
	firstWidth := len("to \\ from")
	for _, t := range targets {
		firstWidth = max(firstWidth, utf8.RuneCountInString(name(t)))
	}
	widths := make([]int, len(sources))
	for i, src := range sources {
		widths[i] = max(utf8.RuneCountInString(src.Name), 2)
	}
	var b strings.Builder
	line := func(first string, cells []string) {
		row := fmt.Sprintf("  %-*s", firstWidth, first)
		for i, c := range cells {
			row += fmt.Sprintf("  %-*s", widths[i], c)
		}
		b.WriteString(strings.TrimRight(row, " ") + "\n")
	}
	var headers []string
	for _, src := range sources {
		headers = append(headers, src.Name)
	}
	line("to \\ from", headers)
	for _, t := range targets {
		var marks []string
		for _, src := range sources {
			mark := ""
			if connected, tried := cell[t][src]; tried {
				mark = map[bool]string{true: "ok", false: "--"}[connected]
			}
			marks = append(marks, mark)
		}
		line(name(t), marks)
	}
	connected, refusedCount := Count(results)
	fmt.Fprintf(&b, "  %d connected (ok), %d refused (--)\n", connected, refusedCount)
	for _, why := range slices.Sorted(maps.Keys(refused)) {
		slices.Sort(refused[why])
		fmt.Fprintf(&b, "  -- %s:\n       %s\n", why, strings.Join(refused[why], ", "))
	}
	return b.String()
}
