package rules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/store"
)

// Generous bounds for one event that goes over a limit: the evaluation must fail long
// before them, whatever the machine.
const (
	eventDeadline = 5 * time.Second
	eventMaxAlloc = 64 << 20
)

// boundedProcess runs one message through the engine and returns its outcome; the test
// fails unless it returns within eventDeadline having allocated less than eventMaxAlloc.
func boundedProcess(t *testing.T, e *Engine, text string) (*Outcome, error) {
	t.Helper()
	type result struct {
		out *Outcome
		err error
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	done := make(chan result, 1)
	go func() {
		out, err := e.Process(context.Background(), Input{Kind: bot.EventMessage, Text: text, Key: "k"}, store.ConversationState{})
		done <- result{out, err}
	}()
	timer := time.NewTimer(eventDeadline)
	defer timer.Stop()
	select {
	case r := <-done:
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n >= eventMaxAlloc {
			t.Errorf("%.40q allocated %d MiB; the bound is %d MiB", text, n>>20, eventMaxAlloc>>20)
		}
		return r.out, r.err
	case <-timer.C:
		t.Fatalf("%.40q: no outcome after %v", text, eventDeadline)
	}
	return nil, nil
}

// wantLimit checks that err is an event going over the limit named want.
func wantLimit(t *testing.T, out *Outcome, err error, want string) {
	t.Helper()
	var le *LimitError
	switch {
	case err == nil:
		t.Fatalf("no error; want one over %s (replies: %d)", want, len(out.Replies()))
	case !errors.Is(err, ErrLimit) || !errors.As(err, &le):
		t.Fatalf("err = %v; want a LimitError", err)
	case le.Limit != want:
		t.Fatalf("err = %v; want one over %s", err, want)
	case out != nil:
		t.Fatalf("an outcome with an error: %d replies", len(out.Replies()))
	}
}

// answersNormally checks that the engine answers a plain message after a failed one.
func answersNormally(t *testing.T, e *Engine) {
	t.Helper()
	out, err := e.Process(context.Background(), Input{Text: "hello", Key: "k"}, store.ConversationState{})
	if err != nil {
		t.Fatalf("hello: %v", err)
	}
	if r := out.Replies(); len(r) != 1 || r[0].Text != "hi" {
		t.Fatalf("hello: replies %v, want hi", r)
	}
}

// TestReportedExpressions runs the expressions of the security report, which the load-time
// checks refuse (TestStaticLimits), against the engine with a 10-byte message: each event
// must fail cleanly, over a limit, in bounded time and memory, and the engine must answer
// the next message. Before the budgets, the first one ran out of memory, the second tried
// to allocate 8 GB for an 8 KiB message, the third made a reply of 999,999 bytes, and the
// loop ran for minutes.
func TestReportedExpressions(t *testing.T) {
	e := newTestEngine(t, Options{noStaticLimits: true}, `version: 1
rules:
  - {name: doubling, match: "double *", when: "len(reduce(1..30, #acc + #acc, text)) > 0", reply: never}
  - {name: copies, match: "copies *", reply: "{{ repeat(text, 999999) }}"}
  - {name: flood, match: "flood *", reply: "{{ repeat('ab ', 333333) }}"}
  - {name: spin, match: "spin *", when: "let a = 1..999; all(a, all(a, all(a, true)))", reply: never}
  - {name: hello, match: hello, reply: hi}
`)
	tests := []struct {
		name, text, limit string
	}{
		{"reduce doubling the message", "double 345", "TextBytes"},
		{"repeat(text, 999999)", "copies 345", "TextBytes"},
		{"repeat(text, 999999) of 8 KiB", "copies " + strings.Repeat("x", 8<<10-7), "TextBytes"},
		{"reply of repeat('ab ', 333333)", "flood 4567", "TextBytes"},
		{"a billion loop steps", "spin 45678", "Time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := boundedProcess(t, e, tt.text)
			wantLimit(t, out, err, tt.limit)
			answersNormally(t, e)
		})
	}
}

