package rules

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"
)

// Wildcard patterns (the `match:` key). A pattern is compared with the whole message, word
// by word, after folding case and accents (see Fold):
//
//	hello                 exactly "hello" ("Hello!", "HÉLLO" too)
//	* help *              "help" anywhere: * is zero or more words
//	my name is {name}     {name} captures one or more words, as match.name
//	password*             a * inside a word: "password", "passwords", "password's"
//	(hi|hello|hey) *      one of several words or phrases
//	[please] reset *      an optional word or phrase; [a|b] is an optional choice
//
// Unnamed * captures are available as match.star1, match.star2, ... in order. Captured text
// is the user's original text (case and accents kept).

const (
	maxPatternLen        = 1024 // bytes of one pattern
	maxPatternElems      = 64   // words and wildcards in one expansion
	maxPatternExpansions = 128  // combinations of (a|b) and [c] in one pattern
)

type elemKind uint8

const (
	elWord elemKind = iota // a literal word
	elGlob                 // a word with * inside
	elAny1                 // exactly one word (first word of a {name} capture)
	elStar                 // zero or more words
)

type elem struct {
	kind elemKind
	word string    // elWord
	glob *[]string // elGlob: the literal pieces around the *s (behind a pointer: elements are mostly words)
}

// capture names a span of elements [from, to).
type capture struct {
	name     string
	from, to int
}

// flatPattern is one expansion of a pattern: a sequence with no alternatives.
type flatPattern struct {
	elems []elem
	caps  []capture
}

// pnode is a parsed pattern before expansion.
type pnode struct {
	kind byte   // 'w' word text, '*' star, 'c' capture, 'a' alternatives, 'o' optional
	col  int32  // offset in the pattern (pparser's), for errors
	text string // the word ('w'), the capture's name ('c')
	alts [][]pnode
}

type patternError struct {
	col int // rune offset
	msg string
}

func (e *patternError) Error() string { return e.msg }

// parsePattern parses and expands a wildcard pattern.
func parsePattern(src string) ([]flatPattern, error) {
	return parsePatternIn(src, nil)
}

// compileArena hands out compiled rules, their templates, and the slices of both, from a
// few large blocks, so that loading a rule set makes fewer, larger allocations; it also
// keeps the pattern parser's scratch nodes. One goroutine uses it at a time. A nil
// *compileArena allocates each.
type compileArena struct {
	rules    []rule
	tmpls    []template
	elems    []elem
	caps     []capture
	pats     []pattern
	strs     []string
	msgs     [][]*template
	tmplPtrs []*template
	nodes    []pnode // scratch: the top level of the pattern being parsed
	// progs and facts are the programs and checks of the expressions this goroutine has
	// compiled (compiler.compileIn, compiler.factsOf).
	progs map[compiled]*vm.Program
	facts map[ast.Node]*exprFacts
}

// arenaBlock is how many items one block of a compileArena holds; slices of more than a
// sixteenth of that are allocated on their own.
const arenaBlock = 1024

// carve returns an empty slice with room for n, from the block (a new one when it is full).
// The slice's capacity is n, so that appending past it copies.
func carve[T any](block *[]T, n int) []T {
	if n > arenaBlock/16 {
		return make([]T, 0, n)
	}
	if cap(*block)-len(*block) < n {
		*block = make([]T, 0, arenaBlock)
	}
	l := len(*block)
	*block = (*block)[:l+n]
	return (*block)[l : l : l+n]
}

// newElems returns an empty slice of pattern elements with room for n.
func (a *compileArena) newElems(n int) []elem {
	if a == nil {
		return make([]elem, 0, n)
	}
	return carve(&a.elems, n)
}

// newCaps returns an empty slice of captures with room for n.
func (a *compileArena) newCaps(n int) []capture {
	if a == nil {
		return make([]capture, 0, n)
	}
	return carve(&a.caps, n)
}

// newPats returns an empty slice of patterns with room for n.
func (a *compileArena) newPats(n int) []pattern {
	if a == nil {
		return make([]pattern, 0, n)
	}
	return carve(&a.pats, n)
}

// newStrs returns an empty slice of strings with room for n.
func (a *compileArena) newStrs(n int) []string {
	if a == nil {
		return make([]string, 0, n)
	}
	return carve(&a.strs, n)
}

