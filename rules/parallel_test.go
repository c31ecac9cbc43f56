package rules

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"testing"
)

// genFaulty writes a rule file of n rules, most of them good, with every kind of problem
// sprinkled in: bad patterns and regexes, bad expressions, names used twice (across files
// too), shadowed patterns (which a broken rule does not shadow), warnings, and aliases that
// resolve to the same node in several rules.
func genFaulty(file, n int) string {
	var b strings.Builder
	b.WriteString("version: 1\n")
	if file == 0 {
		b.WriteString("vars: {company: Contoso}\n")
	}
	b.WriteString("rules:\n")
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("f%dr%d", file, i)
		if i%997 == 5 {
			name = fmt.Sprintf("f0r%d", i) // used in file 0 already
		}
		fmt.Fprintf(&b, "  - name: %s\n", name)
		switch i % 13 {
		case 0:
			fmt.Fprintf(&b, "    match: \"* word%d (a|b *\"\n    reply: bad pattern\n", i)
		case 1:
			fmt.Fprintf(&b, "    regex: 'x%d(['\n    match: \"shared%d words\"\n    reply: bad regex\n", i, i/13)
		case 2:
			fmt.Fprintf(&b, "    match: \"shared%d words\"\n    reply: not shadowed by the broken rule before\n", i/13)
		case 3:
			fmt.Fprintf(&b, "    match: \"shared%d words\"\n    reply: shadowed\n", i/13)
		case 4:
			fmt.Fprintf(&b, "    match: \"hello %d\"\n    when: vars.nothing%d == 1\n    reply: \"{{ match.missing }}\"\n", i, i%3)
		case 5:
			fmt.Fprintf(&b, "    match: \"kind %d\"\n    when: vars.never == 2\n    reply: \"a warning only\"\n", i)
		case 6:
			fmt.Fprintf(&b, "    match: \"set %d\"\n    set: {n%d: \"{{ 1 + }}\"}\n    reply: ok\n", i, i%5)
		case 7:
			if file != 1 { // the other files have no alias: their rules are compiled in chunks
				fmt.Fprintf(&b, "    match: \"noalias %d\"\n    reply: ok\n", i)
				break
			}
			fmt.Fprintf(&b, "    match: &m%d \"alias %d\"\n    reply: ok\n", i, i)
		case 8:
			if file != 1 {
				fmt.Fprintf(&b, "    match: \"noalias %d\"\n    reply: shadowed\n", i-1)
				break
			}
			fmt.Fprintf(&b, "    match: *m%d\n    reply: same pattern as the rule before, through an alias\n", i-1)
		case 9:
			fmt.Fprintf(&b, "    match: \"goto %d\"\n    goto: nowhere\n", i)
		case 10:
			fmt.Fprintf(&b, "    match: \"nothing %d\"\n", i)
		default:
			fmt.Fprintf(&b, "    match: \"* good %d *\"\n    reply: \"Hi {{ sender.name }} from {{ vars.company }}\"\n", i)
		}
	}
	return b.String()
}

// TestLoadWorkers checks that loading with several goroutines (files parsed ahead, rules
// compiled in chunks) finds the same problems in the same order, and the same rules, as
// loading with one.
func TestLoadWorkers(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		t.Helper()
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	var faulty []string
	for i := 0; i < 3; i++ {
		faulty = append(faulty, write(fmt.Sprintf("faulty%d.yaml", i), genFaulty(i, 2*rulesPerChunk+300)))
	}
	good, _ := genMix(5*rulesPerChunk, mixReal)
	goodFiles := writeSplit(t, good, 2*rulesPerChunk)
	broken := write("broken.yaml", "version: 1\nrules:\n  - name: a\n    match: \"x\n")
	includes := write("includes.yaml", "version: 1\ninclude: ["+filepath.Base(faulty[1])+", "+filepath.Base(broken)+", missing.yaml]\n")

	for _, tt := range []struct {
		name  string
		files []string
	}{
		{"faulty", faulty},
		{"good", goodFiles},
		{"broken file among others", []string{faulty[0], broken, faulty[2]}},
		{"includes", []string{faulty[0], includes, faulty[2]}},
		{"missing file", []string{goodFiles[0], filepath.Join(dir, "missing.yaml"), goodFiles[1]}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			load := func(workers int) (string, []RuleInfo) {
				rs, err := Load(Options{loadWorkers: workers}, tt.files...)
				if err != nil {
					return err.Error(), nil
				}
				var w strings.Builder
				for _, x := range rs.Warnings() {
					w.WriteString(x.Error() + "\n")
				}
				return w.String(), rs.Rules()
			}
			wantErr, wantRules := load(1)
			if tt.name == "faulty" && strings.Count(wantErr, "\n") < 100 {
				t.Fatalf("the faulty files have few problems:\n%s", wantErr)
			}
			for _, workers := range []int{2, 3, 8} {
				gotErr, gotRules := load(workers)
				if gotErr != wantErr {
					t.Errorf("%d workers: problems differ from one worker's:\n%s", workers, firstDiff(gotErr, wantErr))
				}
				if !slices.EqualFunc(gotRules, wantRules, func(a, b RuleInfo) bool { return fmt.Sprint(a) == fmt.Sprint(b) }) {
					t.Errorf("%d workers: %d rules, one worker %d, or in another order", workers, len(gotRules), len(wantRules))
				}
			}
		})
	}
}

