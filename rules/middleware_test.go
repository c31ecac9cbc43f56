package rules_test

import (
	"context"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/rules"
	"github.com/imbot-dev/imbot/store"
)

// TestMiddleware runs the demo rules in a real bot, over loopback SIP.
func TestMiddleware(t *testing.T) {
	st := &store.Memory{}
	e, err := rules.New(rules.Options{FS: rules.Demo, Store: st, Logger: slog.New(slog.DiscardHandler)}, rules.DemoFile)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bot.New(bot.Config{Listen: []string{"udp://127.0.0.1:0"}})
	if err != nil {
		t.Skipf("no bot: %v", err)
	}
	passed := make(chan string, 4)
	b.Use(e.Middleware())
	b.Handle(bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		if ev.Kind == bot.EventMessage {
			passed <- ev.Text
		}
		return nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	p := bottest.NewPeer(t, bottest.Options{Bot: b.Addr("udp"), DisplayName: "Alice"})
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	// A blank message is not for the rules: no fallback answers it, and it goes on.
	if _, err := p.SendPage(wctx, " \t "); err != nil {
		t.Fatal(err)
	}
	select {
	case text := <-passed:
		if text != " \t " {
			t.Errorf("passed on %q, want the blank message", text)
		}
	case <-wctx.Done():
		t.Fatal("the blank message did not go on to the next handler")
	}
	if _, err := p.SendPage(wctx, "I forgot my password"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.WaitText(wctx, "I can help with that. What is your username?"); err != nil {
		t.Fatal(err)
	}
	// The greeting of the session the blank message started, then the answer.
	want := []string{"Hi Alice! I am the Contoso helpdesk bot. Type 'help' to see what I can do.", "I can help with that. What is your username?"}
	if texts := p.Texts(); !reflect.DeepEqual(texts, want) {
		t.Errorf("the bot sent %q; want %q", texts, want)
	}
	if _, err := p.SendPage(wctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.WaitText(wctx, "Shall I send a reset link to the address on file for alice? (yes/no)"); err != nil {
		t.Fatal(err)
	}
	// Both events were counted before their replies went out.
	if st := e.Stats(); st.Events < 2 {
		t.Errorf("stats %+v", st)
	}
}

// TestMiddlewareWithoutSIP runs the demo rules as middleware with the test kit's events and
// recorder: the replies with their typing, the state saved under the conversation key, and
// `end: true`.
func TestMiddlewareWithoutSIP(t *testing.T) {
	st := &store.Memory{}
	e, err := rules.New(rules.Options{FS: rules.Demo, Store: st, Logger: slog.New(slog.DiscardHandler)}, rules.DemoFile)
	if err != nil {
		t.Fatal(err)
	}
	h := e.Middleware()(nil)
	c := bottest.NewConversation(bottest.WithPeer(`"Alice" <sip:alice@example.com>`))
	steps := []struct {
		text  string
		want  []bottest.Message
		state string
		ended bool
	}{
		{"I forgot my password", []bottest.Message{{Text: "I can help with that. What is your username?"}}, "ask-username", false},
		{"alice", []bottest.Message{{Text: "Shall I send a reset link to the address on file for alice? (yes/no)"}}, "confirm-reset", false},
		{"yes", []bottest.Message{{Text: "Done: a reset link is on its way to the address on file for alice.", Typing: time.Second}}, "", false},
		{"bye", []bottest.Message{{Text: "Goodbye Alice!"}}, "", true},
	}
	ctx := context.Background()
	for _, s := range steps {
		w := bottest.NewRecorder()
		if err := h.Handle(ctx, w, c.Event(bot.EventMessage, s.text)); err != nil {
			t.Fatalf("%q: %v", s.text, err)
		}
		if got := w.Messages(); !reflect.DeepEqual(got, s.want) {
			t.Errorf("%q: replies %+v, want %+v", s.text, got, s.want)
		}
		saved, err := st.Load(ctx, c.Key())
		if err != nil {
			t.Fatal(err)
		}
		if saved.State != s.state || w.Ended() != s.ended {
			t.Errorf("%q: state %q, ended %v; want %q, %v", s.text, saved.State, w.Ended(), s.state, s.ended)
		}
	}
}

// TestSessionStateSurvivesRestart: a flow started in an IM session continues in the next
// session with the same peer, after the bot restarted, because the conversation is kept by
// the peers' addresses (Conversation.Key), not by the dialog.
func TestSessionStateSurvivesRestart(t *testing.T) {
	st := &store.Memory{} // stands for the SQLite file that outlives the process
	start := func(addr string) (*bot.Bot, func()) {
		e, err := rules.New(rules.Options{FS: rules.Demo, Store: st, Logger: slog.New(slog.DiscardHandler)}, rules.DemoFile)
		if err != nil {
			t.Fatal(err)
		}
		b, err := bot.New(bot.Config{Listen: []string{"udp://" + addr}, Identity: "sip:bot@127.0.0.1",
			Logger: slog.New(slog.DiscardHandler), ShutdownTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		b.Use(e.Middleware())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- b.Run(ctx) }()
		<-b.Ready()
		return b, func() { cancel(); <-done }
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	b1, stop1 := start("127.0.0.1:0")
	addr := b1.Addr("udp")
	p := bottest.NewPeer(t, bottest.Options{Bot: addr, BotURI: "sip:bot@127.0.0.1", DisplayName: "Alice"})
	s1, err := p.OpenSession(ctx, bottest.DialectMS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s1.Send(ctx, "I forgot my password"); err != nil {
		t.Fatal(err)
	}
	if _, err := s1.WaitText(ctx, "I can help with that. What is your username?"); err != nil {
		t.Fatal(err)
	}
	stop1()

	_, stop2 := start(addr) // the same address, a new process
	defer stop2()
	s2, err := p.OpenSession(ctx, bottest.DialectMS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Send(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.WaitText(ctx, "Shall I send a reset link to the address on file for alice? (yes/no)"); err != nil {
		t.Fatal(err)
	}
}

// TestMiddlewareBlank checks that a blank message, as the bot delivers a body of white space
// over SIP, is not for the rules: it goes on to the next handler, nothing is sent, and the
// conversation is neither loaded nor saved, even in a state whose rule takes any message.
func TestMiddlewareBlank(t *testing.T) {
	st := &store.Memory{}
	e, err := rules.New(rules.Options{FS: rules.Demo, Store: st, Logger: slog.New(slog.DiscardHandler)}, rules.DemoFile)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, state, text string
	}{
		{"empty", "", ""},
		{"spaces", "", "  \t "},
		{"newline in a flow", "ask-username", "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			ev := bottest.NewEvent(bot.EventMessage, tt.text)
			if err := st.Save(ctx, ev.Session.Key(), store.ConversationState{State: tt.state}); err != nil {
				t.Fatal(err)
			}
			var passed []string
			observed := false
			next := bot.HandlerFunc(func(_ context.Context, _ bot.Responder, ev *bot.Event) error {
				passed = append(passed, ev.Text)
				return nil
			})
			rec := bottest.NewRecorder()
			octx := rules.WithOutcome(ctx, func(*rules.Outcome) { observed = true })
			if err := e.Middleware()(next).Handle(octx, rec, ev); err != nil {
				t.Fatal(err)
			}
			conv, err := st.Load(ctx, ev.Session.Key())
			if err != nil {
				t.Fatal(err)
			}
			if len(passed) != 1 || passed[0] != tt.text || rec.Replied() != 0 || rec.Ended() || observed || conv.State != tt.state {
				t.Errorf("passed %q, replies %q, ended %v, observed %v, state %q", passed, rec.Replies(), rec.Ended(), observed, conv.State)
			}
		})
	}
}
