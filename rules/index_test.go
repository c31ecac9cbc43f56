package rules

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/store"
)

// The index must never change which rule answers: these tests compare the engine with a
// reference that tries every message rule on every message.

// bruteForce returns a copy of rs that tries every message rule, in rank order, on every
// message: the engine without its indexes.
func bruteForce(rs *RuleSet) *RuleSet {
	ref := *rs
	ref.index, ref.lits, ref.always, ref.alwaysAt = nil, nil, nil, nil
	for _, r := range rs.rules {
		if r.kind == bot.EventMessage && !r.fallback {
			ref.alwaysAt = append(ref.alwaysAt, int32(r.rank))
		}
	}
	return &ref
}

// Atoms of generated regexes, patterns and messages: words sharing letters, letters whose
// case folds to more than one rune (k, K and the Kelvin sign; s and ſ; é and É), digits.
var diffAtoms = []string{"ab", "ba", "abc", "cab", "k", "ss", "é", "x", "42", "kas", "sé"}

// mutateCase returns s with its letters in random case, some as their other folds.
func mutateCase(r *rand.Rand, s string) string {
	var b strings.Builder
	for _, c := range s {
		switch x := r.IntN(6); {
		case x == 0 && c == 'k':
			b.WriteRune('\u212a') // Kelvin sign
		case x == 1 && c == 's':
			b.WriteRune('ſ')
		case x < 4:
			b.WriteString(strings.ToUpper(string(c)))
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// genMessage makes a message of atoms and separators.
func genMessage(r *rand.Rand) string {
	seps := []string{" ", " ", " ", "-", ":", "#", "@", ".", "  ", "\xff", ""}
	var b strings.Builder
	for k := r.IntN(6); k >= 0; k-- {
		b.WriteString(mutateCase(r, diffAtoms[r.IntN(len(diffAtoms))]))
		b.WriteString(seps[r.IntN(len(seps))])
	}
	return strings.TrimSpace(b.String())
}

// genRegex makes a random regex over the atoms.
func genRegex(r *rand.Rand, depth int) string {
	if depth <= 0 {
		switch r.IntN(9) {
		case 0:
			return `\w+`
		case 1:
			return `\d`
		case 2:
			return `[a-c]`
		case 3:
			return `[kK]`
		case 4:
			return `.`
		case 5:
			return `\b`
		default:
			return regexp.QuoteMeta(mutateCase(r, diffAtoms[r.IntN(len(diffAtoms))]))
		}
	}
	switch r.IntN(10) {
	case 0:
		return "(" + genRegex(r, depth-1) + "|" + genRegex(r, depth-1) + ")"
	case 1:
		return "(?:" + genRegex(r, depth-1) + ")?"
	case 2:
		return "(?:" + genRegex(r, depth-1) + ")*"
	case 3:
		return "(?:" + genRegex(r, depth-1) + ")+"
	case 4:
		return "(?:" + genRegex(r, depth-1) + "){1,3}"
	case 5:
		return "(?-i:" + genRegex(r, depth-1) + ")"
	case 6:
		return "^" + genRegex(r, depth-1)
	case 7:
		return genRegex(r, depth-1) + "$"
	default:
		var parts []string
		for k := 1 + r.IntN(3); k > 0; k-- {
			parts = append(parts, genRegex(r, depth-1))
		}
		return strings.Join(parts, `\s*`)
	}
}

// genPattern makes a random wildcard pattern over the atoms.
func genPattern(r *rand.Rand) string {
	var parts []string
	for k := 1 + r.IntN(3); k > 0; k-- {
		switch r.IntN(6) {
		case 0:
			parts = append(parts, "*")
		case 1:
			parts = append(parts, fmt.Sprintf("{c%d}", k))
		case 2:
			parts = append(parts, diffAtoms[r.IntN(len(diffAtoms))]+"*")
		default:
			parts = append(parts, diffAtoms[r.IntN(len(diffAtoms))])
		}
	}
	return strings.Join(parts, " ")
}

// genDiffSet makes a random rule file of patterns, regexes, `when:` rules, states,
// priorities and `continue`.
func genDiffSet(r *rand.Rand) string {
	var b strings.Builder
	b.WriteString("version: 1\nrules:\n")
	b.WriteString("  - {name: go1, match: zz one, goto: s1, reply: g1}\n")
	b.WriteString("  - {name: go2, match: zz two, goto: s2, reply: g2}\n")
	b.WriteString("  - {name: in1, state: s1, match: zz three, reply: i1}\n")
	b.WriteString("  - {name: in2, state: s2, match: zz four, reply: i2}\n")
	for i := r.IntN(30); i >= 0; i-- {
		fmt.Fprintf(&b, "  - name: r%d\n    reply: r%d\n", i, i)
		kind := r.IntN(6)
		if kind <= 2 {
			b.WriteString("    regex:\n")
			for k := r.IntN(2); k >= 0; k-- {
				fmt.Fprintf(&b, "      - %q\n", genRegex(r, 1+r.IntN(3)))
			}
		}
		if kind >= 2 && kind <= 4 {
			fmt.Fprintf(&b, "    match: %q\n", genPattern(r))
		}
		if kind == 5 || r.IntN(4) == 0 {
			whens := []string{`len(text) > 6`, `text contains "b"`, `state == "s1"`, `true`}
			fmt.Fprintf(&b, "    when: %q\n", whens[r.IntN(len(whens))])
		}
		switch r.IntN(5) {
		case 0:
			b.WriteString("    state: s1\n")
		case 1:
			b.WriteString("    state: [start, s2]\n")
		case 2:
			b.WriteString("    state: '*'\n")
		}
		if r.IntN(4) == 0 {
			fmt.Fprintf(&b, "    priority: %d\n", r.IntN(3))
		}
		if r.IntN(5) == 0 {
			b.WriteString("    continue: true\n")
		}
	}
	b.WriteString("  - {name: fb, fallback: true, reply: fb}\n")
	return b.String()
}

// summary is what the differential tests compare of an outcome.
func summary(out *Outcome) string {
	var b strings.Builder
	for _, s := range out.Steps {
		fmt.Fprintf(&b, "%s:%v;", s.Rule, s.Messages)
	}
	fmt.Fprintf(&b, " state=%q pass=%v why=%q", out.Conversation.State, out.Pass, out.Why())
	return b.String()
}

// checkDifferential loads the rule set seed makes and compares the engine with the
// reference on messages in every state; it reports whether the set loaded.
func checkDifferential(t *testing.T, seed uint64) bool {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 0x1d))
	src := genDiffSet(r)
	rs, err := Load(Options{FS: fstest.MapFS{"r.yaml": {Data: []byte(src)}}}, "r.yaml")
	if err != nil {
		return false // such as a pattern shadowed by another: the generator retries
	}
	ref := bruteForce(rs)
	ctx := context.Background()
	for k := 0; k < 40; k++ {
		text := genMessage(r)
		for _, st := range []string{"", "s1", "s2"} {
			in := Input{Text: text}
			conv := store.ConversationState{State: st}
			got, err1 := rs.process(ctx, &Options{}, in, conv)
			want, err2 := ref.process(ctx, &Options{}, in, conv)
			if (err1 == nil) != (err2 == nil) {
				t.Fatalf("seed %d, %q in %q: error %v; reference %v\n%s", seed, text, st, err1, err2, src)
			}
			if err1 != nil {
				continue
			}
			if g, w := summary(got), summary(want); g != w {
				t.Fatalf("seed %d, %q in state %q:\nindexed:   %s\nreference: %s\nrules:\n%s", seed, text, st, g, w, src)
			}
		}
	}
	return true
}

// checkLits checks the prefilter of random regexes on random messages: a regex that matches
// has one of its literals in the message.
func checkLits(t *testing.T, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 0x11))
	for k := 0; k < 20; k++ {
		src := genRegex(r, 1+r.IntN(3))
		re, lits, err := compileRegexLits(src)
		if err != nil || lits == nil {
			continue
		}
		for m := 0; m < 20; m++ {
			text := genMessage(r)
			if !re.get().MatchString(text) {
				continue
			}
			canon := string(canonText(nil, text))
			if !slices.ContainsFunc(lits, func(l string) bool { return strings.Contains(canon, l) }) {
				t.Fatalf("seed %d: regex %q matches %q, but none of its literals %q is in %q", seed, src, text, lits, canon)
			}
		}
	}
}

