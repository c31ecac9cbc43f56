package bottest_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/handlers"
)

func TestNewConversation(t *testing.T) {
	started := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	type want struct {
		id, key string
		mode    bot.Mode
		peer    bot.Peer
		turns   int
	}
	alice := bot.Peer{URI: "sip:alice@example.com", User: "alice", Domain: "example.com"}
	tests := []struct {
		name string
		opts []bottest.ConversationOption
		want want
	}{
		{"defaults", nil, want{
			id: "sip:bot@example.com sip:alice@example.com", key: "sip:bot@example.com sip:alice@example.com",
			mode: bot.ModePage, peer: alice,
		}},
		{"peer with a display name and parameters", []bottest.ConversationOption{
			bottest.WithPeer(`"Bob Smith" <sip:bob@example.org:5070;transport=tcp>`),
		}, want{
			id: "sip:bot@example.com sip:bob@example.org:5070", key: "sip:bot@example.com sip:bob@example.org:5070",
			mode: bot.ModePage,
			peer: bot.Peer{URI: "sip:bob@example.org:5070", User: "bob", Domain: "example.org", DisplayName: "Bob Smith"},
		}},
		{"peer without a scheme", []bottest.ConversationOption{bottest.WithPeer("carol@example.net")}, want{
			id: "sip:bot@example.com sip:carol@example.net", key: "sip:bot@example.com sip:carol@example.net",
			mode: bot.ModePage, peer: bot.Peer{URI: "sip:carol@example.net", User: "carol", Domain: "example.net"},
		}},
		{"verified, before WithPeer", []bottest.ConversationOption{bottest.Verified(), bottest.WithPeer("carol@example.net")}, want{
			id: "sip:bot@example.com sip:carol@example.net", key: "sip:bot@example.com sip:carol@example.net",
			mode: bot.ModePage, peer: bot.Peer{URI: "sip:carol@example.net", User: "carol", Domain: "example.net", Verified: true},
		}},
		{"verified default peer", []bottest.ConversationOption{bottest.Verified()}, want{
			id: "sip:bot@example.com sip:alice@example.com", key: "sip:bot@example.com sip:alice@example.com",
			mode: bot.ModePage, peer: bot.Peer{URI: alice.URI, User: alice.User, Domain: alice.Domain, Verified: true},
		}},
		{"session mode", []bottest.ConversationOption{bottest.WithMode(bot.ModeSession)}, want{
			id: "dialog sip:bot@example.com sip:alice@example.com", key: "sip:bot@example.com sip:alice@example.com",
			mode: bot.ModeSession, peer: alice,
		}},
		{"everything set", []bottest.ConversationOption{
			bottest.WithID("call-1"), bottest.WithKey("k"), bottest.WithMode(bot.ModeSession),
			bottest.WithStarted(started), bottest.WithTurns(4),
		}, want{id: "call-1", key: "k", mode: bot.ModeSession, peer: alice, turns: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := bottest.NewConversation(tt.opts...)
			got := want{id: c.ID(), key: c.Key(), mode: c.Mode(), peer: c.Peer(), turns: c.Turns()}
			if got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
			if c.Started().IsZero() {
				t.Error("Started is zero")
			}
		})
	}
	if got := bottest.NewConversation(bottest.WithStarted(started)).Started(); !got.Equal(started) {
		t.Errorf("Started = %v, want %v", got, started)
	}
}

func TestWithPeerPanicsOnBadAddress(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("WithPeer accepted an address with no host")
		}
	}()
	bottest.WithPeer("sip:")
}

func TestConversationEvent(t *testing.T) {
	c := bottest.NewConversation(bottest.WithTurns(2))
	start := c.Event(bot.EventSessionStart, "")
	msg := c.Event(bot.EventMessage, "hi")
	if start.Session != c || msg.Session != c || msg.Kind != bot.EventMessage || msg.Text != "hi" || msg.Time.IsZero() {
		t.Errorf("events: %+v, %+v", start, msg)
	}
	if msg.SIPRequest() != nil {
		t.Error("an event with no SIP has a SIP request")
	}
	if c.Turns() != 3 {
		t.Errorf("Turns = %d after one message, want 3", c.Turns())
	}
	select {
	case <-c.Done():
		t.Fatal("Done closed before the end")
	default:
	}
	end := c.Event(bot.EventSessionEnd, "")
	if end.Reason != bot.EndByPeer {
		t.Errorf("Reason = %q", end.Reason)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Done still open after EventSessionEnd")
	}
	if err := c.Send(context.Background(), "late"); !errors.Is(err, bot.ErrSessionEnded) {
		t.Errorf("Send after the end: %v", err)
	}
}

func TestNewEvent(t *testing.T) {
	ev := bottest.NewEvent(bot.EventMessage, "hello", bottest.WithPeer("sip:dave@example.com"))
	s := ev.Session
	if s == nil || s.Peer().User != "dave" || s.Turns() != 1 || ev.Text != "hello" {
		t.Fatalf("event %+v in %+v", ev, s)
	}
	if _, ok := s.(*bottest.Conversation); !ok {
		t.Errorf("Session is a %T", s)
	}
}

