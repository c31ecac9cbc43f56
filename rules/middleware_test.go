package rules_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/rules"
)

// TestMiddleware runs the demo rules in a real bot, over loopback SIP.
func TestMiddleware(t *testing.T) {
	store := &bot.MemoryStore{}
	e, err := rules.New(rules.Options{FS: rules.Demo, Store: store, Logger: slog.New(slog.DiscardHandler)}, rules.DemoFile)
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
	if _, err := p.SendPage(wctx, "I forgot my password"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.WaitText(wctx, "I can help with that. What is your username?"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.SendPage(wctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.WaitText(wctx, "Shall I send a reset link to the address on file for alice? (yes/no)"); err != nil {
		t.Fatal(err)
	}
	// The state lives in the store, under the session's key.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if e.Stats().Events >= 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := e.Stats(); st.Events < 2 {
		t.Errorf("stats %+v", st)
	}
}