// TestRuntimeLimits drives each budget with expressions whose size the rules cannot know
// when they load. The clock is left out (Limits.Time is a minute), so that the slowest
// machine reaches the same limit; TestLimitsOptions and TestReportedExpressions time loops.
func TestRuntimeLimits(t *testing.T) {
	rules := `version: 1
vars: {big: 100000, huge: 1000000, k: 30000}
rules:
  - {name: hello, match: hello, reply: hi}
  - {name: join, match: "join *", reply: "{{ len(join(map(1..vars.big, text), ',')) }}"}
  - {name: string, match: "string *", reply: "{{ len(string(map(1..vars.big, text))) }}"}
  - {name: json, match: "json *", reply: "{{ len(toJSON(map(1..vars.big, text))) }}"}
  - {name: format, match: "format *", reply: "{{ map(1..vars.big, text) }}"}
  - {name: replace, match: "replace *", reply: "{{ len(replace(text, '', repeat('y', vars.k))) }}"}
  - {name: upper, match: "upper *", reply: "{{ len(upper(repeat(text, 20000))) }}"}
  - {name: split, match: "split *", reply: "{{ len(split(repeat(text, 2000), '')) }}"}
  - {name: concat, match: "concat *", reply: "{{ len(map(1..vars.big, text + '!')) }}"}
  - {name: base64, match: "base64 *", reply: "{{ len(toBase64(toBase64(toBase64(repeat(text, 8000))))) }}"}
  - {name: store, match: "store *", set: {all: "{{ map(1..vars.big, text) }}"}}
  - {name: long, match: "long *", reply: "{{ repeat(text, 2000) }}"}
  - {name: six, match: "many *", messages: [a, b, c, d, e, f], continue: true}
  - {name: six-more, match: "many *", messages: [a, b, c, d, e, f]}
  - {name: pattern, match: "pattern *", when: "text matches repeat('a', 2000)", reply: never}
  - {name: range, match: "range *", reply: "{{ len(1..vars.huge) }}"}
  - {name: ranges, match: "ranges *", reply: "{{ len(map(1..2000, 1..999)) }}"}
  - {name: nested-map, match: "nested map *", reply: "{{ len(map(1..1000, map(1..1000, #))) }}"}
  - {name: nested-reduce, match: "nested reduce *", reply: "{{ reduce(1..2000, #acc + find(1..999, # > 1), 0) }}"}
`
	e := newTestEngine(t, Options{Limits: Limits{Time: time.Minute}}, rules)
	tests := map[string]string{
		"join 56789":           "TextBytes",
		"string 789":           "TextBytes",
		"json 56789":           "TextBytes",
		"format 789":           "TextBytes",
		"replace 89":           "TextBytes",
		"upper 6789":           "TextBytes",
		"split 6789":           "TextBytes",
		"concat 789":           "TextBytes",
		"base64 789":           "TextBytes",
		"store 6789":           "TextBytes",
		"long 56789":           "ReplyBytes",
		"many 56789":           "Replies",
		"pattern 89":           "regex",
		"range 6789":           "memory",
		"ranges 789":           "memory",
		"nested map 1":         "memory",
		"nested reduce 123456": "memory",
	}
	for text, limit := range tests {
		t.Run(text, func(t *testing.T) {
			out, err := boundedProcess(t, e, text)
			wantLimit(t, out, err, limit)
			answersNormally(t, e)
		})
	}
}

// TestLimitsOptions checks that Options.Limits replaces the defaults.
func TestLimitsOptions(t *testing.T) {
	src := `version: 1
rules:
  - {name: hello, match: hello, reply: hi}
  - {name: two, match: "two", messages: [a, b], continue: true}
  - {name: one, match: "two", reply: c}
  - {name: flood, match: "flood", reply: "{{ repeat('ab ', 333333) }}"}
  - {name: words, match: "words", reply: "{{ repeat(text, 20) }}"}
  - {name: loop, match: "loop", when: "let a = 1..999; any(a, any(a, any(a, # < 0)))", reply: never}
`
	tests := []struct {
		name   string
		limits Limits
		text   string
		want   string // the limit gone over, or the replies joined by |
	}{
		{"defaults", Limits{}, "two", "a|b|c"},
		{"two replies", Limits{Replies: 2}, "two", "Replies"},
		{"bytes of replies", Limits{ReplyBytes: 80}, "words", "ReplyBytes"},
		{"text beyond replies", Limits{ReplyBytes: 100}, "words", "TextBytes"},
		{"big text, small replies", Limits{TextBytes: 4 << 20}, "flood", "ReplyBytes"},
		{"time", Limits{Time: 10 * time.Millisecond}, "loop", "Time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := tt.limits
			if tt.name == "text beyond replies" {
				lim.TextBytes = 64
			}
			e := newTestEngine(t, Options{Limits: lim, noStaticLimits: true}, src)
			out, err := boundedProcess(t, e, tt.text)
			if strings.Contains(tt.want, "|") {
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, m := range out.Replies() {
					got = append(got, m.Text)
				}
				if g := strings.Join(got, "|"); g != tt.want {
					t.Fatalf("replies %q, want %q", g, tt.want)
				}
				return
			}
			wantLimit(t, out, err, tt.want)
			answersNormally(t, e)
		})
	}
}