// TestIndexDifferential runs the differential checks on a fixed series of seeds (FuzzIndex
// runs them on seeds the fuzzer picks).
func TestIndexDifferential(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 50
	}
	loaded := 0
	for seed := uint64(1); seed <= uint64(n); seed++ {
		if checkDifferential(t, seed) {
			loaded++
		}
		checkLits(t, seed)
	}
	if loaded < n/2 {
		t.Errorf("only %d of %d generated rule sets loaded", loaded, n)
	}
}

// FuzzIndex compares the indexed engine with the brute-force reference on rule sets and
// messages made from the seed: go test -run='^$' -fuzz=FuzzIndex -fuzztime=30s ./rules
func FuzzIndex(f *testing.F) {
	for _, s := range []uint64{1, 2, 3, 42, 1 << 40} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, seed uint64) {
		checkDifferential(t, seed)
		checkLits(t, seed)
	})
}

func TestRequiredLits(t *testing.T) {
	tests := []struct {
		re   string
		want []string // nil: none
	}{
		{`order`, []string{"order"}},
		{`ORDER`, []string{"order"}},
		{`\border\s+(\w+)\s+number\b`, []string{"number"}},
		{`(?:ticket|order)\s*#?(\d{3,8})`, []string{"ticket", "order"}},
		{`([\w.+-]+)@example\.com`, []string{"@example.com"}},
		{`[\w.]+@[\w.]+`, []string{"@"}},
		{`\d{5}`, nil},
		{`colou?r`, []string{"color", "colour"}},
		{`(?:ab)+cd`, []string{"ab"}},
		{`a|b*`, nil},
		{`gr[ae]y`, []string{"gray", "grey"}},
		{`\x{212a}elvin`, []string{"kelvin"}},
		{`(?-i)Straße`, []string{"straße"}},
		{`.*`, nil},
		{`x?y?`, nil},
		{`^(hi|hello)$`, []string{"hi", "hello"}},
	}
	for _, tt := range tests {
		t.Run(tt.re, func(t *testing.T) {
			_, got, err := compileRegexLits(tt.re)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("requiredLits(%q) = %q; want %q", tt.re, got, want)
			}
		})
	}
	if _, err := syntax.Parse(`(`, syntax.Perl); err == nil {
		t.Fatal("syntax.Parse accepts (")
	}
}

