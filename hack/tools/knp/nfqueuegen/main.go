// Command nfqueuegen generates a `go build -overlay` file that adapts
// sigs.k8s.io/kube-network-policies to kernels without CONFIG_NFT_QUEUE.
//
// Why: such a kernel refuses the enforcer's native nftables `queue` expression,
// the whole rule transaction is refused, and the enforcer, which only logs the
// error, enforces nothing: it fails open, silently. The xtables NFQUEUE target
// through nft_compat does the same job and is built into more kernels.
//
// No upstream code is committed: at build time it reads the package sources
// from a pristine copy of the module (the go command refuses overlays of files
// in the module cache), rewrites them in a position-preserving way (same line
// numbers), writes the results to -out, and emits overlay.json mapping the
// copy's paths to the rewritten files, plus one added file (../nfqueue) in the
// same package.
//
// Rewrites (located with go/ast, spliced into the original text):
//
//	&expr.Queue{...}          -> nfqueueCompat(&expr.Queue{...})      (returns expr.Any)
//	v.Flag = X                -> v = nfqueueCompatUpdate(v, func(q *expr.Queue) { q.Flag = X })
//	                             (for v declared as `v := &expr.Queue{...}`; same for Num/Total)
//
// It fails (exit 1) when the upstream shape it expects is not found, when a
// tracked variable is used in a way it does not understand, or when an
// `expr.Queue` reference is left unrewritten - so a version bump that changes
// the code cannot silently produce an unadapted binary.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

const nftExprPath = "github.com/google/nftables/expr"

type edit struct {
	start, end int // byte offsets in the original source; start==end => insertion
	text       string
}

func main() {
	modDir := flag.String("moddir", "", "module root of sigs.k8s.io/kube-network-policies (go list -m -f {{.Dir}} ...)")
	pkgRel := flag.String("pkg", "pkg/networkpolicy", "package directory inside the module")
	helper := flag.String("helper", "", "helper .go file to add to the package")
	out := flag.String("out", "", "output directory for rewritten files and overlay.json")
	minSites := flag.Int("min-sites", 1, "fail if fewer expr.Queue constructions are found")
	flag.Parse()
	if *modDir == "" || *out == "" || *helper == "" {
		flag.Usage()
		os.Exit(2)
	}
	pkgDir := filepath.Join(*modDir, *pkgRel)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fatal(err)
	}
	entries, err := os.ReadDir(pkgDir)
	if err != nil {
		fatal(err)
	}
	overlay := map[string]string{}
	total := 0
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		path := filepath.Join(pkgDir, name)
		src, err := os.ReadFile(path)
		if err != nil {
			fatal(err)
		}
		newSrc, n, err := rewrite(path, src)
		if err != nil {
			fatal(fmt.Errorf("%s: %w", path, err))
		}
		if n == 0 {
			continue
		}
		total += n
		dst := filepath.Join(*out, name)
		if err := os.WriteFile(dst, newSrc, 0o644); err != nil {
			fatal(err)
		}
		overlay[path] = dst
		fmt.Fprintf(os.Stderr, "nfqueuegen: %s: %d expr.Queue site(s) rewritten -> %s\n", path, n, dst)
	}
	if total < *minSites {
		fatal(fmt.Errorf("found %d expr.Queue constructions in %s, expected >= %d: upstream changed, review the adaptation", total, pkgDir, *minSites))
	}
	helperAbs, err := filepath.Abs(*helper)
	if err != nil {
		fatal(err)
	}
	helperDst := filepath.Join(pkgDir, "zz_nfqueue_compat_overlay.go")
	if _, err := os.Stat(helperDst); err == nil {
		fatal(fmt.Errorf("%s already exists upstream", helperDst))
	}
	overlay[helperDst] = helperAbs
	b, _ := json.MarshalIndent(map[string]any{"Replace": overlay}, "", "  ")
	if err := os.WriteFile(filepath.Join(*out, "overlay.json"), append(b, '\n'), 0o644); err != nil {
		fatal(err)
	}
	fmt.Fprintf(os.Stderr, "nfqueuegen: %d site(s); wrote %s\n", total, filepath.Join(*out, "overlay.json"))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "nfqueuegen:", err)
	os.Exit(1)
}