// TestGuardedExpressions checks that the guarded operators and builtins give what expr's
// own give, types included, within the budgets.
func TestGuardedExpressions(t *testing.T) {
	e := newTestEngine(t, Options{}, `version: 1
vars: {a: 2, b: 3, s: "x", list: ["p", "q"]}
rules:
  - name: all
    match: "hello world"
    when: "(text + 'a' + 'b') startsWith 'hel' && text matches ('^h' + 'el') && !(text matches vars.s)"
    messages:
      - "{{ text + '!' }} {{ upper(text) }} {{ lower('ÀB') }} {{ text | upper() | repeat(2) }}"
      - "{{ join(split(text, ' '), '-') }} {{ replace(text, 'l', 'L') }} {{ replace(text, 'l', 'L', 1) }} {{ repeat('=', 3) }}"
      - "{{ reduce(1..10, #acc + #acc, 1) }} {{ reduce(split(text, ' '), #acc + '/' + #, '') }} {{ vars.a + vars.b }} {{ vars.s + vars.s }}"
      - "{{ toJSON({'a': 1}) }} {{ string(1..3) }} {{ toBase64('hi') }} {{ join(vars.list) }} {{ splitAfter(text, 'o') }}"
      - "{{ len(filter(1..100, # % 2 == 0)) }} {{ map(['a', 'b'], # + #) }} {{ sum(map(1..10, #)) }} {{ 'a' + 'b' }}"
    set: {twice: "{{ text + text }}", words: "{{ split(text, ' ') }}"}
`)
	replies, conv, _ := converse(t, e, "hello world")
	want := []string{
		"hello world! HELLO WORLD àb HELLO WORLDHELLO WORLD",
		"hello-world heLLo worLd heLlo world ===",
		"1024 /hello/world 5 xx",
		"{\n  \"a\": 1\n} [1 2 3] aGk= pq [hello  wo rld]",
		"50 [aa bb] 55 ab",
	}
	if got := replies[0]; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("replies:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if conv.Vars["twice"] != "hello worldhello world" || fmt.Sprint(conv.Vars["words"]) != "[hello world]" {
		t.Errorf("vars %v", conv.Vars)
	}
}

// TestGuardKeepsTypeErrors checks that rewriting + and matches hides no type error.
func TestGuardKeepsTypeErrors(t *testing.T) {
	for _, src := range []string{
		`1 + 'a' == 'b'`,
		`(text matches 'a') + 'x' == 'y'`,
		`text + 1 == 'x'`,
		`1 matches text`,
	} {
		t.Run(src, func(t *testing.T) {
			data := fmt.Sprintf("version: 1\nrules:\n  - {name: r, match: x, when: %q, reply: y}\n", src)
			_, err := Load(Options{FS: fstest.MapFS{"r.yaml": {Data: []byte(data)}}}, "r.yaml")
			if err == nil {
				t.Fatal("loaded")
			}
		})
	}
}

