package storetest

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/store"
)

// Open returns a new handle on the same stored data each time it is called, and the function
// that closes that handle.
type Open func(t *testing.T) (st store.StateStore, close func())

// RestartContinuesFlow checks that a user in the middle of a flow finds it where it was after
// the bot restarted (or another instance took over its address) on a new handle to the same
// store: a real bot over loopback SIP, stopped after the first step of a two-step flow.
func RestartContinuesFlow(t *testing.T, open Open) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b1, stop1 := runBot(t, "127.0.0.1:0", open)
	addr := b1.Addr("udp")
	p, err := bottest.Start(bottest.Options{User: "alice", Bot: addr, BotURI: "sip:helpdesk@test.invalid"})
	if err != nil {
		stop1()
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.SendPage(ctx, "ticket"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.WaitText(ctx, "What is the problem?"); err != nil {
		t.Fatal(err)
	}
	stop1()

	_, stop2 := runBot(t, addr, open) // same address: the peer keeps writing there
	defer stop2()
	if _, err := p.SendPage(ctx, "VPN is down"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.WaitText(ctx, "Noted: VPN is down"); err != nil {
		t.Fatal(err)
	}
}

// flow is a two-step conversation kept in a store.StateStore: "ticket", then the summary.
func flow(st store.StateStore) bot.Handler {
	return bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		if ev.Kind != bot.EventMessage {
			return nil
		}
		key := ev.Session.Key()
		c, err := st.Load(ctx, key)
		if err != nil {
			return err
		}
		switch {
		case c.State == "ask-summary":
			c = store.ConversationState{State: "", Vars: map[string]any{"summary": ev.Text}}
			if err := st.Save(ctx, key, c); err != nil {
				return err
			}
			return w.Reply(ctx, "Noted: "+ev.Text)
		case ev.Text == "ticket":
			if err := st.Save(ctx, key, store.ConversationState{State: "ask-summary"}); err != nil {
				return err
			}
			return w.Reply(ctx, "What is the problem?")
		}
		return w.Reply(ctx, "Say 'ticket'.")
	})
}

// runBot runs a bot on addr with the flow over a new handle from open, until stop is called.
func runBot(t *testing.T, addr string, open Open) (b *bot.Bot, stop func()) {
	t.Helper()
	st, closeStore := open(t)
	b, err := bot.New(bot.Config{Listen: []string{"udp://" + addr}, Identity: "sip:helpdesk@test.invalid",
		Typing: bot.TypingConfig{Off: true}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		closeStore()
		t.Fatal(err)
	}
	b.Handle(flow(st))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	<-b.Ready()
	return b, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		closeStore()
	}
}
