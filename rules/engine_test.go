package rules

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/store"
)

// newTestEngine writes src as a rule file and loads it.
func newTestEngine(t *testing.T, opts Options, src string) *Engine {
	t.Helper()
	f := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	e, err := New(opts, f)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// converse plays messages ("/idle", "/start" for events) and returns the replies of each.
func converse(t *testing.T, e *Engine, lines ...string) (replies [][]string, conv store.ConversationState, outs []*Outcome) {
	t.Helper()
	for i, l := range lines {
		in := Input{Kind: bot.EventMessage, Text: l, Key: "k", Turns: i + 1, Peer: bot.Peer{URI: "sip:alice@example.com", User: "alice", Domain: "example.com", DisplayName: "Alice"}}
		switch l {
		case "/idle":
			in.Kind, in.Text = bot.EventIdle, ""
		case "/start":
			in.Kind, in.Text = bot.EventSessionStart, ""
		}
		out, err := e.Process(context.Background(), in, conv)
		if err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		conv = out.Conversation
		var texts []string
		for _, m := range out.Replies() {
			texts = append(texts, m.Text)
		}
		replies = append(replies, texts)
		outs = append(outs, out)
	}
	return replies, conv, outs
}

func TestEngine(t *testing.T) {
	tests := []struct {
		name  string
		rules string
		say   []string
		want  []string // the replies of each line, joined by " | "
		state string
	}{
		{
			name: "priority beats file order",
			rules: `
  - {name: low, match: "* help *", reply: low}
  - {name: high, match: "* help *", reply: high, priority: 5, when: "true"}`,
			say:  []string{"help me"},
			want: []string{"high"},
		},
		{
			name: "continue lets later rules answer",
			rules: `
  - {name: count, match: "*", set: {n: "{{ (vars.n ?? 0) + 1 }}"}, continue: true}
  - {name: hi, match: "hi", reply: "hi #{{ vars.n }}"}`,
			say:  []string{"hi", "hi"},
			want: []string{"hi #1", "hi #2"},
		},
		{
			name: "state fallback before global fallback",
			rules: `
  - {name: ask, match: "order", reply: "which one?", goto: which}
  - {name: pick, state: which, regex: '^(?P<n>\d+)$', reply: "order {{ match.n }}", goto: start}
  - {name: which-what, state: which, fallback: true, reply: "a number, please"}
  - {name: any, fallback: true, reply: "eh?"}`,
			say:   []string{"blah", "order", "blah", "42", "blah"},
			want:  []string{"eh?", "which one?", "a number, please", "order 42", "eh?"},
			state: "start",
		},
		{
			name: "global rules work in every state",
			rules: `
  - {name: help, state: "*", match: help, reply: "topics"}
  - {name: start, match: go, reply: "step 1", goto: one}
  - {name: one, state: one, match: next, reply: "step 2"}`,
			say:   []string{"go", "help", "next"},
			want:  []string{"step 1", "topics", "step 2"},
			state: "one",
		},
		{
			name: "idle resets the state with a farewell",
			rules: `
  - {name: start, match: go, reply: "step 1", goto: one}
  - {name: one, state: one, match: next, reply: "step 2"}
  - {name: bye, on: idle, reply: "bye {{ sender.name }}"}`,
			say:   []string{"go", "/idle", "next"},
			want:  []string{"step 1", "bye Alice", ""},
			state: "start",
		},
		{
			name: "pick cycle goes in turn",
			rules: `
  - {name: hi, match: hi, pick: cycle, reply: [a, b, c]}`,
			say:  []string{"hi", "hi", "hi", "hi"},
			want: []string{"a", "b", "c", "a"},
		},
		{
			name: "several messages in a row",
			rules: `
  - name: tour
    match: tour
    messages: ["one", ["two"], "three {{ 1 + 2 }}"]`,
			say:  []string{"tour"},
			want: []string{"one | two | three 3"},
		},
		{
			name: "set sees match and typed values",
			rules: `
  - name: remember
    match: "my name is {name} and I am {age}"
    set: {name: "{{ match.name }}", age: "{{ int(match.age) }}", adult: "{{ int(match.age) >= 18 }}", n: 3}
    reply: "{{ vars.name }} {{ vars.age + 1 }} {{ vars.adult }} {{ vars.n * 2 }}"`,
			say:  []string{"My name is Zoé and I am 20"},
			want: []string{"Zoé 21 true 6"},
		},
		{
			name: "when uses the conversation",
			rules: `
  - {name: first, match: hi, when: "session.turns == 1", reply: "hello"}
  - {name: again, match: hi, reply: "hello again"}`,
			say:  []string{"hi", "hi"},
			want: []string{"hello", "hello again"},
		},
		{
			name: "constants and no match passes",
			rules: `
  - {name: who, match: who, reply: "{{ vars.company }}"}`,
			say:  []string{"who", "what"},
			want: []string{"Contoso", ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEngine(t, Options{}, "version: 1\nvars: {company: Contoso}\nhelp: false\nrules:"+tt.rules+"\n")
			replies, conv, _ := converse(t, e, tt.say...)
			for i := range tt.say {
				if got := strings.Join(replies[i], " | "); got != tt.want[i] {
					t.Errorf("%q: replies %q, want %q", tt.say[i], got, tt.want[i])
				}
			}
			if tt.state != "" && stateName(conv.State) != tt.state {
				t.Errorf("state %q, want %q", stateName(conv.State), tt.state)
			}
		})
	}
}

// TestAutoTypingCap: typing: auto shows at most Options.AutoTypingMax for one answer, all its
// messages together; fixed delays are not capped.
func TestAutoTypingCap(t *testing.T) {
	long := strings.Repeat("x", 200) // 5s at the auto pace
	src := `version: 1
rules:
  - {name: two, match: two, typing: auto, messages: ["` + long + `", "` + long + `"]}
  - {name: short, match: short, typing: auto, messages: ["hi", "` + long + `"]}
  - {name: fixed, match: fixed, typing: 2s, messages: [a, b]}
`
	tests := []struct {
		name string
		max  time.Duration
		text string
		want []time.Duration
	}{
		{"default cap, two long parts", 0, "two", []time.Duration{DefaultAutoTypingMax, 0}},
		{"short part then the rest", 0, "short", []time.Duration{autoTypingMin, DefaultAutoTypingMax - autoTypingMin}},
		{"configured cap", 4 * time.Second, "two", []time.Duration{4 * time.Second, 0}},
		{"configured cap above the pace", 20 * time.Second, "two", []time.Duration{5 * time.Second, 5 * time.Second}},
		{"fixed delay", 0, "fixed", []time.Duration{2 * time.Second, 2 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEngine(t, Options{AutoTypingMax: tt.max}, src)
			_, _, outs := converse(t, e, tt.text)
			var got []time.Duration
			for _, m := range outs[0].Replies() {
				got = append(got, m.Typing)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("typing %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEngineOutcome(t *testing.T) {
	e := newTestEngine(t, Options{}, `version: 1
rules:
  - {name: bye, match: bye, reply: "bye", end: true, typing: 700ms}
  - {name: long, match: long, typing: auto, reply: "a fairly long message for the auto typing delay"}
  - {name: help-me, description: Get help, examples: ["help me"], match: "help me", reply: ok}
`)
	_, _, outs := converse(t, e, "bye", "long", "nothing", "help")
	if o := outs[0]; !o.End || o.Pass || o.Replies()[0].Typing != 700*time.Millisecond {
		t.Errorf("bye: end=%v pass=%v typing=%v", o.End, o.Pass, o.Replies()[0].Typing)
	}
	if d := outs[1].Replies()[0].Typing; d < autoTypingMin || d > DefaultAutoTypingMax {
		t.Errorf("auto typing %v", d)
	}
	if o := outs[2]; !o.Pass || len(o.Steps) != 0 || !strings.Contains(strings.Join(o.Why(), "\n"), "no rule answered") {
		t.Errorf("nothing: pass=%v why=%v", o.Pass, o.Why())
	}
	// The built-in help lists the described rules.
	if got := outs[3].Replies(); len(got) != 1 || !strings.Contains(got[0].Text, `Get help (try "help me")`) {
		t.Errorf("help: %v", got)
	}
}

func TestFuncsAndHandlers(t *testing.T) {
	var got *Info
	opts := Options{
		Funcs: Funcs{
			"accounts.reset": Func1(func(ctx context.Context, user string) (map[string]any, error) {
				if user == "nobody" {
					return nil, errors.New("no such user")
				}
				return map[string]any{"sent": true, "to": user + "@example.com"}, nil
			}),
			"shout": Func1(func(_ context.Context, s string) (string, error) { return strings.ToUpper(s), nil }),
			"sum": {Call: func(_ context.Context, args ...any) (any, error) {
				n := 0
				for _, a := range args {
					n += a.(int)
				}
				return n, nil
			}},
		},
		Handlers: Handlers{"ticket": bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
			got, _ = InfoFrom(ctx)
			return w.Reply(ctx, "ticket opened")
		})},
	}
	e := newTestEngine(t, opts, `version: 1
rules:
  - name: reset
    match: "reset {user}"
    call: accounts.reset(match.user)
    set: {mail: "{{ result.to }}"}
    reply: "sent to {{ result.to }} {{ shout('ok') }} {{ sum(1, 2, 3) }}"
  - name: ticket
    match: "ticket *"
    reply: "one moment"
    handler: ticket
`)
	replies, conv, _ := converse(t, e, "reset bob")
	if want := "sent to bob@example.com OK 6"; replies[0][0] != want {
		t.Errorf("got %q, want %q", replies[0][0], want)
	}
	if conv.Vars["mail"] != "bob@example.com" {
		t.Errorf("vars %v", conv.Vars)
	}
	if _, err := e.Process(context.Background(), Input{Text: "reset nobody"}, store.ConversationState{}); err == nil || !strings.Contains(err.Error(), "no such user") {
		t.Errorf("error %v", err)
	}
	_, _, outs := converse(t, e, "ticket printer broken")
	if st := outs[0].Steps; len(st) != 1 || st[0].Handler != "ticket" || st[0].Info.Match["star1"] != "printer broken" {
		t.Errorf("steps %+v", st)
	}
	_ = got
}

func TestCheckUnregistered(t *testing.T) {
	f := filepath.Join(t.TempDir(), "r.yaml")
	os.WriteFile(f, []byte("version: 1\nrules:\n  - {name: a, match: a, call: acounts.reset, handler: tickt}\n"), 0o644)
	errs := Check(Options{Funcs: Funcs{"accounts.reset": Func0(func(context.Context) (bool, error) { return true, nil })}, Handlers: Handlers{"ticket": nil}}, f)
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{"did you mean 'accounts.reset'?", "did you mean 'ticket'?"} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q in:\n%s", want, all)
		}
	}
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "r.yaml")
	write := func(s string) {
		if err := os.WriteFile(f, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("version: 1\nrules:\n  - {name: a, match: hi, reply: one}\n")
	e, err := New(Options{Logger: slog.New(slog.DiscardHandler)}, f)
	if err != nil {
		t.Fatal(err)
	}
	say := func() string {
		out, err := e.Process(context.Background(), Input{Text: "hi"}, store.ConversationState{})
		if err != nil || len(out.Replies()) == 0 {
			return ""
		}
		return out.Replies()[0].Text
	}
	write("version: 1\nrules:\n  - {name: a, match: hi, reply: two}\n")
	if err := e.Reload(); err != nil || say() != "two" {
		t.Fatalf("reload: %v, %q", err, say())
	}
	write("version: 1\nrules:\n  - {name: a, match: hi, reply: three, whem: x}\n")
	if err := e.Reload(); err == nil {
		t.Fatal("bad file reloaded")
	}
	if say() != "two" {
		t.Errorf("a bad file replaced the rules: %q", say())
	}
	if st := e.Stats(); st.Reloads != 1 || st.ReloadErrors != 1 || st.LastError == nil {
		t.Errorf("stats %+v", st)
	}
	// Watch picks up a fixed file.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { e.Watch(ctx, 10*time.Millisecond); close(done) }()
	write("version: 1\nrules:\n  - {name: a, match: hi, reply: four, priority: 1}\n")
	deadline := time.Now().Add(5 * time.Second)
	for say() != "four" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if say() != "four" {
		t.Error("Watch did not reload")
	}
	cancel()
	<-done
}

func TestConcurrentReload(t *testing.T) {
	e := newTestEngine(t, Options{}, "version: 1\nrules:\n  - {name: a, match: hi, reply: \"hi {{ sender.name }}\", set: {x: 1}}\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func() {
			for ctx.Err() == nil {
				if _, err := e.Process(ctx, Input{Text: "hi", Peer: bot.Peer{User: "u"}}, store.ConversationState{Vars: map[string]any{"y": 1}}); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for i := 0; i < 20; i++ {
		if err := e.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	for g := 0; g < 4; g++ {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
}

func TestRuleSetInfo(t *testing.T) {
	rs, err := Load(Options{FS: Demo}, DemoFile)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rs.States(), []string{"ask-username", "confirm-reset"}) {
		t.Errorf("states %v", rs.States())
	}
	if rs.Rules()[0].Priority != 10 || !strings.Contains(rs.Help(), "Reset a forgotten password") {
		t.Errorf("rules %+v help %q", rs.Rules()[0], rs.Help())
	}
}