// TestStaticLimits checks that the load-time checks refuse what is sure to go over a
// limit, with the position of the expression that does (testdata/bad/limits.yaml has more),
// and that warnings do not stop the rules from loading.
func TestStaticLimits(t *testing.T) {
	long := strings.Repeat("x", 100)
	tests := []struct {
		name   string
		limits Limits
		rule   string
		want   string // the error, or "" for none
	}{
		{"reduce doubling", Limits{}, `{name: r, match: x, when: "len(reduce(1..30, #acc + #acc, text)) > 0", reply: y}`,
			"r.yaml:3:36: in 'when' of rule 'r': the accumulator of reduce grows 2-fold at each of its 30 steps"},
		{"repeat(text, 999999)", Limits{}, `{name: r, match: x, reply: "{{ repeat(text, 999999) }}"}`,
			"r.yaml:3:36: in the reply of rule 'r': repeat() makes 999999 copies"},
		{"repeat('ab ', 333333)", Limits{}, `{name: r, match: x, reply: "{{ repeat('ab ', 333333) }}"}`,
			"r.yaml:3:36: in the reply of rule 'r': repeat() builds 999999 bytes of text here; the replies to an event may hold 16384 bytes"},
		{"repeat in a when", Limits{}, `{name: r, match: x, when: "len(repeat('ab', 200000)) > 0", reply: y}`,
			"r.yaml:3:36: in 'when' of rule 'r': repeat() builds 400000 bytes of text here; an evaluation may build 262144"},
		{"repeat in a call", Limits{}, `{name: r, match: x, call: "f(repeat(text, 300000))", reply: y}`,
			"r.yaml:3:34: in 'call' of rule 'r': repeat() makes 300000 copies"},
		{"range", Limits{}, `{name: r, match: x, reply: "{{ len(-5..999994) }}"}`,
			"r.yaml:3:40: in the reply of rule 'r': the range -5..999994 has 1000000 elements"},
		{"messages", Limits{Replies: 2}, `{name: r, match: x, messages: [a, b, c]}`,
			"r.yaml:3:25: rule 'r' sends 3 messages in a row; the rules may send 2 for an event (Limits.Replies)"},
		{"literal replies", Limits{ReplyBytes: 150}, `{name: r, match: x, messages: [` + long + `, [` + long + `, "{{ text }}` + long + `"]]}`,
			"r.yaml:3:25: the replies of rule 'r' hold at least 200 bytes of text; the replies to an event may hold 150 (Limits.ReplyBytes)"},
		{"small enough", Limits{}, `{name: r, match: x, when: "len(1..999999) > 0 && len(repeat(text, 200000)) > 0", reply: "{{ repeat('ab', 8000) }}"}`, ""},
		{"numbers double", Limits{}, `{name: r, match: x, when: "reduce(1..60, #acc + #acc, 1) > 0", reply: y}`, ""},
		{"ranges turned into comparisons", Limits{}, `{name: r, match: x, when: "len(text) in 1..100000000", reply: y}`, ""},
		{"warning", Limits{}, `{name: r, match: x, when: "len(reduce(split(text, ' '), #acc + #acc, text)) > 0", reply: y}`,
			"r.yaml:3:36: warning: in 'when' of rule 'r': the accumulator of reduce grows 2-fold at each step (#acc is 2 times in the next one): after 19 steps, a text of 1 byte is over"},
	}
	funcs := Funcs{"f": Func1(func(_ context.Context, s string) (int, error) { return len(s), nil })}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := "version: 1\nrules:\n  - " + tt.rule + "\n"
			opts := Options{FS: fstest.MapFS{"r.yaml": {Data: []byte(data)}}, Funcs: funcs, Limits: tt.limits}
			errs := Check(opts, "r.yaml")
			_, loadErr := Load(opts, "r.yaml")
			switch {
			case tt.want == "" && len(errs) > 0:
				t.Fatalf("errors: %v", errs)
			case tt.want == "":
			case len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), tt.want):
				t.Fatalf("errors:\n%v\nwant one starting with:\n%s", errs, tt.want)
			case strings.Contains(tt.want, "warning:") && loadErr != nil:
				t.Fatalf("a warning stops the rules from loading: %v", loadErr)
			case !strings.Contains(tt.want, "warning:") && loadErr == nil:
				t.Fatal("the rules load")
			}
		})
	}
}