// firstDiff shows the first line where two texts differ.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < max(len(g), len(w)); i++ {
		var a, b string
		if i < len(g) {
			a = g[i]
		}
		if i < len(w) {
			b = w[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\ngot:  %s\nwant: %s", i+1, a, b)
		}
	}
	return "(same lines)"
}

// TestInstBound checks that instBound never counts fewer instructions than syntax.Compile
// makes (it decides when a regex need not be compiled twice to check maxRegexInsts), and
// that a regex over the limit is still refused.
func TestInstBound(t *testing.T) {
	for _, src := range []string{
		``, `a`, `abc`, `a*`, `(a*)*`, `(?:a|)*`, `a+?b??c*?`, `[a-z]+@\w+\.(?:com|org)`,
		`\b(\w+)\s+(x)?`, `^$`, `(?:x|y|z){3,7}`, `(a|b|c|d)(e|f)?(g*)+`, `.{2,5}[^x]\B`,
		`(?:(?:a{2,3}){2,3}){2,3}`, `\d{3,8}`, `(?s).*?x`, `[[:alpha:]]{0,9}|\pL+`,
	} {
		re, err := syntax.Parse("(?i)"+src, syntax.Perl)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		simple := re.Simplify()
		prog, err := syntax.Compile(simple)
		if err != nil {
			t.Fatal(err)
		}
		if b := instBound(simple); b < len(prog.Inst) {
			t.Errorf("instBound(%s) = %d; Compile makes %d", src, b, len(prog.Inst))
		}
	}
	_, _, err := compileRegexLits(`(?:[a-c]x){1,900}(?:[d-f]y){1,900}(?:[g-i]z){1,900}`)
	if err == nil || !strings.Contains(err.Error(), "instructions; the limit is 5000") {
		t.Errorf("a huge regex: got %v, want an error on its instructions", err)
	}
}

// TestCompileOnce checks that an expression or a regex that many rules repeat is compiled
// once (once on each goroutine that meets it at the same time), however many rules repeat
// it: compiling each occurrence made loading cost grow with the rules times the cost of a
// compilation, which dwarfs the rest.
func TestCompileOnce(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\nrules:\n")
	const n = 3 * rulesPerChunk
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - name: r%d\n    match: \"word%d *\"\n    when: session.turns > 3\n    reply: \"Hi {{ sender.name }}, {{ match.star1 }}\"\n", i, i)
		if i%3 == 0 {
			fmt.Fprintf(&b, "    regex: '\\border\\s+(\\d+)'\n")
		}
	}
	f := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(f, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// session.turns > 3, sender.name, match.star1, and help() of the built-in help rule.
	const programs, regexes = 4, 1
	for _, workers := range []int{1, 2, 4} {
		rs, err := Load(Options{loadWorkers: workers}, f)
		if err != nil {
			t.Fatal(err)
		}
		if got := rs.compiled.programs; got < programs || got > programs*workers {
			t.Errorf("%d workers: %d expressions compiled for %d rules; want %d (at most %d)", workers, got, n, programs, programs*workers)
		}
		if got := rs.compiled.regexes; got < regexes || got > regexes*workers {
			t.Errorf("%d workers: %d regexes compiled for %d rules; want %d (at most %d)", workers, got, n/3, regexes, regexes*workers)
		}
	}
}

// TestLazyRegex checks that a regex compiled on first use has the groups and the source
// regexp gives it, and that goroutines asking for it at once get one compiled regex.
func TestLazyRegex(t *testing.T) {
	for _, src := range []string{`(\d+)`, `(?P<n>\w+)@(x|y)(?:z)`, `a(b)?(?P<c>c)*`, `(?-i)Abc`} {
		lr, _, err := compileRegexLits(src)
		if err != nil {
			t.Fatal(err)
		}
		want := regexp.MustCompile("(?i)" + src)
		if !slices.Equal(lr.names, want.SubexpNames()) || lr.full[4:] != src {
			t.Errorf("%s: names %q, source %q; regexp says %q", src, lr.names, lr.full[4:], want.SubexpNames())
		}
		got := make(chan *regexp.Regexp, 8)
		for range 8 {
			go func() { got <- lr.get() }()
		}
		first := <-got
		for range 7 {
			if re := <-got; re != first {
				t.Errorf("%s: two compiled regexes", src)
			}
		}
		if first.String() != want.String() {
			t.Errorf("%s: compiled %s, want %s", src, first, want)
		}
	}
}
