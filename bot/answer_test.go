package bot_test

import (
	"context"
	"slices"
	"testing"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
)

// wrapper is a Responder a middleware wraps, with the Unwrap method that lets the answer
// helpers reach the Responder underneath.
type wrapper struct{ bot.Responder }

func (w wrapper) Unwrap() bot.Responder { return w.Responder }

// opaque wraps a Responder without Unwrap: the record is out of reach.
type opaque struct{ bot.Responder }

func TestAnswerHelpers(t *testing.T) {
	rec := bottest.NewRecorder()
	var w bot.Responder = wrapper{wrapper{rec}}
	if !bot.RecordsAnswers(w) {
		t.Fatal("a wrapped Recorder does not record answers")
	}
	bot.SetAnswerer(w, "greet")
	bot.SetAnswerer(w, "")
	bot.SetAnswerer(rec, "echo")
	if got, want := bot.AnswerersOf(w), []string{"greet", "echo"}; !slices.Equal(got, want) {
		t.Errorf("AnswerersOf = %q, want %q", got, want)
	}
	if got := rec.Answerers(); !slices.Equal(got, []string{"greet", "echo"}) {
		t.Errorf("Recorder.Answerers = %q", got)
	}
	if bot.NoMatchOf(w) {
		t.Error("NoMatchOf before SetNoMatch")
	}
	bot.SetNoMatch(w)
	if !bot.NoMatchOf(w) || !rec.NoMatch() {
		t.Error("SetNoMatch not recorded")
	}

	o := opaque{bottest.NewRecorder()}
	bot.SetAnswerer(o, "lost")
	bot.SetNoMatch(o)
	if bot.RecordsAnswers(o) || bot.AnswerersOf(o) != nil || bot.NoMatchOf(o) {
		t.Error("a Responder that records nothing reports answers")
	}
	_ = o.Reply(context.Background(), "still replies")
}
