package handlers

import (
	"testing"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
)

// TestHandoffBotBroadcast: over SIP, with offers to every free agent at once, both agents
// get the offer; the first /accept wins, the other is told who took it, and its late
// /accept says so; the user talks with the winner.
func TestHandoffBotBroadcast(t *testing.T) {
	ctx := testCtx(t)
	b := newTestBot(t, bot.Config{Trust: loopbackProxy})
	alice, ann, bob := b.peer("alice"), b.verifiedPeer("ann"), b.verifiedPeer("bob")
	ho, err := NewHandoff(HandoffConfig{
		Agents:    []Agent{{URI: ann.URI(), Name: "Ann"}, {URI: bob.URI(), Name: "Bob"}},
		Broadcast: true, Dialer: b.Bot, Logger: discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ho.Close()
	b.run(echo, ho.Middleware())

	send(t, ctx, alice, "agent please")
	waitContains(t, ctx, ann, "#1 alice", "/accept 1")
	waitContains(t, ctx, bob, "#1 alice", "/accept 1")
	send(t, ctx, bob, "/accept 1")
	waitContains(t, ctx, bob, "You are now talking with alice (#1)")
	waitText(t, ctx, alice, "Bob is now with you.")
	waitText(t, ctx, ann, "#1 alice was taken by Bob.")
	send(t, ctx, ann, "/accept 1")
	send(t, ctx, alice, "hi Bob")
	waitText(t, ctx, bob, "#1 alice: hi Bob")
	// The answer to her late /accept: the same text a second time.
	if _, err := ann.Wait(ctx, func(bottest.Record) bool { return countText(ann.Texts(), "#1 alice was taken by Bob.") >= 2 }); err != nil {
		t.Fatalf("Ann's late /accept: %v; her texts %q", err, ann.Texts())
	}
	for _, txt := range ann.Texts() {
		if txt == "#1 alice: hi Bob" {
			t.Errorf("the agent who lost the offer got the user's words: %q", txt)
		}
	}
}

// countText counts the texts equal to want.
func countText(texts []string, want string) int {
	n := 0
	for _, t := range texts {
		if t == want {
			n++
		}
	}
	return n
}
