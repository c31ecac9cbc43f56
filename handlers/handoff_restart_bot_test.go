package handlers

import (
	"strings"
	"testing"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/store/sqlite"
)

// serveUntil runs b with the chain of a helpdesk around ho until the returned stop is called
// (a graceful stop, as SIGTERM makes imbot do).
func serveUntil(t *testing.T, b *bot.Bot, ho *Handoff, db *sqlite.DB) (stop func()) {
	t.Helper()
	return serve(t, b, echo, []bot.Middleware{Transcript(db), ho.Middleware(), LogUnmatched(db)}, ho.Close)
}

// TestHandoffBotRestart: over real SIP, an accepted handoff survives a restart of the bot
// (stopped gracefully, then a new bot and a new Handoff on the same SQLite file and address).
// Both sides are told once that the conversation continues; the agent's line reaches the
// user, the user's line reaches the agent and not the bot, /done ends it, and the next
// handoff is #2.
func TestHandoffBotRestart(t *testing.T) {
	ctx := testCtx(t)
	f := newRestartFixture(t, ctx)
	db, b1 := f.db, f.b1
	alice, ann, carol := b1.verifiedPeer("alice"), b1.verifiedPeer("ann"), b1.peer("carol")
	f.closeAfter(t, alice, ann, carol)
	newHandoff := func(b *bot.Bot) *Handoff {
		ho, err := NewHandoff(HandoffConfig{
			Agents: []Agent{{URI: ann.URI(), Name: "Ann"}}, Dialer: b,
			Store: db, Transcript: db, Tickets: db, Ready: b.Ready(), Logger: discardLogger(),
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := ho.Restore(ctx); err != nil {
			t.Fatal(err)
		}
		return ho
	}

	ho1 := newHandoff(b1.Bot)
	stop1 := serveUntil(t, b1.Bot, ho1, db)
	t.Cleanup(stop1)
	send(t, ctx, alice, "I need a human")
	waitContains(t, ctx, ann, "#1 alice", "/accept 1")
	send(t, ctx, ann, "/accept")
	waitText(t, ctx, alice, "Ann is now with you.")
	stop1()

	b2 := f.second(t)
	ho2 := newHandoff(b2)
	t.Cleanup(serveUntil(t, b2, ho2, db))

	waitText(t, ctx, ann, "(The helpdesk restarted; your conversation #1 with alice continues.)")
	waitText(t, ctx, alice, "(The helpdesk restarted; your conversation #1 with Ann continues.)")
	send(t, ctx, ann, "welcome back")
	waitText(t, ctx, alice, "Ann: welcome back")
	send(t, ctx, alice, "my vpn works now")
	waitText(t, ctx, ann, "#1 alice: my vpn works now")
	send(t, ctx, ann, "/done")
	waitText(t, ctx, ann, "Conversation #1 with alice ended.")
	waitContains(t, ctx, alice, "Ann has left the conversation")
	send(t, ctx, alice, "hello bot")
	waitText(t, ctx, alice, "echo: hello bot")
	for _, txt := range alice.Texts() {
		if strings.HasPrefix(txt, "echo: my vpn") {
			t.Errorf("the bot answered the user's line to the agent: %q", txt)
		}
	}
	if un, _ := db.Unmatched(ctx, 0); len(un) != 0 {
		t.Errorf("lines stored as unmatched questions: %+v", un)
	}

	send(t, ctx, carol, "agent please")
	waitContains(t, ctx, ann, "#2 carol", "/accept 2")
}
