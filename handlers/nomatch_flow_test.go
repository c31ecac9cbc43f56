package handlers

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/rules"
	"github.com/imbot-dev/imbot/store"
)

// flowRules have a flow whose state has a fallback of its own, and a global fallback.
const flowRules = `version: 1
rules:
  - name: ticket
    match: ["ticket"]
    reply: "What is the problem?"
    goto: ticket-summary
  - name: ticket-done
    state: ticket-summary
    match: ["done"]
    reply: "Ticket opened."
    goto: start
  - name: ticket-what
    state: ticket-summary
    fallback: true
    reply: "Describe it, or say done."
  - name: fallback
    fallback: true
    reply: "Sorry?"
`

// TestHandoffNoMatchOutsideFlows: the no-match trigger, fed by the rules engine (it records
// a no-match on the Responder), counts the messages only a fallback answered outside a flow: three
// answers of a flow state's fallback hand nobody over, three of the global fallback do.
func TestHandoffNoMatchOutsideFlows(t *testing.T) {
	ctx := testCtx(t)
	e, err := rules.New(rules.Options{
		FS: fstest.MapFS{"rules.yaml": {Data: []byte(flowRules)}}, Store: &store.Memory{}, Logger: discardLogger(),
	}, "rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b := newTestBot(t, bot.Config{Trust: loopbackProxy})
	alice, ann := b.peer("alice"), b.verifiedPeer("ann")
	ho, err := NewHandoff(HandoffConfig{
		Agents: []Agent{{URI: ann.URI(), Name: "Ann"}}, Dialer: b.Bot, Triggers: []string{}, NoMatchLimit: 3,
		Logger: discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ho.Close()
	b.run(echo, ho.Middleware(), e.Middleware())

	const searching = "Let me find a person to help you. Please wait a moment."
	steps := []struct{ text, reply string }{
		{"ticket", "What is the problem?"},
		{"the screen", "Describe it, or say done."},
		{"flickers", "Describe it, or say done."},
		{"all day", "Describe it, or say done."},
		{"done", "Ticket opened."},
		{"xyzzy", "Sorry?"},
		{"plugh", "Sorry?"},
	}
	for _, s := range steps {
		n := len(alice.Texts())
		send(t, ctx, alice, s.text)
		if _, err := alice.Wait(ctx, func(r bottest.Record) bool { return len(alice.Texts()) > n }); err != nil {
			t.Fatalf("%q: no answer: %v", s.text, err)
		}
		if got := alice.Texts()[n]; got != s.reply {
			t.Fatalf("%q answered %q, want %q", s.text, got, s.reply)
		}
	}
	if len(ho.List()) != 0 {
		t.Fatalf("handed over too early: %+v", ho.List())
	}
	send(t, ctx, alice, "frobnicate")
	waitText(t, ctx, alice, searching)
	waitContains(t, ctx, ann, "#1 alice")
	if n := strings.Count(strings.Join(alice.Texts(), "\n"), searching); n != 1 {
		t.Errorf("told %d times that a person is called: %q", n, alice.Texts())
	}
}
