package rules_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/rules"
	"github.com/imbot-dev/imbot/store"
	"github.com/imbot-dev/imbot/store/sqlite"
)

// TestSavedStateIsStampedWithTheEvent: every save of a conversation's state records when it
// happened, not only the first one (the state the engine saves is the one it loaded, with
// its old time).
func TestSavedStateIsStampedWithTheEvent(t *testing.T) {
	tests := []struct {
		name string
		open func(t *testing.T) store.StateStore
	}{
		{"memory", func(*testing.T) store.StateStore { return &store.Memory{} }},
		{"sqlite", func(t *testing.T) store.StateStore {
			db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "imbot.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			return db
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.open(t)
			e, err := rules.New(rules.Options{FS: rules.Demo, Store: st, Logger: slog.New(slog.DiscardHandler)}, rules.DemoFile)
			if err != nil {
				t.Fatal(err)
			}
			h := e.Middleware()(nil)
			c := bottest.NewConversation(bottest.WithPeer(`"Alice" <sip:alice@example.com>`))
			ctx := context.Background()
			t0 := time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)
			steps := []struct {
				text  string
				at    time.Time
				state string
			}{
				{"I forgot my password", t0, "ask-username"},
				{"alice", t0.Add(time.Minute), "confirm-reset"},
				{"yes", t0.Add(2 * time.Minute), ""},
			}
			for _, s := range steps {
				ev := c.Event(bot.EventMessage, s.text)
				ev.Time = s.at
				if err := h.Handle(ctx, bottest.NewRecorder(), ev); err != nil {
					t.Fatalf("%q: %v", s.text, err)
				}
				saved, err := st.Load(ctx, c.Key())
				if err != nil {
					t.Fatal(err)
				}
				if saved.State != s.state || !saved.Updated.Equal(s.at) {
					t.Errorf("after %q: state %q updated %v; want %q updated %v", s.text, saved.State, saved.Updated, s.state, s.at)
				}
			}
		})
	}
}
