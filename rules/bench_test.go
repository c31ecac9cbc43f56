package rules

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/store"
)

// genWords makes a vocabulary of pronounceable made-up words.
func genWords(r *rand.Rand, n int) []string {
	syll := []string{"ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "qui", "bé", "dro", "fu", "gé", "ho"}
	seen := map[string]bool{}
	var out []string
	for len(out) < n {
		var b strings.Builder
		for k := 2 + r.IntN(3); k > 0; k-- {
			b.WriteString(syll[r.IntN(len(syll))])
		}
		w := b.String()
		if !seen[Fold(w)] {
			seen[Fold(w)] = true
			out = append(out, w)
		}
	}
	return out
}

// genRules writes a rule file with n rules over a vocabulary, and messages to match.
func genRules(n int) (yaml string, msgs []string) {
	r := rand.New(rand.NewPCG(42, uint64(n)))
	words := genWords(r, 2000+n)
	var b strings.Builder
	b.WriteString("version: 1\nvars: {company: Contoso}\nrules:\n")
	type pat struct{ ws []string }
	var pats []pat
	used := map[string]bool{}
	for i := 0; i < n; i++ {
		w1, w2, w3 := words[r.IntN(len(words))], words[r.IntN(len(words))], words[r.IntN(len(words))]
		if used[w1+" "+w2] || used[w2+" "+w1] || used[w1] || w1 == w2 {
			i--
			continue
		}
		if i%4 == 2 && (used["alt "+w1] || used["alt "+w2]) {
			i--
			continue
		}
		used[w1+" "+w2] = true
		if i%4 == 2 {
			used["alt "+w1], used["alt "+w2] = true, true
		}
		var p string
		switch i % 4 {
		case 0:
			p = fmt.Sprintf("* %s %s *", w1, w2)
		case 1:
			p = fmt.Sprintf("%s * %s", w1, w3)
		case 2:
			p = fmt.Sprintf("(%s|%s) {thing}", w1, w2)
		case 3:
			p = fmt.Sprintf("* %s * %s* *", w1, w3)
		}
		pats = append(pats, pat{[]string{w1, w2, w3}})
		fmt.Fprintf(&b, "  - name: r%d\n    match: %q\n", i, p)
		if i%3 == 0 {
			fmt.Fprintf(&b, "    reply: \"Answer %d for {{ sender.name }} at {{ vars.company }}\"\n", i)
		} else {
			fmt.Fprintf(&b, "    reply: \"Answer %d\"\n", i)
		}
	}
	b.WriteString("  - name: fallback\n    fallback: true\n    reply: \"Sorry?\"\n")
	for i := 0; i < 64; i++ {
		var m []string
		for k := 0; k < 8; k++ {
			m = append(m, words[r.IntN(len(words))])
		}
		if i%2 == 0 { // make it match some rule
			p := pats[r.IntN(len(pats))]
			m = append([]string{p.ws[0], p.ws[1]}, m[:3]...)
			m = append(m, p.ws[2])
		}
		msgs = append(msgs, strings.Join(m, " "))
	}
	return b.String(), msgs
}

func writeRules(b testing.TB, n int) (string, []string) {
	src, msgs := genRules(n)
	f := filepath.Join(b.TempDir(), "rules.yaml")
	if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
		b.Fatal(err)
	}
	return f, msgs
}

func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			f, msgs := writeRules(b, n)
			e, err := New(Options{Logger: slog.New(slog.DiscardHandler)}, f)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			in := Input{Kind: bot.EventMessage, Key: "k", Peer: bot.Peer{User: "alice", DisplayName: "Alice"}}
			conv := store.ConversationState{}
			matched := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				in.Text = msgs[i%len(msgs)]
				out, err := e.Process(ctx, in, conv)
				if err != nil {
					b.Fatal(err)
				}
				if out.Rule() != "fallback" {
					matched++
				}
			}
			b.ReportMetric(float64(matched)/float64(b.N), "matched/op")
		})
	}
}

func BenchmarkLoad(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			f, _ := writeRules(b, n)
			e, err := New(Options{Logger: slog.New(slog.DiscardHandler)}, f)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := e.Reload(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
