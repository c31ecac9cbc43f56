package rules

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/store"
)

// mixSpec says what share of a generated rule set is of each kind, in percent; the rest are
// plain word patterns of the start state.
type mixSpec struct {
	regex    int // regex rules (order numbers, tickets, e-mail addresses, word pairs)
	when     int // word patterns with a `when:` condition
	whenOnly int // `when:` rules without a trigger, in a named state
	stated   int // word patterns in a named state
}

var (
	// mixRegex10 is the word-pattern set with every tenth rule a regex.
	mixRegex10 = mixSpec{regex: 10}
	// mixReal is a helpdesk-like mix of every kind of rule.
	mixReal = mixSpec{regex: 10, when: 10, whenOnly: 3, stated: 15}
)

// benchMsg is one message of a benchmark and the state it arrives in.
type benchMsg struct {
	text, state string
	hit         bool // built to match a rule
}

// genMix writes a rule file of n rules of the given mix, and 256 messages: about two in
// three are built to match a rule (a word pattern, a regex, or a rule of a named state),
// the others are random words that only the fallback answers.
func genMix(n int, mix mixSpec) (string, []benchMsg) {
	r := rand.New(rand.NewPCG(7, uint64(n)))
	words := genWords(r, 3*n+2000)
	next := 0
	word := func() string { // every word used by a trigger is used once
		w := words[next]
		next++
		return w
	}
	filler := words[3*n:] // never in a trigger
	fill := func() string { return filler[r.IntN(len(filler))] }
	nStates := max(1, n/500)
	state := func() string { return fmt.Sprintf("s%d", r.IntN(nStates)) }

	type made struct {
		hit   string // a message that matches it
		state string
	}
	var b strings.Builder
	var hits []made
	b.WriteString("version: 1\nvars: {company: Contoso}\nrules:\n")
	gotos := 0
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - name: r%d\n", i)
		k := r.IntN(100)
		var m made
		switch {
		case k < mix.regex:
			w1, w2 := word(), word()
			var re string
			switch i % 4 {
			case 0:
				re, m.hit = fmt.Sprintf(`\b%s\s+(\w+)\s+%s\b`, w1, w2), fmt.Sprintf("%s %s %s", w1, fill(), w2)
			case 1:
				re, m.hit = fmt.Sprintf(`(?:%s|%s)\s*#?(\d{3,8})`, w1, w2), fmt.Sprintf("where is %s #%d", w2, 1000+r.IntN(9000))
			case 2:
				re, m.hit = fmt.Sprintf(`%s[:=]\s*(\S+)`, w1), fmt.Sprintf("%s: %s", w1, fill())
			case 3:
				re, m.hit = fmt.Sprintf(`([\w.+-]+)@%s\.(?:com|org)`, w1), fmt.Sprintf("mail bob.smith@%s.com please", w1)
			}
			fmt.Fprintf(&b, "    regex: '%s'\n    reply: \"Got {{ match.group1 }}\"\n", re)
			hits = append(hits, m)
			continue
		case k < mix.regex+mix.whenOnly:
			st := state()
			fmt.Fprintf(&b, "    state: %s\n    when: vars.step == %d\n    reply: \"Step %d\"\n", st, i, i)
			continue
		}
		w1, w2, w3 := word(), word(), word()
		var p string
		switch i % 4 {
		case 0:
			p, m.hit = fmt.Sprintf("* %s %s *", w1, w2), fmt.Sprintf("%s %s %s %s", fill(), w1, w2, fill())
		case 1:
			p, m.hit = fmt.Sprintf("%s * %s", w1, w3), fmt.Sprintf("%s %s %s %s", w1, fill(), fill(), w3)
		case 2:
			p, m.hit = fmt.Sprintf("(%s|%s) {thing}", w1, w2), fmt.Sprintf("%s %s %s", w2, fill(), fill())
		case 3:
			p, m.hit = fmt.Sprintf("* %s * %s* *", w1, w3), fmt.Sprintf("%s %s %s %ss %s", fill(), w1, fill(), w3, fill())
		}
		fmt.Fprintf(&b, "    match: %q\n", p)
		switch {
		case k < mix.regex+mix.whenOnly+mix.when:
			if i%2 == 0 {
				b.WriteString("    when: session.turns > 3\n")
			} else {
				b.WriteString("    when: sender.name != \"bob\"\n")
			}
		case k < mix.regex+mix.whenOnly+mix.when+mix.stated:
			m.state = state()
			fmt.Fprintf(&b, "    state: %s\n", m.state)
		}
		if gotos < nStates && (mix.whenOnly > 0 || mix.stated > 0) && m.state == "" {
			fmt.Fprintf(&b, "    goto: s%d\n", gotos)
			gotos++
		}
		switch {
		case i%4 == 2:
			fmt.Fprintf(&b, "    reply: \"About {{ match.thing }}, {{ sender.name }}?\"\n")
		case i%3 == 0:
			fmt.Fprintf(&b, "    reply: \"Answer %d for {{ sender.name }} at {{ vars.company }}\"\n", i)
		default:
			fmt.Fprintf(&b, "    reply: \"Answer %d\"\n", i)
		}
		hits = append(hits, m)
	}
	b.WriteString("  - name: fallback\n    fallback: true\n    reply: \"Sorry?\"\n")
	if gotos < nStates && (mix.whenOnly > 0 || mix.stated > 0) {
		panic(fmt.Sprintf("genMix: %d rules cannot enter %d states", n, nStates))
	}
	var msgs []benchMsg
	for i := 0; i < 256; i++ {
		if i%3 == 2 {
			var w []string
			for k := 0; k < 6; k++ {
				w = append(w, fill())
			}
			msgs = append(msgs, benchMsg{text: strings.Join(w, " ")})
			continue
		}
		h := hits[r.IntN(len(hits))]
		msgs = append(msgs, benchMsg{text: h.hit, state: h.state, hit: true})
	}
	return b.String(), msgs
}

