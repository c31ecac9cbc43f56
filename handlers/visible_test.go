package handlers

import (
	"context"
	"testing"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/store"
)

func TestVisible(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text", "plain text"},
		{"two\nlines\tand a tab", "two\nlines\tand a tab"},
		{"nul\x00byte", "nul[U+0000]byte"},
		{"carriage\rreturn", "carriage[U+000D]return"},
		{"pay \u202eexe.txt", "pay [U+202E]exe.txt"},
		{"\u2066isolate\u2069", "[U+2066]isolate[U+2069]"},
		{"bell\x07 and c1 \u0085", "bell[U+0007] and c1 [U+0085]"},
		{"שלום and עברית", "שלום and עברית"}, // right-to-left text itself is fine
	}
	for _, tt := range tests {
		if got := Visible(tt.in); got != tt.want {
			t.Errorf("Visible(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// A user's NUL and bidi override reach the transcript marked.
func TestTranscriptMarksHiddenCharacters(t *testing.T) {
	mem := &store.Memory{}
	h := Transcript(mem)(bot.HandlerFunc(func(context.Context, bot.Responder, *bot.Event) error { return nil }))
	conv := bottest.NewConversation(bottest.WithPeer("sip:eve@example.com"))
	if err := h.Handle(context.Background(), bottest.NewRecorder(), conv.Event(bot.EventMessage, "a\x00b \u202egnp.exe")); err != nil {
		t.Fatal(err)
	}
	got, err := mem.Transcript(context.Background(), conv.Key(), 0)
	if err != nil || len(got) != 1 {
		t.Fatalf("transcript %v, %v", got, err)
	}
	if want := "a[U+0000]b [U+202E]gnp.exe"; got[0].Text != want {
		t.Errorf("stored %q, want %q", got[0].Text, want)
	}
}
