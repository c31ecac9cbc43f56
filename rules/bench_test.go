package rules

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/imbot-dev/imbot/store"
)

// genWords makes a vocabulary of n pronounceable made-up words. Words have 2 to 4
// syllables (69,888 words at most) while that is enough, and up to 6 beyond (over 17
// million), so that 100,000-rule sets get distinct words.
func genWords(r *rand.Rand, n int) []string {
	syll := []string{"ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "qui", "bé", "dro", "fu", "gé", "ho"}
	most := 3
	if n > 60000 {
		most = 5
	}
	seen := map[string]bool{}
	var out []string
	for len(out) < n {
		var b strings.Builder
		for k := 2 + r.IntN(most); k > 0; k-- {
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

func writeRules(b testing.TB, n int) ([]string, []string) {
	src, msgs := genRules(n)
	return writeSplit(b, src, 20000), msgs
}

// BenchmarkMatch matches messages against generated rule sets: "words" has word patterns
// only, "regex10" every tenth rule a regex, "mix" a helpdesk-like mix of patterns, regexes,
// `when:` conditions, states and interpolated replies (see genMix).
func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{10, 1000, 10000, 100000} {
		b.Run(fmt.Sprintf("words/rules=%d", n), func(b *testing.B) {
			f, texts := writeRules(b, n)
			e, err := New(Options{Logger: slog.New(slog.DiscardHandler)}, f...)
			if err != nil {
				b.Fatal(err)
			}
			msgs := make([]benchMsg, len(texts))
			for i, t := range texts {
				msgs[i] = benchMsg{text: t}
			}
			benchProcess(b, e, msgs)
		})
	}
	for _, c := range []struct {
		name string
		mix  mixSpec
		ns   []int
	}{
		{"regex10", mixRegex10, []int{1000, 10000}},
		{"mix", mixReal, []int{1000, 10000, 100000}},
	} {
		for _, n := range c.ns {
			b.Run(fmt.Sprintf("%s/rules=%d", c.name, n), func(b *testing.B) {
				e, msgs := benchEngine(b, n, c.mix)
				benchProcess(b, e, msgs)
			})
		}
	}
}

// benchEngine loads a generated rule set of n rules of the mix, and returns the messages
// to match.
func benchEngine(b *testing.B, n int, mix mixSpec) (*Engine, []benchMsg) {
	f, msgs := writeMix(b, n, mix)
	e, err := New(Options{Logger: slog.New(slog.DiscardHandler)}, f...)
	if err != nil {
		b.Fatal(err)
	}
	return e, msgs
}

func writeMix(b testing.TB, n int, mix mixSpec) ([]string, []benchMsg) {
	src, msgs := genMix(n, mix)
	return writeSplit(b, src, 20000), msgs
}

// loadCases are the rule sets BenchmarkLoad and BenchmarkLoadIdle reload.
var loadCases = []struct {
	name string
	mix  mixSpec
	ns   []int
}{
	{"words", mixSpec{}, []int{1000, 10000}},
	{"mix", mixReal, []int{10000, 100000}},
}

// BenchmarkLoad reloads generated rule sets while a goroutine keeps matching messages
// against the engine: every message must be answered, by the old rules or the new. It
// reports the heap the loaded rules hold per rule (B/rule) and how many messages were
// answered during the reloads.
func BenchmarkLoad(b *testing.B) {
	for _, c := range loadCases {
		for _, n := range c.ns {
			b.Run(fmt.Sprintf("%s/rules=%d", c.name, n), func(b *testing.B) {
				f, msgs := writeMix(b, n, c.mix)
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				e, err := New(Options{Logger: slog.New(slog.DiscardHandler)}, f...)
				if err != nil {
					b.Fatal(err)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				perRule := float64(after.HeapAlloc-before.HeapAlloc) / float64(n)

				stop := make(chan struct{})
				done := make(chan int)
				go func() {
					ctx := context.Background()
					answered := 0
					for i := 0; ; i++ {
						select {
						case <-stop:
							done <- answered
							return
						default:
						}
						m := msgs[i%len(msgs)]
						out, err := e.Process(ctx, Input{Text: m.text}, store.ConversationState{State: m.state})
						if err != nil || out.Rule() == "" {
							panic(fmt.Sprintf("message %q dropped during a reload: %v", m.text, err))
						}
						answered++
					}
				}()
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := e.Reload(); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				close(stop)
				answered := <-done
				b.ReportMetric(perRule, "B/rule")
				b.ReportMetric(float64(answered)/float64(b.N), "answered/reload")
			})
		}
	}
}

// BenchmarkLoadIdle reloads generated rule sets with nothing matching meanwhile: the cost of
// loading alone, without a goroutine competing for the processors.
func BenchmarkLoadIdle(b *testing.B) {
	for _, c := range loadCases {
		for _, n := range c.ns {
			b.Run(fmt.Sprintf("%s/rules=%d", c.name, n), func(b *testing.B) {
				e, _ := benchEngine(b, n, c.mix)
				b.ReportAllocs()
				b.ResetTimer()
				cpu := cpuTime()
				for i := 0; i < b.N; i++ {
					if err := e.Reload(); err != nil {
						b.Fatal(err)
					}
				}
				cpu = cpuTime() - cpu
				b.StopTimer()
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/rule")
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
			})
		}
	}
}