// newMsgs returns an empty slice of messages with room for n.
func (a *compileArena) newMsgs(n int) [][]*template {
	if a == nil {
		return make([][]*template, 0, n)
	}
	return carve(&a.msgs, n)
}

// newTmplPtrs returns an empty slice of templates with room for n.
func (a *compileArena) newTmplPtrs(n int) []*template {
	if a == nil {
		return make([]*template, 0, n)
	}
	return carve(&a.tmplPtrs, n)
}

// newTemplate returns a zero template.
func (a *compileArena) newTemplate() *template {
	if a == nil {
		return new(template)
	}
	if len(a.tmpls) == cap(a.tmpls) {
		a.tmpls = make([]template, 0, 128)
	}
	a.tmpls = a.tmpls[:len(a.tmpls)+1]
	return &a.tmpls[len(a.tmpls)-1]
}

// newRule returns a zero rule.
func (a *compileArena) newRule() *rule {
	if a == nil {
		return new(rule)
	}
	if len(a.rules) == cap(a.rules) {
		a.rules = make([]rule, 0, 64)
	}
	a.rules = a.rules[:len(a.rules)+1]
	return &a.rules[len(a.rules)-1]
}

// parsePatternIn is parsePattern with the slices from a.
func parsePatternIn(src string, a *compileArena) ([]flatPattern, error) {
	if len(src) > maxPatternLen {
		return nil, &patternError{0, fmt.Sprintf("pattern is %d bytes long; the limit is %d", len(src), maxPatternLen)}
	}
	p := &pparser{src: src, n: len(src), ascii: true, arena: a}
	for i := 0; i < len(src); i++ {
		if src[i] >= utf8.RuneSelf {
			p.ascii = false
			if strings.ContainsFunc(src[i:], func(r rune) bool { return r >= utf8.RuneSelf && unicode.IsSpace(r) }) {
				// Offsets are in runes: only a space that is not ASCII needs the runes.
				p.r = []rune(src)
				p.n = len(p.r)
			}
			break
		}
	}
	seq, err := p.seq(0)
	if a != nil && seq != nil {
		defer func() {
			clear(seq) // let go of what the nodes refer to
			a.nodes = seq[:0]
		}()
	}
	if err != nil {
		return nil, err
	}
	if p.i < p.n {
		return nil, &patternError{p.col(p.i), fmt.Sprintf("unexpected '%c': it closes nothing", p.at(p.i))}
	}
	if !slices.ContainsFunc(seq, func(n pnode) bool { return n.kind == 'a' || n.kind == 'o' }) {
		// One expansion: the sequence itself.
		fp, err := flatten(seq, a)
		if err != nil {
			return nil, p.colOf(err)
		}
		if len(fp.elems) == 0 {
			return nil, &patternError{0, "pattern is empty"}
		}
		return []flatPattern{fp}, nil
	}
	exp, err := expand(seq)
	if err != nil {
		return nil, p.colOf(err)
	}
	out := make([]flatPattern, 0, len(exp))
	var seen map[string]bool // keys of the expansions, when there are several
	if len(exp) > 1 {
		seen = make(map[string]bool, len(exp))
	}
	for _, e := range exp {
		fp, err := flatten(e, a)
		if err != nil {
			return nil, p.colOf(err)
		}
		if len(fp.elems) == 0 {
			continue
		}
		if seen != nil {
			k := fp.key()
			if seen[k] {
				continue
			}
			seen[k] = true
		}
		out = append(out, fp)
	}
	if len(out) == 0 {
		return nil, &patternError{0, "pattern is empty"}
	}
	return out, nil
}

// pparser parses a pattern. Its offsets are of bytes, unless the pattern has a space that is
// not ASCII: they are then of runes (r).
type pparser struct {
	src   string
	r     []rune // the runes of src, when it has a space that is not ASCII
	n     int    // bytes or runes
	i     int
	ascii bool // src is ASCII: offsets are columns
	arena *compileArena
}

// at returns the rune at offset i; in bytes, a byte of a rune that is not ASCII is
// utf8.RuneError, a part of a word like any letter.
func (p *pparser) at(i int) rune {
	if p.r == nil {
		if c := p.src[i]; c < utf8.RuneSelf {
			return rune(c)
		}
		return utf8.RuneError
	}
	return p.r[i]
}