func TestLitIndex(t *testing.T) {
	x := newLitIndex([]litEntry{{"he", 1}, {"she", 2}, {"his", 3}, {"hers", 4}, {"e", 5}, {"she", 6}})
	tests := map[string][]int32{
		"ushers": {1, 2, 4, 5, 6},
		"his":    {3},
		"":       nil,
		"xyz":    nil,
		"hehe":   {1, 5},
	}
	for text, want := range tests {
		got := x.find([]byte(text), nil)
		slices.Sort(got)
		got = slices.Compact(got)
		if !slices.Equal(got, want) {
			t.Errorf("find(%q) = %v; want %v", text, got, want)
		}
	}
	if newLitIndex(nil) != nil {
		t.Error("empty index is not nil")
	}
}

func TestIndexStats(t *testing.T) {
	e := newTestEngine(t, Options{}, `version: 1
rules:
  - {name: a, match: hello, reply: a}
  - {name: b, regex: 'order\s*(\d+)', reply: b}
  - {name: c, regex: '\d{5}', reply: c}
  - {name: d, regex: '[\w.]+@[\w.]+', reply: d}
  - {name: e, when: 'text == "x"', state: s, reply: e}
  - {name: f, match: go, goto: s, reply: f}
  - {name: g, when: 'true', state: '*', continue: true, reply: g}
`)
	got := e.Rules().IndexStats()
	got.IndexBytes = 0
	want := IndexStats{Rules: 8, Indexed: 5, Always: 3, AlwaysAnyState: 1, Regexes: 3, WeakRegexes: 1, UnindexedRegexes: 1}
	if got != want {
		t.Errorf("IndexStats() = %+v; want %+v", got, want)
	}
}
