package rules_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/rules"
)

// TestMiddlewareRecordsAnswers: the engine records on the Responder the rules that answered
// and a message only the fallback answered, with no hook set.
func TestMiddlewareRecordsAnswers(t *testing.T) {
	e, err := rules.New(rules.Options{FS: rules.Demo}, rules.DemoFile)
	if err != nil {
		t.Fatal(err)
	}
	h := e.Middleware()(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conv := bottest.NewConversation()
	send := func(text string) *bottest.Recorder {
		t.Helper()
		w := bottest.NewRecorder()
		if err := h.Handle(ctx, w, &bot.Event{Kind: bot.EventMessage, Text: text, Time: time.Now(), Session: conv}); err != nil {
			t.Fatal(err)
		}
		return w
	}
	w := send("help")
	if !slices.Contains(w.Answerers(), "help") || w.NoMatch() {
		t.Errorf("help: answerers %q, no-match %v", w.Answerers(), w.NoMatch())
	}
	w = send("xyzzy plugh")
	if len(w.Answerers()) == 0 || !w.NoMatch() {
		t.Errorf("unmatched: answerers %q, no-match %v", w.Answerers(), w.NoMatch())
	}
}
