package handlers

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
)

func TestAccessAllowed(t *testing.T) {
	const (
		verified   = true
		unverified = false
	)
	tests := []struct {
		name        string
		allow, deny []string
		uri         string
		verified    bool
		want        bool
	}{
		{"no lists", nil, nil, "sip:anyone@anywhere.org", verified, true},
		{"no lists, unverified", nil, nil, "sip:anyone@anywhere.org", unverified, true},
		{"allow address", []string{"sip:alice@example.com"}, nil, "sip:alice@example.com", verified, true},
		{"allow address, other user", []string{"sip:alice@example.com"}, nil, "sip:bob@example.com", verified, false},
		{"allow address without scheme", []string{"alice@example.com"}, nil, "sip:alice@EXAMPLE.com", verified, true},
		{"user is case-sensitive", []string{"alice@example.com"}, nil, "sip:Alice@example.com", verified, false},
		{"sips entry", []string{"sips:alice@example.com"}, nil, "sip:alice@example.com", verified, true},
		{"allow domain", []string{"example.com"}, nil, "sip:bob@example.com", verified, true},
		{"allow domain, subdomain", []string{"example.com"}, nil, "sip:bob@it.example.com", verified, false},
		{"wildcard subdomain", []string{"*.example.com"}, nil, "sip:bob@it.example.com", verified, true},
		{"wildcard deep subdomain", []string{"*.example.com"}, nil, "sip:bob@a.b.example.com", verified, true},
		{"wildcard is not the apex", []string{"*.example.com"}, nil, "sip:bob@example.com", verified, false},
		{"wildcard is not a lookalike", []string{"*.example.com"}, nil, "sip:bob@badexample.com", verified, false},
		{"deny wins over allow", []string{"example.com"}, []string{"sip:mallory@example.com"}, "sip:mallory@example.com", verified, false},
		{"deny only", nil, []string{"evil.org"}, "sip:x@evil.org", verified, false},
		{"deny only, others pass", nil, []string{"evil.org"}, "sip:x@good.org", verified, true},
		{"star", []string{"*"}, []string{"*.evil.org"}, "sip:x@a.evil.org", verified, false},
		{"port in entry must match", []string{"sip:alice@127.0.0.1:5070"}, nil, "sip:alice@127.0.0.1:5080", verified, false},
		{"port in entry matches", []string{"sip:alice@127.0.0.1:5070"}, nil, "sip:alice@127.0.0.1:5070", verified, true},
		{"entry without port matches any port", []string{"127.0.0.1"}, nil, "sip:alice@127.0.0.1:5080", verified, true},
		{"uri params ignored", []string{"alice@example.com"}, nil, "<sip:alice@example.com;transport=tcp>", verified, true},
		{"ipv6", []string{"::1"}, nil, "sip:alice@[::1]:5060", verified, true},
		{"garbage uri", []string{"*"}, nil, "", verified, false},

		// The allow list admits verified peers only; the deny list applies to everyone.
		{"allowed address, unverified", []string{"sip:alice@example.com"}, nil, "sip:alice@example.com", unverified, false},
		{"allowed domain, unverified", []string{"example.com"}, nil, "sip:bob@example.com", unverified, false},
		{"star, unverified", []string{"*"}, nil, "sip:x@good.org", unverified, false},
		{"deny only, unverified denied", nil, []string{"evil.org"}, "sip:x@evil.org", unverified, false},
		{"deny only, unverified others pass", nil, []string{"evil.org"}, "sip:x@good.org", unverified, true},
		{"deny wins over allow, unverified", []string{"example.com"}, []string{"sip:mallory@example.com"}, "sip:mallory@example.com", unverified, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NewAccessList(tt.allow, tt.deny)
			if err != nil {
				t.Fatal(err)
			}
			if got := a.Allowed(bot.Peer{URI: tt.uri, Verified: tt.verified}); got != tt.want {
				t.Errorf("Allowed(%q, verified %v) = %v, want %v", tt.uri, tt.verified, got, tt.want)
			}
		})
	}
}