// rewrite returns the rewritten source and the number of expr.Queue literals.
func rewrite(path string, src []byte) ([]byte, int, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		return nil, 0, err
	}
	exprName := ""
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		if p == nftExprPath {
			exprName = "expr"
			if imp.Name != nil {
				exprName = imp.Name.Name
			}
		}
	}
	if exprName == "" || exprName == "_" || exprName == "." {
		return src, 0, nil
	}
	off := func(p token.Pos) int { return fset.Position(p).Offset }
	isQueueType := func(x ast.Expr) bool {
		sel, ok := x.(*ast.SelectorExpr)
		if !ok || sel.Sel.Name != "Queue" {
			return false
		}
		id, ok := sel.X.(*ast.Ident)
		return ok && id.Name == exprName
	}

	var edits []edit
	handled := map[*ast.SelectorExpr]bool{} // expr.Queue selector nodes we account for
	sites := 0

	// Pass 1: &expr.Queue{...} literals; remember `v := &expr.Queue{...}` vars
	// per enclosing function (identifier names are function-scoped here).
	type fnVars map[string]bool
	tracked := map[*ast.FuncDecl]fnVars{}
	for _, decl := range f.Decls {
		fd, ok := decl.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		vars := fnVars{}
		tracked[fd] = vars
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.UnaryExpr:
				cl, ok := n.X.(*ast.CompositeLit)
				if n.Op == token.AND && ok && isQueueType(cl.Type) {
					edits = append(edits,
						edit{off(n.Pos()), off(n.Pos()), "nfqueueCompat("},
						edit{off(n.End()), off(n.End()), ")"})
					handled[cl.Type.(*ast.SelectorExpr)] = true
					sites++
				}
			case *ast.AssignStmt:
				if n.Tok == token.DEFINE && len(n.Lhs) == 1 && len(n.Rhs) == 1 {
					if u, ok := n.Rhs[0].(*ast.UnaryExpr); ok && u.Op == token.AND {
						if cl, ok := u.X.(*ast.CompositeLit); ok && isQueueType(cl.Type) {
							if id, ok := n.Lhs[0].(*ast.Ident); ok {
								vars[id.Name] = true
							}
						}
					}
				}
			}
			return true
		})
	}

	// Pass 2: field writes on tracked vars; every other field access is an error.
	var problems []string
	for fd, vars := range tracked {
		if len(vars) == 0 {
			continue
		}
		fieldWrites := map[*ast.SelectorExpr]bool{}
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			as, ok := n.(*ast.AssignStmt)
			if !ok || as.Tok != token.ASSIGN || len(as.Lhs) != 1 || len(as.Rhs) != 1 {
				return true
			}
			sel, ok := as.Lhs[0].(*ast.SelectorExpr)
			if !ok {
				return true
			}
			id, ok := sel.X.(*ast.Ident)
			if !ok || !vars[id.Name] {
				return true
			}
			switch sel.Sel.Name {
			case "Num", "Total", "Flag":
			default:
				problems = append(problems, fmt.Sprintf("%s: unsupported write to %s.%s", fset.Position(sel.Pos()), id.Name, sel.Sel.Name))
				return true
			}
			rhs := string(src[off(as.Rhs[0].Pos()):off(as.Rhs[0].End())])
			repl := fmt.Sprintf("%s = nfqueueCompatUpdate(%s, func(q *%s.Queue) { q.%s = %s })",
				id.Name, id.Name, exprName, sel.Sel.Name, rhs)
			edits = append(edits, edit{off(as.Pos()), off(as.End()), repl})
			fieldWrites[sel] = true
			return true
		})
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok || fieldWrites[sel] {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); ok && vars[id.Name] {
				problems = append(problems, fmt.Sprintf("%s: unsupported use %s.%s of an expr.Queue variable", fset.Position(sel.Pos()), id.Name, sel.Sel.Name))
			}
			return true
		})
	}

	// Pass 3: any expr.Queue type reference we did not handle (type
	// assertions, value literals, declarations...) is an error.
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok && isQueueType(sel) && !handled[sel] {
			problems = append(problems, fmt.Sprintf("%s: unhandled reference to %s.Queue", fset.Position(sel.Pos()), exprName))
		}
		return true
	})
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, 0, fmt.Errorf("cannot adapt:\n  %s", strings.Join(problems, "\n  "))
	}
	if sites == 0 {
		return src, 0, nil
	}

	// Apply edits back to front. Insertions at equal offsets keep their
	// relative order (stable sort on descending start).
	sort.SliceStable(edits, func(i, j int) bool { return edits[i].start > edits[j].start })
	out := append([]byte(nil), src...)
	for _, e := range edits {
		if strings.Count(e.text, "\n") != strings.Count(string(src[e.start:e.end]), "\n") {
			return nil, 0, fmt.Errorf("internal: edit would change line numbers")
		}
		out = append(out[:e.start], append([]byte(e.text), out[e.end:]...)...)
	}
	if _, err := parser.ParseFile(token.NewFileSet(), path, out, 0); err != nil {
		return nil, 0, fmt.Errorf("rewritten source does not parse: %w", err)
	}
	return out, sites, nil
}
