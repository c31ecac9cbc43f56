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
	tests := []struct {
		name        string
		allow, deny []string
		uri         string
		want        bool
	}{
		{"no lists", nil, nil, "sip:anyone@anywhere.org", true},
		{"allow address", []string{"sip:alice@example.com"}, nil, "sip:alice@example.com", true},
		{"allow address, other user", []string{"sip:alice@example.com"}, nil, "sip:bob@example.com", false},
		{"allow address without scheme", []string{"alice@example.com"}, nil, "sip:alice@EXAMPLE.com", true},
		{"user is case-sensitive", []string{"alice@example.com"}, nil, "sip:Alice@example.com", false},
		{"sips entry", []string{"sips:alice@example.com"}, nil, "sip:alice@example.com", true},
		{"allow domain", []string{"example.com"}, nil, "sip:bob@example.com", true},
		{"allow domain, subdomain", []string{"example.com"}, nil, "sip:bob@it.example.com", false},
		{"wildcard subdomain", []string{"*.example.com"}, nil, "sip:bob@it.example.com", true},
		{"wildcard deep subdomain", []string{"*.example.com"}, nil, "sip:bob@a.b.example.com", true},
		{"wildcard is not the apex", []string{"*.example.com"}, nil, "sip:bob@example.com", false},
		{"wildcard is not a lookalike", []string{"*.example.com"}, nil, "sip:bob@badexample.com", false},
		{"deny wins over allow", []string{"example.com"}, []string{"sip:mallory@example.com"}, "sip:mallory@example.com", false},
		{"deny only", nil, []string{"evil.org"}, "sip:x@evil.org", false},
		{"deny only, others pass", nil, []string{"evil.org"}, "sip:x@good.org", true},
		{"star", []string{"*"}, []string{"*.evil.org"}, "sip:x@a.evil.org", false},
		{"port in entry must match", []string{"sip:alice@127.0.0.1:5070"}, nil, "sip:alice@127.0.0.1:5080", false},
		{"port in entry matches", []string{"sip:alice@127.0.0.1:5070"}, nil, "sip:alice@127.0.0.1:5070", true},
		{"entry without port matches any port", []string{"127.0.0.1"}, nil, "sip:alice@127.0.0.1:5080", true},
		{"uri params ignored", []string{"alice@example.com"}, nil, "<sip:alice@example.com;transport=tcp>", true},
		{"ipv6", []string{"::1"}, nil, "sip:alice@[::1]:5060", true},
		{"garbage uri", []string{"*"}, nil, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NewAccessList(tt.allow, tt.deny)
			if err != nil {
				t.Fatal(err)
			}
			if got := a.Allowed(tt.uri); got != tt.want {
				t.Errorf("Allowed(%q) = %v, want %v", tt.uri, got, tt.want)
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
	if err := admit(context.Background(), bot.Peer{URI: "sip:a@example.com"}, bot.ModePage); err != nil {
		t.Errorf("allowed peer refused: %v", err)
	}
	err = admit(context.Background(), bot.Peer{URI: "sip:a@other.com"}, bot.ModeSession)
	var r *bot.Refusal
	if !errors.As(err, &r) || r.Code != 403 {
		t.Errorf("refused peer: %v, want a 403 *bot.Refusal", err)
	}
}

func TestAccessMiddleware(t *testing.T) {
	mw, err := Access([]string{"example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := mw(echo)
	tests := []struct {
		uri     string
		replies int
		ended   bool
	}{
		{"sip:alice@example.com", 1, false},
		{"sip:mallory@evil.org", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			w := bottest.NewRecorder()
			if err := h.Handle(context.Background(), w, fromPeer(tt.uri, msg("hi"))); err != nil {
				t.Fatal(err)
			}
			if w.Replied() != tt.replies || w.Ended() != tt.ended {
				t.Errorf("replies %d ended %v, want %d %v", w.Replied(), w.Ended(), tt.replies, tt.ended)
			}
		})
	}
}

// TestAccessBot: over SIP, a refused peer gets 403 and the handler never sees it.
func TestAccessBot(t *testing.T) {
	ctx := testCtx(t)
	// The peers' addresses are known only once they listen: the lists are built after.
	var acl atomic.Pointer[AccessList]
	admit := func(ctx context.Context, p bot.Peer, m bot.Mode) error { return acl.Load().Admit(ctx, p, m) }
	b := startBot(t, bot.Config{Admit: admit}, echo)
	alice := b.peer("alice")
	mallory := b.peer("mallory")
	list, err := NewAccessList([]string{"127.0.0.1"}, []string{mallory.URI()})
	if err != nil {
		t.Fatal(err)
	}
	acl.Store(list)
	send(t, ctx, alice, "hi")
	waitText(t, ctx, alice, "echo: hi")
	res, err := mallory.SendPage(ctx, "hi")
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 403 {
		t.Errorf("refused peer got %d, want 403", res.StatusCode)
	}
	if texts := mallory.Texts(); len(texts) != 0 {
		t.Errorf("refused peer got replies: %q", texts)
	}
}