// colOf turns the offset of a pattern error from expand or flatten, a pnode's, into a
// rune offset.
func (p *pparser) colOf(err error) error {
	if pe, ok := err.(*patternError); ok {
		pe.col = p.col(pe.col)
	}
	return err
}

// col returns the rune offset of offset i, for errors.
func (p *pparser) col(i int) int {
	if p.r != nil || p.ascii {
		return i
	}
	return utf8.RuneCountInString(p.src[:i])
}

// str returns the runes [from:to] as a string: a part of src when it is ASCII.
func (p *pparser) str(from, to int) string {
	if p.r == nil {
		return p.src[from:to]
	}
	return string(p.r[from:to])
}

// isPatternSpace reports whether c separates the words of a pattern.
func isPatternSpace(c rune) bool {
	if c < utf8.RuneSelf {
		return c == ' ' || '\t' <= c && c <= '\r'
	}
	return unicode.IsSpace(c)
}

// isPatternSyntax reports whether c is one of ( ) [ ] { } |.
func isPatternSyntax(c rune) bool {
	switch c {
	case '(', ')', '[', ']', '{', '}', '|':
		return true
	}
	return false
}

func (p *pparser) seq(depth int) ([]pnode, error) {
	if depth > 8 {
		return nil, &patternError{p.col(p.i), "pattern nests ( ) and [ ] more than 8 deep"}
	}
	var out []pnode
	for p.i < p.n {
		c := p.at(p.i)
		switch {
		case isPatternSpace(c):
			p.i++
		case c == ')' || c == ']' || c == '|':
			return out, nil
		case c == '(' || c == '[':
			start := p.i
			p.i++
			var alts [][]pnode
			for {
				s, err := p.seq(depth + 1)
				if err != nil {
					return nil, err
				}
				alts = append(alts, s)
				if p.i >= p.n {
					want := ')'
					if c == '[' {
						want = ']'
					}
					return nil, &patternError{p.col(start), fmt.Sprintf("'%c' is never closed: add '%c'", c, want)}
				}
				d := p.at(p.i)
				p.i++
				if d == '|' {
					continue
				}
				if c == '(' && d != ')' || c == '[' && d != ']' {
					return nil, &patternError{p.col(p.i - 1), fmt.Sprintf("'%c' closes '%c' opened at column %d", d, c, p.col(start)+1)}
				}
				break
			}
			kind := byte('a')
			if c == '[' {
				kind = 'o'
			}
			for _, a := range alts {
				if len(a) == 0 && kind == 'a' {
					return nil, &patternError{p.col(start), "empty alternative in ( ): use [ ] for an optional word"}
				}
			}
			out = append(out, pnode{kind: kind, alts: alts, col: int32(start)})
		case c == '{':
			start := p.i
			end := start + 1
			for end < p.n && p.at(end) != '}' {
				end++
			}
			if end >= p.n {
				return nil, &patternError{p.col(start), "'{' is never closed: a capture is written {name}"}
			}
			name := p.str(start+1, end)
			if !isIdent(name) {
				return nil, &patternError{p.col(start), fmt.Sprintf("capture name %q is not a name: use letters, digits and _, such as {city}", name)}
			}
			p.i = end + 1
			if p.i < p.n && !unicode.IsSpace(p.at(p.i)) && !strings.ContainsRune(")]|", p.at(p.i)) {
				return nil, &patternError{p.col(start), fmt.Sprintf("capture {%s} must stand alone as a word: put a space after it", name)}
			}
			out = append(out, pnode{kind: 'c', text: name, col: int32(start)})
		case c == '}':
			return nil, &patternError{p.col(p.i), "'}' closes nothing"}
		default:
			start := p.i
			for p.i < p.n && !isPatternSpace(p.at(p.i)) && !isPatternSyntax(p.at(p.i)) {
				p.i++
			}
			if out == nil {
				// Room for the words left, most likely.
				n := 1
				for j := p.i; j < p.n && n < 16; j++ {
					if p.at(j) == ' ' {
						n++
					}
				}
				if depth == 0 && p.arena != nil {
					// The top level only: nothing keeps it once the pattern is flat.
					out = p.arena.nodes[:0]
				} else {
					out = make([]pnode, 0, n)
				}
			}
			if p.i == start+1 && p.at(start) == '*' {
				out = append(out, pnode{kind: '*', col: int32(start)})
			} else {
				out = append(out, pnode{kind: 'w', text: p.str(start, p.i), col: int32(start)})
			}
		}
	}
	return out, nil
}

