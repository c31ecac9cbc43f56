package handlers

import (
	"context"
	"reflect"
	"testing"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/store"
)

func TestLogUnmatched(t *testing.T) {
	silent := bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		if ev.Text == "quiet" {
			return nil // nobody answers
		}
		return echo(ctx, w, ev)
	})
	tests := []struct {
		name string
		ev   *bot.Event
		want []string
	}{
		{"matched", msg("hi"), nil},
		{"no match with fallback reply", msg("???"), []string{"???"}},
		{"nobody answered", msg("quiet"), []string{"quiet"}},
		{"handler failed", msg("fail"), nil},
		{"empty text", msg("  "), nil},
		{"not a message", &bot.Event{Kind: bot.EventSessionStart}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := &store.Memory{}
			h := LogUnmatched(mem)(silent)
			_ = h.Handle(context.Background(), bottest.NewRecorder(), fromPeer("sip:alice@x", tt.ev))
			got, _ := mem.Unmatched(context.Background(), 0)
			var texts []string
			for _, u := range got {
				texts = append(texts, u.Text)
				if u.Peer != "sip:alice@x" || u.Key == "" || u.SessionID == "" || u.Time.IsZero() {
					t.Errorf("record lacks fields: %+v", u)
				}
			}
			if !reflect.DeepEqual(texts, tt.want) {
				t.Errorf("unmatched = %q, want %q", texts, tt.want)
			}
		})
	}
}
