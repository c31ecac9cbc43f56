package bot_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
)

// TestTypingDelayCutByNextMessage: a multi-part answer paced with WithTyping does not
// trickle in after the user wrote again. The user's next message cuts the pending delays:
// the rest of the answer goes at once, before the reply to the new message. The delays
// are an hour, so without the cut the test runs into its deadline.
func TestTypingDelayCutByNextMessage(t *testing.T) {
	h := bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		if ev.Kind != bot.EventMessage {
			return nil
		}
		if ev.Text != "faq" {
			return w.Reply(ctx, "echo: "+ev.Text)
		}
		for _, part := range []string{"part one", "part two"} {
			if err := w.Reply(ctx, part, bot.WithTyping(time.Hour)); err != nil {
				return err
			}
		}
		return nil
	})
	tests := []struct {
		name string
		// start opens the conversation and returns how the peer writes in it.
		start func(t *testing.T, ctx context.Context, p *bottest.Peer) func(text string) error
	}{
		{"page", func(t *testing.T, ctx context.Context, p *bottest.Peer) func(string) error {
			return func(text string) error { _, err := p.SendPage(ctx, text); return err }
		}},
		{"session", func(t *testing.T, ctx context.Context, p *bottest.Peer) func(string) error {
			s, err := p.OpenSession(ctx, bottest.DialectIETF)
			if err != nil {
				t.Fatal(err)
			}
			return func(text string) error { _, err := s.Send(ctx, text); return err }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := startBot(t, bot.Config{Typing: bot.TypingConfig{Off: true}}, h)
			p := newPeer(t, r, "udp", bottest.Options{AcceptComposing: true})
			ctx := testCtx(t)
			send := tt.start(t, ctx, p)
			if err := send("faq"); err != nil {
				t.Fatal(err)
			}
			// Typing shows: the first part waits out its delay.
			if _, err := p.Wait(ctx, bottest.IsTyping(true)); err != nil {
				t.Fatalf("no typing before the first part: %v", err)
			}
			if err := send("next"); err != nil {
				t.Fatal(err)
			}
			if _, err := p.WaitText(ctx, "echo: next"); err != nil {
				t.Fatalf("no reply to the next message: %v (texts %q)", err, p.Texts())
			}
			want := []string{"part one", "part two", "echo: next"}
			if got := p.Texts(); !slices.Equal(got, want) {
				t.Errorf("texts %q, want %q", got, want)
			}
		})
	}
}
