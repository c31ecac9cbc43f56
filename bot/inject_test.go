package bot_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
)

// TestPostLiveSession: an event posted for an open session is handled by the session's
// worker after what it was handling, before the peer's next message, and its replies reach
// the peer.
func TestPostLiveSession(t *testing.T) {
	ctx := testCtx(t)
	rec := newRecorder()
	var rp atomic.Pointer[running] // set before the first message; read by the handler
	rec.before = func(ctx context.Context, w bot.Responder, ev *bot.Event) (bool, error) {
		switch {
		case ev.Kind == bot.EventMessage && ev.Text == "post":
			if err := rp.Load().Post(ctx, &bot.Event{Kind: bot.EventJoin, Session: ev.Session, Room: "r1"}); err != nil {
				return true, err
			}
			return true, w.Reply(ctx, "posted")
		case ev.Kind == bot.EventJoin:
			return true, w.Reply(ctx, "welcome to "+ev.Room)
		}
		return false, nil
	}
	r := startBot(t, bot.Config{}, rec)
	rp.Store(r)
	p := newPeer(t, r, "udp", bottest.Options{})
	if _, err := p.SendPage(ctx, "post"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.WaitText(ctx, "welcome to r1"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.SendPage(ctx, "after"); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "message:after")
	got := rec.snapshot()
	i, j, k := slices.Index(got, "message:post"), slices.Index(got, "room.join"), slices.Index(got, "message:after")
	if i < 0 || j < i || k < j {
		t.Errorf("events handled in the order %q; want the posted one after the message that posted it", got)
	}
	texts := p.Texts()
	if a, b := slices.Index(texts, "posted"), slices.Index(texts, "welcome to r1"); a < 0 || b < a {
		t.Errorf("replies in the order %q; want the posted event's after the one of the message that posted it", texts)
	}
}

// TestPostOtherConversation: an event of a conversation that has no worker (one a handler
// made) is handled at once, in the caller's goroutine; its replies go through the
// conversation's Send and the chain's error is returned. Before Run, Post refuses.
func TestPostOtherConversation(t *testing.T) {
	ctx := testCtx(t)
	failed := errors.New("handler failed")
	rec := newRecorder()
	rec.before = func(ctx context.Context, w bot.Responder, ev *bot.Event) (bool, error) {
		if ev.Kind == bot.EventLeave {
			if err := w.Reply(ctx, "goodbye from "+ev.Room); err != nil {
				return true, err
			}
			if w.Replied() != 1 {
				t.Errorf("Replied() = %d after one reply", w.Replied())
			}
			return true, failed
		}
		return false, nil
	}
	b, err := bot.New(bot.Config{Listen: []string{"udp://127.0.0.1:0"}, Identity: "sip:bot@127.0.0.1", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	b.Handle(rec)
	c := bottest.NewConversation(bottest.WithPeer("sip:ann@example.com"))
	if err := b.Post(ctx, &bot.Event{Kind: bot.EventLeave, Session: c}); err == nil {
		t.Error("Post before Run: no error")
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	<-b.Ready()
	err = b.Post(ctx, &bot.Event{Kind: bot.EventLeave, Session: c, Room: "r2", Reason: bot.EndLeft})
	if !errors.Is(err, failed) {
		t.Errorf("Post returned %v, want the handler's error", err)
	}
	if got := c.Sent(); !slices.Equal(got, []string{"goodbye from r2"}) {
		t.Errorf("sent %q", got)
	}
	if got := rec.snapshot(); !slices.Equal(got, []string{"room.leave"}) {
		t.Errorf("handled %q", got)
	}
	if err := b.Post(ctx, &bot.Event{Kind: bot.EventJoin}); err == nil {
		t.Error("Post without a Session: no error")
	}
}
