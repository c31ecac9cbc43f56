package rules

import (
	"regexp/syntax"
	"slices"
	"unicode"
	"unicode/utf8"
)

// Regex prefilter. Each regex yields, from its parsed form, a set of literals one of which
// every match contains (requiredLits). The literals and the messages are compared in
// canonical case (canonRune), so that a case-insensitive literal is found whatever the case
// of the message. The literals of all regexes go into one automaton (litIndex) that scans
// the message once; a regex rule is tried only when one of its literals is in the message.
// This is a necessary condition only: the rule's regexes still decide.

const (
	maxExactSet = 16 // strings a sub-expression may be known to match exactly
	maxAltSet   = 64 // literals of one alternation, any one of them required
	maxClass    = 4  // runes of a character class spelled out as literals
)

// canonRune maps every rune of a case-folding orbit (unicode.SimpleFold: k, K and the
// Kelvin sign K; s, S and ſ) to one rune of it, the way regexp compares case-insensitively.
func canonRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		return r
	}
	m := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		m = min(m, f)
	}
	if 'A' <= m && m <= 'Z' {
		m += 'a' - 'A'
	}
	return m
}

// canonText appends s in canonical case to buf. Invalid UTF-8 becomes U+FFFD, as regexp
// reads it.
func canonText(buf []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			buf = append(buf, c)
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		buf = utf8.AppendRune(buf, canonRune(r))
		i += n
	}
	return buf
}

// litInfo is what a sub-expression says about the text it matches: exact, when not nil,
// lists every string it can match (in canonical case); req lists sets of literals, each set
// having one member in every match.
type litInfo struct {
	exact []string
	req   [][]string
}

// requiredLits returns literals (in canonical case) one of which every match of re
// contains, or nil when it finds none worth indexing (a set with an empty member is none).
func requiredLits(re *syntax.Regexp) []string {
	in := litsOf(re)
	return bestSet(in.all())
}

// all returns every required set: req, and exact as a set of its own.
func (in litInfo) all() [][]string {
	if in.exact == nil {
		return in.req
	}
	return append(slices.Clip(in.req), in.exact)
}

// bestSet picks the set whose shortest literal is the longest (fewest literals on a tie);
// sets with an empty literal are worthless.
func bestSet(sets [][]string) []string {
	var best []string
	bestMin := 0
	for _, s := range sets {
		if len(s) == 0 {
			continue
		}
		m := len(s[0])
		for _, l := range s[1:] {
			m = min(m, len(l))
		}
		if m == 0 {
			continue
		}
		if best == nil || m > bestMin || m == bestMin && len(s) < len(best) {
			best, bestMin = s, m
		}
	}
	return best
}

func litsOf(re *syntax.Regexp) litInfo {
	switch re.Op {
	case syntax.OpLiteral:
		var buf [64]byte
		b := buf[:0]
		for _, r := range re.Rune {
			b = utf8.AppendRune(b, canonRune(r)) // canonText(string(re.Rune))
		}
		return litInfo{exact: []string{string(b)}}
	case syntax.OpCharClass:
		return classLits(re.Rune)
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return litInfo{exact: []string{""}}
	case syntax.OpCapture:
		return litsOf(re.Sub[0])
	case syntax.OpQuest:
		sub := litsOf(re.Sub[0])
		if sub.exact != nil && len(sub.exact) < maxExactSet {
			return litInfo{exact: union(sub.exact, []string{""})}
		}
		return litInfo{}
	case syntax.OpPlus:
		return litInfo{req: litsOf(re.Sub[0]).all()}
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return litInfo{req: litsOf(re.Sub[0]).all()}
		}
		return litInfo{}
	case syntax.OpConcat:
		return concatLits(re.Sub)
	case syntax.OpAlternate:
		return altLits(re.Sub)
	}
	// OpNoMatch, OpAnyChar, OpAnyCharNotNL, OpStar: nothing required.
	return litInfo{}
}

// classLits spells out a small character class as one-rune literals.
func classLits(ranges []rune) litInfo {
	n := 0
	for i := 0; i+1 < len(ranges); i += 2 {
		n += int(ranges[i+1]-ranges[i]) + 1
		if n > maxClass {
			return litInfo{}
		}
	}
	var set []string
	for i := 0; i+1 < len(ranges); i += 2 {
		for r := ranges[i]; r <= ranges[i+1]; r++ {
			s := string(utf8.AppendRune(nil, canonRune(r)))
			if !slices.Contains(set, s) {
				set = append(set, s)
			}
		}
	}
	if len(set) == 0 {
		return litInfo{}
	}
	return litInfo{exact: set}
}

// concatLits joins the exact strings of consecutive parts while the set stays small; each
// run that ends becomes a required set.
func concatLits(subs []*syntax.Regexp) litInfo {
	var out litInfo
	empty := []string{""} // only read: the sets are never changed in place
	cur := empty
	exact := true
	flush := func() {
		if !slices.Contains(cur, "") {
			out.req = append(out.req, cur)
		}
		cur = empty
	}
	for _, s := range subs {
		in := litsOf(s)
		out.req = append(out.req, in.req...)
		if in.exact == nil {
			exact = false
			flush()
			continue
		}
		if len(cur)*len(in.exact) > maxExactSet {
			exact = false
			flush()
		}
		// Joining with the empty string alone changes nothing (the sets have no duplicate).
		if len(in.exact) == 1 && in.exact[0] == "" {
			continue
		}
		if len(cur) == 1 && cur[0] == "" {
			cur = in.exact
			continue
		}
		next := make([]string, 0, len(cur)*len(in.exact))
		for _, a := range cur {
			for _, b := range in.exact {
				if !slices.Contains(next, a+b) {
					next = append(next, a+b)
				}
			}
		}
		cur = next
	}
	if exact {
		out.exact = cur
		return out
	}
	flush()
	return out
}

// altLits: a match of an alternation matches one of its branches, so it contains one of the
// branches' best literals.
func altLits(subs []*syntax.Regexp) litInfo {
	infos := make([]litInfo, len(subs))
	allExact := true
	var ex []string
	for i, s := range subs {
		infos[i] = litsOf(s)
		if infos[i].exact == nil {
			allExact = false
		} else {
			ex = union(ex, infos[i].exact)
		}
	}
	if allExact && len(ex) <= maxExactSet {
		return litInfo{exact: ex}
	}
	var set []string
	for _, in := range infos {
		b := bestSet(in.all())
		if b == nil {
			return litInfo{}
		}
		set = union(set, b)
		if len(set) > maxAltSet {
			return litInfo{}
		}
	}
	return litInfo{req: [][]string{set}}
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
