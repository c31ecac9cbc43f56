package sqlite_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/store"
	"github.com/imbot-dev/imbot/store/sqlite"
)

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

// runBot runs a bot on addr with the flow over the database at path, until stop is called.
func runBot(t *testing.T, addr, path string) (b *bot.Bot, stop func()) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	b, err = bot.New(bot.Config{Listen: []string{"udp://" + addr}, Identity: "sip:helpdesk@test.invalid",
		Typing: bot.TypingConfig{Off: true}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	b.Handle(flow(db))
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.Run(rctx) }()
	<-b.Ready()
	return b, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		db.Close()
	}
}

// TestRestartContinuesFlow: a user in the middle of a flow finds it where it was after the
// bot restarted on the same database.
func TestRestartContinuesFlow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "imbot.db")
	b1, stop1 := runBot(t, "127.0.0.1:0", path)
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

	_, stop2 := runBot(t, addr, path) // same address: the peer keeps writing there
	defer stop2()
	if _, err := p.SendPage(ctx, "VPN is down"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.WaitText(ctx, "Noted: VPN is down"); err != nil {
		t.Fatal(err)
	}
}
