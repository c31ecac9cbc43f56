package rules

import (
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"
)

// template is a reply or a set value: literal text with {{ expr }} parts.
type template struct {
	parts []tmplPart
	whole *vm.Program // the value is exactly one {{ expr }}: its typed result
	lit   string      // no {{ }} at all
	plain bool
}

type tmplPart struct {
	lit  string
	prog *vm.Program
}

// tmplExpr is one {{ }} found in a template, with where its source starts.
type tmplExpr struct {
	src       string
	line, col int // 1-based line and 0-based rune column of src in the template
}

// splitTemplate finds the {{ }} parts; an unclosed {{ is an error at its place.
func splitTemplate(s string) (lits []string, exprs []tmplExpr, err *exprError) {
	rest := s
	off := 0
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			lits = append(lits, rest)
			return lits, exprs, nil
		}
		j := strings.Index(rest[i+2:], "}}")
		if j < 0 {
			l, c := lineCol(s, off+i)
			return nil, nil, &exprError{l, c, "'{{' is never closed: write {{ expression }}"}
		}
		lits = append(lits, rest[:i])
		src := rest[i+2 : i+2+j]
		l, c := lineCol(s, off+i+2)
		if strings.TrimSpace(src) == "" {
			return nil, nil, &exprError{l, c, "empty {{ }}: put an expression inside, such as {{ sender.name }}"}
		}
		exprs = append(exprs, tmplExpr{src: src, line: l, col: c})
		off += i + 2 + j + 2
		rest = rest[i+2+j+2:]
	}
}

// lineCol returns the 1-based line and 0-based rune column of byte offset off in s.
func lineCol(s string, off int) (int, int) {
	line, col := 1, 0
	for i, r := range s {
		if i >= off {
			break
		}
		if r == '\n' {
			line, col = line+1, 0
		} else {
			col++
		}
	}
	return line, col
}

// shift places an error of an expression found at (line, col) of a template.
func (t tmplExpr) shift(e *exprError) *exprError {
	if e.line <= 1 {
		return &exprError{t.line, t.col + e.col, e.msg}
	}
	return &exprError{t.line + e.line - 1, e.col, e.msg}
}

// compileTemplate compiles every {{ }} of s. check is called with each expression's tree for
// extra checks (captures that do not exist, constant arguments).
func (c *compiler) compileTemplate(s string, typed bool, check func(string, ast.Node) *exprError) (*template, *exprError) {
	lits, exprs, err := splitTemplate(s)
	if err != nil {
		return nil, err
	}
	t := &template{}
	if len(exprs) == 0 {
		t.lit, t.plain = s, true
		return t, nil
	}
	for i, e := range exprs {
		p, tree, cerr := c.compile(e.src, false)
		if cerr != nil {
			ee := cerr.(*exprError)
			return nil, e.shift(ee)
		}
		if check != nil {
			if ce := check(e.src, tree); ce != nil {
				return nil, e.shift(ce)
			}
		}
		if lits[i] != "" {
			t.parts = append(t.parts, tmplPart{lit: lits[i]})
		}
		t.parts = append(t.parts, tmplPart{prog: p})
	}
	if l := lits[len(lits)-1]; l != "" {
		t.parts = append(t.parts, tmplPart{lit: l})
	}
	if typed && len(exprs) == 1 && strings.TrimSpace(lits[0]) == "" && strings.TrimSpace(lits[1]) == "" {
		t.whole = t.parts[0].prog
		if t.parts[0].lit != "" {
			t.whole = t.parts[1].prog
		}
	}
	return t, nil
}

// render evaluates the template to text.
func (t *template) render(env *exprEnv) (string, error) {
	if t.plain {
		return t.lit, nil
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.prog == nil {
			b.WriteString(p.lit)
			continue
		}
		v, err := run(p.prog, env)
		if err != nil {
			return "", err
		}
		b.WriteString(format(v))
	}
	return b.String(), nil
}

// value evaluates a set value: the typed result of a lone {{ expr }}, else the text.
func (t *template) value(env *exprEnv) (any, error) {
	if t.whole != nil {
		return run(t.whole, env)
	}
	return t.render(env)
}
