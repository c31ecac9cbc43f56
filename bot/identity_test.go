package bot_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
)

// TestUnverifiedSenderOwnConversation: behind a trusted proxy, a sender the proxy did not
// vouch for that claims a verified user's address gets a conversation of its own, not
// Verified and under another key, whether it writes while the user's conversation is open or
// before it; the user's own conversation stays verified.
func TestUnverifiedSenderOwnConversation(t *testing.T) {
	ctx := testCtx(t)
	describe := bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		if ev.Kind != bot.EventMessage {
			return nil
		}
		p := ev.Session.Peer()
		return w.Reply(ctx, fmt.Sprintf("%s: %s verified=%v key=%q", ev.Text, p.URI, p.Verified, ev.Session.Key()))
	})
	r := startBot(t, bot.Config{Trust: bot.TrustConfig{Proxies: []string{"127.0.0.1"}}}, describe)
	ann := newPeer(t, r, "udp", bottest.Options{User: "ann", AssertIdentity: true})
	mallory := newPeer(t, r, "udp", bottest.Options{User: "mallory", From: ann.URI()})
	verifiedKey := fmt.Sprintf("%q", "sip:bot@127.0.0.1 "+ann.URI())
	unverifiedKey := fmt.Sprintf("%q", "sip:bot@127.0.0.1 "+ann.URI()+" unverified")

	steps := []struct {
		peer *bottest.Peer
		text string
		want string
	}{
		{mallory, "first", "first: " + ann.URI() + " verified=false key=" + unverifiedKey},
		{ann, "hello", "hello: " + ann.URI() + " verified=true key=" + verifiedKey},
		{mallory, "forged", "forged: " + ann.URI() + " verified=false key=" + unverifiedKey},
		{ann, "again", "again: " + ann.URI() + " verified=true key=" + verifiedKey},
	}
	for _, s := range steps {
		if res, err := s.peer.SendPage(ctx, s.text); err != nil || res.StatusCode != 200 {
			t.Fatalf("%q: %v %v", s.text, res, err)
		}
		if _, err := s.peer.WaitText(ctx, s.want); err != nil {
			t.Fatal(err)
		}
	}
	for _, txt := range mallory.Texts() {
		if txt != steps[0].want && txt != steps[2].want {
			t.Errorf("the forging sender got %q", txt)
		}
	}
}