// FuzzEval evaluates arbitrary expressions, with the load-time limit checks off, on
// arbitrary messages: each event must end within a generous deadline, without panicking,
// whatever the expression builds.
func FuzzEval(f *testing.F) {
	for _, s := range []string{
		"len(reduce(1..30, #acc + #acc, text)) > 0",
		"repeat(text, 999999)",
		"repeat('ab ', 333333)",
		"let a = 1..999; all(a, all(a, all(a, true)))",
		"join(map(1..100000, text), ',')",
		"toJSON(map(1..100000, text))",
		"text matches text + '+'",
		"upper(text) + lower(text)",
		"map(1..100000, fromJSON(text))",
		"map(1..100000, split(text, ''))",
	} {
		f.Add(s, "hello world")
		f.Add(s, `["a", "b", [1, 2, 3], {"c": "d"}]`)
	}
	f.Fuzz(func(t *testing.T, src, text string) {
		data := fmt.Sprintf("version: 1\nrules:\n  - {name: r, when: %q, reply: y}\n  - {name: s, match: '*', reply: %q}\n",
			"("+src+") != nil", "{{ "+src+" }}")
		// A short Time, so that fuzzing spends its time on many expressions.
		opts := Options{FS: fstest.MapFS{"r.yaml": {Data: []byte(data)}}, noStaticLimits: true, Limits: Limits{Time: 10 * time.Millisecond}}
		rs, err := Load(opts, "r.yaml")
		if err != nil {
			return
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = rs.process(context.Background(), &opts, Input{Text: text}, store.ConversationState{})
		}()
		select {
		case <-done:
		case <-time.After(eventDeadline):
			t.Fatalf("%q on %q: no outcome after %v", src, text, eventDeadline)
		}
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n >= 4*eventMaxAlloc {
			t.Fatalf("%q on %q allocated %d MiB", src, text, n>>20)
		}
	})
}

// TestReportedReplyOverSIP sends the report's 10-byte message to a bot whose rule answers
// {{ repeat('ab ', 333333) }}: before the budgets, that one message came back as 999,999
// bytes of replies, hundreds of MESSAGEs. Now the event fails: the bot logs it and sends its
// apology, one MESSAGE, and answers the next message normally.
func TestReportedReplyOverSIP(t *testing.T) {
	e := newTestEngine(t, Options{noStaticLimits: true}, `version: 1
rules:
  - {name: flood, match: "flood *", reply: "{{ repeat('ab ', 333333) }}"}
  - {name: hello, match: hello, reply: hi}
`)
	b, err := bot.New(bot.Config{Listen: []string{"udp://127.0.0.1:0"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Skipf("no bot: %v", err)
	}
	b.Use(e.Middleware())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	p := bottest.NewPeer(t, bottest.Options{Bot: b.Addr("udp")})
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if _, err := p.SendPage(wctx, "flood 4567"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(wctx, func(r bottest.Record) bool { return strings.HasPrefix(r.Text, "Sorry, something went wrong") }); err != nil {
		t.Fatal(err)
	}
	if _, err := p.SendPage(wctx, "hello"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.WaitText(wctx, "hi"); err != nil {
		t.Fatal(err)
	}
	if texts := p.Texts(); len(texts) != 2 {
		t.Errorf("the bot sent %d messages, want the apology and hi", len(texts))
	}
}

// TestTextSize checks that the estimate of a value's text is never below its real size,
// as replies (format) and toJSON write it, and that it stops counting past the limit.
func TestTextSize(t *testing.T) {
	type point struct {
		X, Y int
		Name string
	}
	values := map[string]any{
		"nil":        nil,
		"text":       "hello <world> & \"you\" \u2028 \xff é",
		"numbers":    []any{1, 2.5, -300000000000, uint8(7), float32(1.5)},
		"ints":       []int{1, -2, 1 << 60},
		"floats":     []float64{1.5, -2e300, 3},
		"strings":    []string{"a", "<b>", ""},
		"nested":     map[string]any{"a": []any{map[string]any{"b": []any{"c", "d"}}}, "e": true},
		"time":       time.Date(2025, 3, 3, 10, 0, 0, 0, time.UTC),
		"duration":   90 * time.Minute,
		"struct":     point{1, 2, "p<1>"},
		"pointer":    &point{3, 4, "q"},
		"bytes":      []byte("hello"),
		"map of int": map[string]int{"x": 1, "y": 22},
	}
	for name, v := range values {
		t.Run(name, func(t *testing.T) {
			if got, want := textSize(v, 1<<20, false), len(format(v)); got < want {
				t.Errorf("text: estimate %d < %d bytes (%q)", got, want, format(v))
			}
			js, err := json.MarshalIndent(v, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if got := textSize(v, 1<<20, true); got < len(js) {
				t.Errorf("JSON: estimate %d < %d bytes (%s)", got, len(js), js)
			}
		})
	}
	huge := make([]any, 1_000_000)
	for i := range huge {
		huge[i] = "some text"
	}
	if n := textSize(huge, 1000, false); n <= 1000 || n > 1100 {
		t.Errorf("a huge list measured %d, want just over 1000", n)
	}
}