// writeSplit writes a generated rule file as several files of at most perFile rules each
// (a file may hold 8 MiB), the first with the constants, and returns their names.
func writeSplit(b testing.TB, src string, perFile int) []string {
	head, body, ok := strings.Cut(src, "rules:\n")
	if !ok {
		b.Fatal("writeSplit: no rules")
	}
	rules := strings.SplitAfter(body, "\n  - name:")
	dir := b.TempDir()
	var files []string
	for len(rules) > 0 {
		k := min(perFile, len(rules))
		var f strings.Builder
		if len(files) == 0 {
			f.WriteString(head)
		} else {
			f.WriteString("version: 1\n")
		}
		f.WriteString("rules:\n")
		if len(files) > 0 {
			f.WriteString("  - name:")
		}
		chunk := strings.Join(rules[:k], "")
		rules = rules[k:]
		if len(rules) > 0 {
			chunk = strings.TrimSuffix(chunk, "  - name:")
		}
		f.WriteString(chunk)
		name := filepath.Join(dir, fmt.Sprintf("rules%d.yaml", len(files)))
		if err := os.WriteFile(name, []byte(f.String()), 0o644); err != nil {
			b.Fatal(err)
		}
		files = append(files, name)
	}
	return files
}

// quantiles returns the median and the 99th percentile of ds.
func quantiles(ds []time.Duration) (p50, p99 time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	slices.Sort(ds)
	return ds[len(ds)/2], ds[len(ds)*99/100]
}

// benchProcess matches msgs in turn against e and reports, besides the mean (ns/op), the
// median and 99th percentile of one message (each timed on its own, so they include the
// clock's cost, some tens of ns) and the share of messages a rule other than the fallback
// answered.
func benchProcess(b *testing.B, e *Engine, msgs []benchMsg) {
	ctx := context.Background()
	in := Input{Kind: bot.EventMessage, Key: "k", Peer: bot.Peer{User: "alice", DisplayName: "Alice"}}
	matched := 0
	times := make([]time.Duration, 0, min(b.N, 1<<20))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := msgs[i%len(msgs)]
		in.Text = m.text
		t0 := time.Now()
		out, err := e.Process(ctx, in, store.ConversationState{State: m.state})
		d := time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		if len(times) < cap(times) {
			times = append(times, d)
		}
		if out.Rule() != "fallback" {
			matched++
		}
	}
	b.StopTimer()
	p50, p99 := quantiles(times)
	b.ReportMetric(float64(p50.Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(p99.Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(matched)/float64(b.N), "matched/op")
}

func TestGenMix(t *testing.T) {
	tests := []struct {
		name string
		n    int
		mix  mixSpec
	}{
		{"regex10", 1000, mixRegex10},
		{"real", 1000, mixReal},
		{"real small", 10, mixReal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, msgs := genMix(tt.n, tt.mix)
			e := newTestEngine(t, Options{}, src)
			hits := 0
			for _, m := range msgs {
				out, err := e.Process(context.Background(), Input{Text: m.text, Peer: bot.Peer{User: "alice"}}, store.ConversationState{State: m.state})
				if err != nil {
					t.Fatal(err)
				}
				if out.Rule() != "fallback" {
					hits++
				}
			}
			if hits < len(msgs)/3 {
				t.Errorf("%d of %d messages matched a rule; want over a third", hits, len(msgs))
			}
		})
	}
}