func TestAccessBadEntries(t *testing.T) {
	for _, e := range []string{"", "sip:", "*.", "*.alice@example.com", "al*ce@example.com", "a b.com"} {
		t.Run(e, func(t *testing.T) {
			if _, err := NewAccessList([]string{e}, nil); err == nil {
				t.Errorf("entry %q accepted", e)
			}
			if _, err := Access(nil, []string{e}); err == nil {
				t.Errorf("deny entry %q accepted", e)
			}
		})
	}
}

func TestAccessAdmit(t *testing.T) {
	admit, err := AccessAdmit([]string{"example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := admit(context.Background(), bot.Peer{URI: "sip:a@example.com", Verified: true}, bot.ModePage); err != nil {
		t.Errorf("allowed peer refused: %v", err)
	}
	for _, p := range []bot.Peer{
		{URI: "sip:a@other.com", Verified: true},
		{URI: "sip:a@example.com"}, // on the list, but only claimed
	} {
		err = admit(context.Background(), p, bot.ModeSession)
		var r *bot.Refusal
		if !errors.As(err, &r) || r.Code != 403 {
			t.Errorf("%+v: %v, want a 403 *bot.Refusal", p, err)
		}
	}
}

func TestAccessMiddleware(t *testing.T) {
	mw, err := Access([]string{"example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := mw(echo)
	tests := []struct {
		name    string
		peer    []bottest.ConversationOption
		replies int
		ended   bool
	}{
		{"allowed, verified", []bottest.ConversationOption{bottest.WithPeer("sip:alice@example.com"), bottest.Verified()}, 1, false},
		{"allowed address, unverified", []bottest.ConversationOption{bottest.WithPeer("sip:alice@example.com")}, 0, true},
		{"not allowed", []bottest.ConversationOption{bottest.WithPeer("sip:mallory@evil.org"), bottest.Verified()}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := bottest.NewRecorder()
			if err := h.Handle(context.Background(), w, bottest.NewEvent(bot.EventMessage, "hi", tt.peer...)); err != nil {
				t.Fatal(err)
			}
			if w.Replied() != tt.replies || w.Ended() != tt.ended {
				t.Errorf("replies %d ended %v, want %d %v", w.Replied(), w.Ended(), tt.replies, tt.ended)
			}
		})
	}
}

// TestAccessBot: over SIP, a refused peer gets 403 and the handler never sees it: one on the
// deny list, verified or not, and one that claims an allowed address without the proxy's
// assertion.
func TestAccessBot(t *testing.T) {
	ctx := testCtx(t)
	// The peers' addresses are known only once they listen: the lists are built after.
	var acl atomic.Pointer[AccessList]
	admit := func(ctx context.Context, p bot.Peer, m bot.Mode) error { return acl.Load().Admit(ctx, p, m) }
	b := startBot(t, bot.Config{Admit: admit, Trust: loopbackProxy}, echo)
	alice := b.verifiedPeer("alice")
	mallory := b.verifiedPeer("mallory")
	unverifiedMallory := b.peer("mallory")
	forger := b.peerWith(bottest.Options{User: "forger", From: alice.URI()})
	list, err := NewAccessList([]string{"127.0.0.1"}, []string{mallory.URI(), unverifiedMallory.URI()})
	if err != nil {
		t.Fatal(err)
	}
	acl.Store(list)
	send(t, ctx, alice, "hi")
	waitText(t, ctx, alice, "echo: hi")
	for _, p := range []struct {
		name string
		peer *bottest.Peer
	}{{"denied, verified", mallory}, {"denied, unverified", unverifiedMallory}, {"allowed address, unverified", forger}} {
		res, err := p.peer.SendPage(ctx, "hi")
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 403 {
			t.Errorf("%s: got %d, want 403", p.name, res.StatusCode)
		}
		if texts := p.peer.Texts(); len(texts) != 0 {
			t.Errorf("%s: got replies: %q", p.name, texts)
		}
	}
}
