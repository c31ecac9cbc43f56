package handlers

import (
	"context"
	"errors"
	"testing"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/store"
)

type entryView struct {
	Dir      store.Direction
	Text     string
	Answerer string
}

func views(es []store.TranscriptEntry) []entryView {
	var out []entryView
	for _, e := range es {
		out = append(out, entryView{e.Direction, e.Text, e.Answerer})
	}
	return out
}

func TestTranscript(t *testing.T) {
	greeter := bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		switch ev.Kind {
		case bot.EventSessionStart:
			bot.SetAnswerer(w, "greet")
			return w.Reply(ctx, "Hello!")
		case bot.EventTyping:
			return w.Typing(ctx)
		}
		return echo(ctx, w, ev)
	})
	tests := []struct {
		name   string
		events []*bot.Event
		want   []entryView
	}{
		{"message and reply", []*bot.Event{msg("hi")}, []entryView{
			{store.In, "hi", ""}, {store.Out, "echo: hi", "echo"},
		}},
		// The message is timed when it is handled here (no Time): after the greeting.
		{"greeting on session start", []*bot.Event{{Kind: bot.EventSessionStart}, {Kind: bot.EventMessage, Text: "a"}}, []entryView{
			{store.Out, "Hello!", "greet"}, {store.In, "a", ""}, {store.Out, "echo: a", "echo"},
		}},
		{"typing is not recorded", []*bot.Event{{Kind: bot.EventTyping, Typing: true}}, nil},
		{"unanswered message recorded", []*bot.Event{msg("fail")}, []entryView{{store.In, "fail", ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := &store.Memory{}
			h := Transcript(mem)(greeter)
			for _, ev := range tt.events {
				_ = h.Handle(context.Background(), bottest.NewRecorder(), fromPeer("sip:alice@x", ev))
			}
			got, err := mem.Transcript(context.Background(), "sip:bot@test sip:alice@x", 0)
			if err != nil {
				t.Fatal(err)
			}
			if g := views(got); len(g) != len(tt.want) || (len(g) > 0 && !equalViews(g, tt.want)) {
				t.Fatalf("transcript = %+v, want %+v", g, tt.want)
			}
			for _, e := range got {
				if e.SessionID == "" || e.Peer != "sip:alice@x" || e.Time.IsZero() {
					t.Errorf("entry lacks session, peer or time: %+v", e)
				}
			}
		})
	}
}

func equalViews(a, b []entryView) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A reply that failed to go out is not recorded as sent.
func TestTranscriptFailedReply(t *testing.T) {
	mem := &store.Memory{}
	h := Transcript(mem)(echo)
	_ = h.Handle(context.Background(), &bottest.Recorder{Err: errors.New("network down")}, fromPeer("sip:alice@x", msg("hi")))
	got, _ := mem.Transcript(context.Background(), "sip:bot@test sip:alice@x", 0)
	if len(got) != 1 || got[0].Direction != store.In {
		t.Errorf("transcript = %+v, want only the message in", views(got))
	}
}

// TestTranscriptBot: through a real bot, with the session and key the runtime gives.
func TestTranscriptBot(t *testing.T) {
	mem := &watchedStore{}
	b := startBot(t, bot.Config{}, echo, Transcript(mem))
	p := b.peer("alice")
	ctx := testCtx(t)
	send(t, ctx, p, "hello")
	waitText(t, ctx, p, "echo: hello")
	if _, err := p.SendPageTyping(ctx, true); err != nil {
		t.Fatal(err)
	}
	send(t, ctx, p, "bye")
	waitText(t, ctx, p, "echo: bye")
	key := b.URI() + " " + p.URI()
	// The last reply is recorded right after it was sent.
	var got []store.TranscriptEntry
	mem.until(t, ctx, "4 transcript entries", func() bool {
		got, _ = mem.Transcript(ctx, key, 0)
		return len(got) >= 4
	})
	want := []entryView{{store.In, "hello", ""}, {store.Out, "echo: hello", "echo"}, {store.In, "bye", ""}, {store.Out, "echo: bye", "echo"}}
	if !equalViews(views(got), want) || len(got) != 4 {
		t.Fatalf("transcript of %q = %+v, want %+v", key, views(got), want)
	}
	if got[0].SessionID != key || got[0].Peer != p.URI() {
		t.Errorf("entry = %+v", got[0])
	}
}