// expand turns alternatives and optionals into every combination.
func expand(seq []pnode) ([][]pnode, error) {
	if !slices.ContainsFunc(seq, func(n pnode) bool { return n.kind == 'a' || n.kind == 'o' }) {
		return [][]pnode{seq}, nil // one expansion: the sequence itself
	}
	res := [][]pnode{nil}
	for k, n := range seq {
		if n.kind != 'a' && n.kind != 'o' {
			for i := range res {
				res[i] = append(res[i], n)
			}
			continue
		}
		choices := make([][]pnode, 0, len(n.alts)+1)
		for _, a := range n.alts {
			if !slices.ContainsFunc(a, func(n pnode) bool { return n.kind == 'a' || n.kind == 'o' }) {
				choices = append(choices, a) // what expand(a) returns
				continue
			}
			sub, err := expand(a)
			if err != nil {
				return nil, err
			}
			choices = append(choices, sub...)
		}
		if n.kind == 'o' {
			// Tried last: "[a] {item}" gives item "coffee" for "a coffee", not "a coffee".
			choices = append(choices, nil)
		}
		if len(res)*len(choices) > maxPatternExpansions {
			return nil, &patternError{int(n.col), fmt.Sprintf("pattern has more than %d combinations of ( ) and [ ]: split it into several patterns", maxPatternExpansions)}
		}
		next := make([][]pnode, 0, len(res)*len(choices))
		for _, r := range res {
			for _, c := range choices {
				// Room for the nodes after n too, most likely plain.
				x := make([]pnode, 0, len(r)+len(c)+len(seq)-k-1)
				x = append(append(x, r...), c...)
				next = append(next, x)
			}
		}
		res = next
	}
	return res, nil
}

func flatten(seq []pnode, a *compileArena) (flatPattern, error) {
	size := len(seq) // elements, most likely: a word or a * one each, a capture two
	ncaps := 0
	for _, n := range seq {
		switch n.kind {
		case 'c':
			size++
			ncaps++
		case '*':
			ncaps++
		}
	}
	fp := flatPattern{elems: a.newElems(size)}
	if ncaps > 0 {
		fp.caps = a.newCaps(ncaps)
	}
	stars := 0
	for i, n := range seq {
		switch n.kind {
		case '*':
			stars++
			// "* *" is the same as "*"
			if l := len(fp.elems); l > 0 && fp.elems[l-1].kind == elStar && (len(fp.caps) == 0 || fp.caps[len(fp.caps)-1].to != l) {
				continue
			}
			fp.caps = append(fp.caps, capture{name: starName(stars), from: len(fp.elems), to: len(fp.elems) + 1})
			fp.elems = append(fp.elems, elem{kind: elStar})
		case 'c':
			if slices.ContainsFunc(seq[:i], func(m pnode) bool { return m.kind == 'c' && m.text == n.text }) {
				return fp, &patternError{int(n.col), fmt.Sprintf("capture {%s} appears twice in one pattern", n.text)}
			}
			fp.caps = append(fp.caps, capture{name: n.text, from: len(fp.elems), to: len(fp.elems) + 2})
			fp.elems = append(fp.elems, elem{kind: elAny1}, elem{kind: elStar})
		case 'w':
			if strings.Contains(n.text, "*") {
				parts := strings.Split(n.text, "*")
				for i, p := range parts {
					parts[i] = strings.Join(foldWords(p), "")
				}
				fp.elems = append(fp.elems, elem{kind: elGlob, glob: &parts})
				continue
			}
			if isFolded(n.text) {
				fp.elems = append(fp.elems, elem{kind: elWord, word: n.text})
				continue
			}
			var buf [4]token
			for _, t := range tokenize(n.text, buf[:0]) {
				fp.elems = append(fp.elems, elem{kind: elWord, word: t.norm})
			}
		}
	}
	if len(fp.elems) > maxPatternElems {
		return fp, &patternError{0, fmt.Sprintf("pattern has %d words and wildcards; the limit is %d", len(fp.elems), maxPatternElems)}
	}
	return fp, nil
}

