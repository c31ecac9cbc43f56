package bot_test

import (
	"context"
	"testing"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
)

func TestFullInboxAnswers503(t *testing.T) {
	release := make(chan struct{})
	rec := newRecorder()
	rec.before = func(ctx context.Context, w bot.Responder, ev *bot.Event) (bool, error) {
		if ev.Text == "m1" {
			<-release
		}
		return false, nil
	}
	r := startBot(t, bot.Config{InboxSize: 2}, rec)
	p := newPeer(t, r, "udp", bottest.Options{})
	ctx := testCtx(t)
	if _, err := p.SendPage(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "message:m1") // the worker holds m1: the inbox is empty again
	for _, text := range []string{"m2", "m3"} {
		res, err := p.SendPage(ctx, text)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("%s answered %v, %v; want 200", text, res, err)
		}
	}
	res, err := p.SendPage(ctx, "m4")
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 503 || res.GetHeader("Retry-After") == nil {
		t.Fatalf("m4 to a full inbox answered %d (Retry-After %v), want 503 with Retry-After", res.StatusCode, res.GetHeader("Retry-After"))
	}
	close(release)
	// Every message answered 200 is handled, in order; the refused one is not.
	for _, text := range []string{"m1", "m2", "m3"} {
		if _, err := p.WaitText(ctx, "echo: "+text); err != nil {
			t.Fatal(err)
		}
	}
	if got := p.Texts(); len(got) != 3 || got[2] != "echo: m3" {
		t.Errorf("replies %q", got)
	}
}

func TestShutdownFinishesWorkThenSaysBye(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	rec := newRecorder()
	rec.before = func(ctx context.Context, w bot.Responder, ev *bot.Event) (bool, error) {
		if ev.Text == "slow" {
			close(started)
			<-release
		}
		return false, nil
	}
	r := startBot(t, bot.Config{}, rec)
	p := newPeer(t, r, "tcp", bottest.Options{})
	ctx := testCtx(t)
	s, err := p.OpenSession(ctx, bottest.DialectMS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(ctx, "slow"); err != nil {
		t.Fatal(err)
	}
	<-started
	stopped := make(chan error, 1)
	go func() { stopped <- r.stop(t) }()
	// While shutting down, new conversations are turned away.
	other := newPeer(t, r, "tcp", bottest.Options{User: "bob"})
	for {
		res, err := other.SendPage(ctx, "hello?")
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode == 503 {
			if res.GetHeader("Retry-After") == nil {
				t.Error("503 without Retry-After")
			}
			break
		}
		// The bot had not noticed the cancellation yet: that message is handled; try again.
		if _, err := other.WaitText(ctx, "echo: hello?"); err != nil {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			t.Fatal("the bot never started refusing new messages")
		}
	}
	close(release)
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("Run did not return")
	}
	recs := s.Records()
	if len(recs) < 2 || recs[len(recs)-2].Text != "echo: slow" || recs[len(recs)-1].Kind != bottest.KindBye {
		t.Errorf("want the in-flight reply, then BYE; got %v", recs)
	}
	rec.waitFor(t, "session.end:shutdown")
}
