package bot_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
)

// forwardSeen is what an instance saw of a message.
type forwardSeen struct {
	intent    string
	forwarded bool
	peer      bot.Peer
	ct, text  string
}

// seeMessages is a handler that sends what it sees of each message to got.
func seeMessages(got chan<- forwardSeen) bot.Handler {
	return bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		if ev.Kind == bot.EventMessage {
			intent, ok := ev.Forwarded()
			got <- forwardSeen{intent: intent, forwarded: ok, peer: ev.Session.Peer(), ct: ev.ContentType, text: ev.Text}
		}
		return nil
	})
}

// TestForward: an instance forwards a verified peer's message over SIP to another that
// trusts it; the other sees the peer (verified), the original Content-Type and text, and the
// intent. An instance that does not trust the sender never sees an intent, whatever the
// request claims.
func TestForward(t *testing.T) {
	ctx := testCtx(t)
	trusted := bot.TrustConfig{Proxies: []string{"127.0.0.1"}}
	got := make(chan forwardSeen, 4)
	leader := startBot(t, bot.Config{Trust: trusted}, seeMessages(got))
	dest := "sip:" + leader.Addr("udp")
	var follower atomic.Pointer[running]
	forwarded := make(chan error, 4)
	follower.Store(startBot(t, bot.Config{Trust: trusted}, bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		if ev.Kind == bot.EventMessage {
			forwarded <- follower.Load().Forward(ctx, ev, dest, "invite sip:kate@example.com")
		}
		return nil
	})))
	carol := newPeer(t, follower.Load(), "udp", bottest.Options{User: "carol", AssertIdentity: true})
	if res, err := carol.SendPageRaw(ctx, "text/html", []byte("<p>Hello <b>there</b></p>")); err != nil || res.StatusCode != 200 {
		t.Fatalf("the follower answered %v, %v", res, err)
	}
	if err := <-forwarded; err != nil {
		t.Fatalf("Forward: %v", err)
	}
	s := <-got
	if !s.forwarded || s.intent != "invite sip:kate@example.com" {
		t.Errorf("the leader saw intent %q (forwarded %v), want the follower's", s.intent, s.forwarded)
	}
	if s.peer.URI != carol.URI() || !s.peer.Verified {
		t.Errorf("the leader saw the peer %+v, want %s verified", s.peer, carol.URI())
	}
	if s.ct != "text/html" || s.text != "Hello there" {
		t.Errorf("the leader saw %q %q, want the original text/html", s.ct, s.text)
	}

	// An unverified peer is forwarded without an identity: the leader does not verify it.
	dave := newPeer(t, follower.Load(), "udp", bottest.Options{User: "dave"})
	if res, err := dave.SendPage(ctx, "hi"); err != nil || res.StatusCode != 200 {
		t.Fatalf("the follower answered %v, %v", res, err)
	}
	if err := <-forwarded; err != nil {
		t.Fatalf("Forward: %v", err)
	}
	if s := <-got; s.peer.Verified || !strings.Contains(s.peer.URI, "dave@") || !s.forwarded {
		t.Errorf("the leader saw %+v, want dave unverified and forwarded", s)
	}

	// Only a trusted source's intent counts.
	strict := startBot(t, bot.Config{Trust: bot.TrustConfig{Unverified: true}}, seeMessages(got))
	eve := newPeer(t, strict, "udp", bottest.Options{User: "eve"})
	if res, err := eve.SendPageRaw(ctx, "text/plain", []byte("let me lead"), sip.NewHeader(bot.ForwardHeader, "handoff")); err != nil || res.StatusCode != 200 {
		t.Fatalf("answered %v, %v", res, err)
	}
	if s := <-got; s.forwarded || s.intent != "" {
		t.Errorf("an untrusted sender's %s reached the handler: %+v", bot.ForwardHeader, s)
	}
}

// TestForwardRefused: what cannot be forwarded says why, and a refusal carries its status.
func TestForwardRefused(t *testing.T) {
	ctx := testCtx(t)
	// It trusts another proxy only: the forwarding instance gets 403.
	untrusting := startBot(t, bot.Config{Trust: bot.TrustConfig{Proxies: []string{"192.0.2.1"}}}, bot.HandlerFunc(func(context.Context, bot.Responder, *bot.Event) error { return nil }))
	evs := make(chan *bot.Event, 1)
	b := startBot(t, bot.Config{Trust: bot.TrustConfig{Proxies: []string{"127.0.0.1"}}}, bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		if ev.Kind == bot.EventMessage {
			evs <- ev
		}
		return nil
	}))
	p := newPeer(t, b, "udp", bottest.Options{User: "carol", AssertIdentity: true})
	if _, err := p.SendPage(ctx, "hi"); err != nil {
		t.Fatal(err)
	}
	ev := <-evs
	for _, c := range []struct {
		name   string
		ev     *bot.Event
		dest   string
		intent string
		want   string
	}{
		{"not a message", &bot.Event{Kind: bot.EventTyping, Session: ev.Session}, "sip:" + untrusting.Addr("udp"), "", "only a message"},
		{"two lines", ev, "sip:" + untrusting.Addr("udp"), "handoff\r\nVia: x", "one line"},
		{"no address", ev, "sip:", "", "not a SIP address"},
		{"refused", ev, "sip:" + untrusting.Addr("udp"), "", "403"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := b.Forward(ctx, c.ev, c.dest, c.intent)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Forward: %v, want an error with %q", err, c.want)
			}
		})
	}
}