// starNames are the names of the first unnamed * captures.
var starNames = [...]string{"star0", "star1", "star2", "star3", "star4", "star5", "star6", "star7", "star8"}

// starName names the k-th unnamed * capture (match.star1, ...).
func starName(k int) string {
	if k < len(starNames) {
		return starNames[k]
	}
	return "star" + strconv.Itoa(k)
}

// isFolded reports whether s is one word as folding leaves it: lower-case ASCII letters and
// digits (foldWords(s) is then exactly s).
func isFolded(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// key identifies a flat pattern for duplicate detection.
func (fp flatPattern) key() string {
	size := 2 * len(fp.elems)
	for _, e := range fp.elems {
		size += len(e.word)
		for _, g := range e.globParts() {
			size += len(g) + 1
		}
	}
	return string(fp.appendKey(make([]byte, 0, size)))
}

// appendKey appends key() to b.
func (fp flatPattern) appendKey(b []byte) []byte {
	for i, e := range fp.elems {
		if i > 0 {
			b = append(b, ' ')
		}
		switch e.kind {
		case elWord:
			b = append(b, e.word...)
		case elGlob:
			for j, g := range *e.glob {
				if j > 0 {
					b = append(b, '*')
				}
				b = append(b, g...)
			}
		case elAny1:
			b = append(b, '?')
		case elStar:
			b = append(b, '*')
		}
	}
	return b
}

// words returns the literal words every match must contain.
func (fp flatPattern) words() []string {
	var out []string
	for _, e := range fp.elems {
		if e.kind == elWord {
			out = append(out, e.word)
		}
	}
	return out
}

// capNames returns the names this pattern captures.
func (fp flatPattern) capNames() []string {
	out := make([]string, len(fp.caps))
	for i, c := range fp.caps {
		out[i] = c.name
	}
	return out
}

// match reports whether toks match the pattern; at receives, for each element, the index of
// the token where it starts (len(elems)+1 entries).
func (fp *flatPattern) match(toks []token, at []int32) bool {
	el := fp.elems
	n, m := len(toks), len(el)
	ti, ei := 0, 0
	starE, starT := -1, -1
	for ti < n {
		if ei < m {
			e := &el[ei]
			if e.kind == elStar {
				at[ei] = int32(ti)
				starE, starT = ei, ti
				ei++
				continue
			}
			if e.matchTok(toks[ti].norm) {
				at[ei] = int32(ti)
				ei++
				ti++
				continue
			}
		}
		if starE < 0 {
			return false
		}
		starT++
		ei, ti = starE+1, starT
	}
	for ei < m && el[ei].kind == elStar {
		at[ei] = int32(ti)
		ei++
	}
	if ei != m {
		return false
	}
	at[m] = int32(n)
	return true
}

// globParts returns the pieces of an elGlob (nil for another element).
func (e *elem) globParts() []string {
	if e.glob == nil {
		return nil
	}
	return *e.glob
}

func (e *elem) matchTok(w string) bool {
	switch e.kind {
	case elWord:
		return e.word == w
	case elAny1:
		return true
	case elGlob:
		return globMatch(*e.glob, w)
	}
	return false
}

// globMatch matches w against pieces separated by *.
func globMatch(parts []string, w string) bool {
	if len(parts) == 1 {
		return parts[0] == w
	}
	if !strings.HasPrefix(w, parts[0]) {
		return false
	}
	w = w[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(w, p)
		if i < 0 {
			return false
		}
		w = w[i+len(p):]
	}
	return len(w) >= len(last) && strings.HasSuffix(w, last)
}

// captures fills dst with the captured text of a successful match.
func (fp *flatPattern) captures(text string, toks []token, at []int32, dst map[string]string) {
	for _, c := range fp.caps {
		a, b := int(at[c.from]), int(at[c.to])
		if b <= a {
			dst[c.name] = ""
			continue
		}
		dst[c.name] = text[toks[a].start:toks[b-1].end]
	}
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if r == '_' || r < utf8.RuneSelf && ('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') || i > 0 && '0' <= r && r <= '9' {
			continue
		}
		return false
	}
	return true
}
