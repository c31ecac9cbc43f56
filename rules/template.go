package rules

import (
	"fmt"
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
	if n := strings.Count(s, "{{"); n > 0 {
		lits, exprs = make([]string, 0, n+1), make([]tmplExpr, 0, n)
	}
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			lits = append(lits, rest)
			return lits, exprs, nil
		}
		j := strings.Index(rest[i+2:], "}}")
		if j < 0 {
			l, c := lineCol(s, off+i)
			return nil, nil, &exprError{line: l, col: c, msg: "'{{' is never closed: write {{ expression }}"}
		}
		lits = append(lits, rest[:i])
		src := rest[i+2 : i+2+j]
		l, c := lineCol(s, off+i+2)
		if strings.TrimSpace(src) == "" {
			return nil, nil, &exprError{line: l, col: c, msg: "empty {{ }}: put an expression inside, such as {{ sender.name }}"}
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
		return &exprError{line: t.line, col: t.col + e.col, msg: e.msg, warn: e.warn}
	}
	return &exprError{line: t.line + e.line - 1, col: e.col, msg: e.msg, warn: e.warn}
}

// compileTemplate compiles every {{ }} of s. check is called with each expression's tree for
// extra checks (captures that do not exist, constant arguments, limits). It returns the
// problems found, warnings included, and a nil template when one of them is an error.
func (c *compiler) compileTemplate(s string, typed bool, check func(string, ast.Node) []*exprError, a *compileArena) (*template, []*exprError) {
	if !strings.Contains(s, "{{") {
		t := a.newTemplate()
		t.lit, t.plain = s, true // what splitTemplate would find
		return t, nil
	}
	lits, exprs, err := splitTemplate(s)
	if err != nil {
		return nil, []*exprError{err}
	}
	t := a.newTemplate()
	if len(exprs) == 0 {
		t.lit, t.plain = s, true
		return t, nil
	}
	t.parts = make([]tmplPart, 0, len(lits)+len(exprs))
	var probs []*exprError
	for i, e := range exprs {
		p, tree, cerr := c.compileIn(e.src, false, a)
		if cerr != nil {
			ee := cerr.(*exprError)
			return nil, append(probs, e.shift(ee))
		}
		if check != nil {
			failed := false
			for _, ce := range check(e.src, tree) {
				probs = append(probs, e.shift(ce))
				failed = failed || !ce.warn
			}
			if failed {
				return nil, probs
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
	return t, probs
}

// literalLen returns the bytes of the template's literal text, which every rendering holds.
func (t *template) literalLen() int {
	if t.plain {
		return len(t.lit)
	}
	n := 0
	for _, p := range t.parts {
		n += len(p.lit)
	}
	return n
}

// render evaluates the template to text: one evaluation, whose budget counts the text of
// every {{ }} it writes.
func (t *template) render(env *exprEnv) (string, error) {
	if t.plain {
		return t.lit, nil
	}
	env.budget.reset()
	var b strings.Builder
	for _, p := range t.parts {
		if p.prog == nil {
			b.WriteString(p.lit)
			continue
		}
		v, err := exec(p.prog, env)
		if err != nil {
			return "", err
		}
		if err := chargeText(env.budget, v); err != nil {
			return "", err
		}
		b.WriteString(format(v))
	}
	return b.String(), nil
}

// value evaluates a set value: the typed result of a lone {{ expr }}, else the text. A
// value is stored, so its text (as JSON) may not be over TextBytes either.
func (t *template) value(env *exprEnv) (any, error) {
	if t.whole == nil {
		return t.render(env)
	}
	v, err := run(t.whole, env)
	if err != nil {
		return nil, err
	}
	if limit := env.budget.textLimit(); textSize(v, limit, true) > limit {
		return nil, &LimitError{Limit: "TextBytes", Msg: fmt.Sprintf("the value to store takes more than %d bytes as text (Limits.TextBytes)", limit)}
	}
	return v, nil
}

// chargeText charges the text of v, about to be written into a reply, to the evaluation's
// budget.
func chargeText(b *budget, v any) error {
	n := 0
	if s, ok := v.(string); ok {
		n = len(s)
	} else {
		n = textSize(v, b.textLimit(), false)
	}
	return b.charge(n, "writing the value of {{ }}")
}