func TestConversationSend(t *testing.T) {
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	boom := errors.New("boom")
	tests := []struct {
		name    string
		ctx     context.Context
		err     error
		end     bool
		wantErr error
		sent    []string
	}{
		{"recorded", ctx, nil, false, nil, []string{"notice"}},
		{"failing", ctx, boom, false, boom, nil},
		{"ended", ctx, nil, true, bot.ErrSessionEnded, nil},
		{"context done", cancelled, nil, false, context.Canceled, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := bottest.NewConversation()
			c.Err = tt.err
			if tt.end {
				c.End()
				c.End() // twice is fine
			}
			if err := c.Send(tt.ctx, "notice"); !errors.Is(err, tt.wantErr) {
				t.Errorf("Send = %v, want %v", err, tt.wantErr)
			}
			if got := c.Sent(); !reflect.DeepEqual(got, tt.sent) {
				t.Errorf("Sent = %q, want %q", got, tt.sent)
			}
		})
	}
}

func TestZeroConversationEnds(t *testing.T) {
	var c bottest.Conversation
	done := c.Done()
	c.End()
	<-done
}

func TestRecorder(t *testing.T) {
	ctx := context.Background()
	w := bottest.NewRecorder()
	if w.Replies() != nil || w.Messages() != nil || w.Replied() != 0 || w.Typed() != 0 || w.Ended() {
		t.Fatal("a new Recorder has recorded something")
	}
	if err := w.Typing(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Reply(ctx, "one"); err != nil {
		t.Fatal(err)
	}
	if err := w.Reply(ctx, "two", bot.WithTyping(800*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	w.End()
	if got, want := w.Replies(), []string{"one", "two"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Replies = %q, want %q", got, want)
	}
	want := []bottest.Message{{Text: "one"}, {Text: "two", Typing: 800 * time.Millisecond}}
	if got := w.Messages(); !reflect.DeepEqual(got, want) {
		t.Errorf("Messages = %+v, want %+v", got, want)
	}
	if w.Replied() != 2 || w.Typed() != 1 || !w.Ended() {
		t.Errorf("Replied %d, Typed %d, Ended %v", w.Replied(), w.Typed(), w.Ended())
	}
}

func TestRecorderFails(t *testing.T) {
	boom := errors.New("network down")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		w    *bottest.Recorder
		ctx  context.Context
		want error
	}{
		{"Err set", &bottest.Recorder{Err: boom}, context.Background(), boom},
		{"context done", bottest.NewRecorder(), cancelled, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.w.Reply(tt.ctx, "hi"); !errors.Is(err, tt.want) {
				t.Errorf("Reply = %v, want %v", err, tt.want)
			}
			if tt.w.Replied() != 0 || tt.w.Replies() != nil {
				t.Errorf("a failed reply was recorded: %q", tt.w.Replies())
			}
		})
	}
}

// The kit is safe for concurrent use, as the Responder contract asks (run with -race).
func TestKitConcurrent(t *testing.T) {
	ctx := context.Background()
	c := bottest.NewConversation()
	w := bottest.NewRecorder()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			_ = w.Typing(ctx)
			_ = w.Reply(ctx, fmt.Sprint(i))
			_ = c.Send(ctx, fmt.Sprint(i))
			c.Event(bot.EventMessage, "m")
			_ = w.Replies()
		})
	}
	wg.Wait()
	if w.Replied() != 8 || w.Typed() != 8 || len(c.Sent()) != 8 || c.Turns() != 8 {
		t.Errorf("replied %d, typed %d, sent %d, turns %d", w.Replied(), w.Typed(), len(c.Sent()), c.Turns())
	}
}

// A real middleware of package handlers, unit-tested with no SIP: the rate limit counts per
// peer, answers the first message past the limit politely and the next ones with silence,
// and lets the other kinds of event through.
func TestRateLimitWithoutSIP(t *testing.T) {
	next := bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		if ev.Kind != bot.EventMessage {
			return nil
		}
		return w.Reply(ctx, "echo: "+ev.Text)
	})
	// One token an hour: nothing refills while the test runs.
	h := handlers.RateLimit(time.Hour, 2, "Slow down, please.")(next)
	alice := bottest.NewConversation(bottest.WithPeer("sip:alice@example.com"))
	bob := bottest.NewConversation(bottest.WithPeer("sip:bob@example.com"))
	steps := []struct {
		ev   *bot.Event
		want []string
	}{
		{alice.Event(bot.EventMessage, "1"), []string{"echo: 1"}},
		{alice.Event(bot.EventMessage, "2"), []string{"echo: 2"}},
		{alice.Event(bot.EventMessage, "3"), []string{"Slow down, please."}},
		{alice.Event(bot.EventMessage, "4"), nil},
		{alice.Event(bot.EventTyping, ""), nil},
		{bob.Event(bot.EventMessage, "hi"), []string{"echo: hi"}},
	}
	for i, st := range steps {
		w := bottest.NewRecorder()
		if err := h.Handle(context.Background(), w, st.ev); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := w.Replies(); !reflect.DeepEqual(got, st.want) {
			t.Errorf("step %d (%s %q from %s): replies %q, want %q", i, st.ev.Kind, st.ev.Text, st.ev.Session.Peer().User, got, st.want)
		}
	}
}
