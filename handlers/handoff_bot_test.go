package handlers

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/store"
)

// TestHandoffBot runs two handoffs at once over real SIP on loopback: two users, two agents
// holding one conversation each, messages relayed both ways, the bot silent meanwhile, and
// the bot back once the agents are done. The agents are verified as in a deployment: the
// bot trusts the proxy (127.0.0.1, where every peer writes from) and it asserts their
// identity; the users are not.
func TestHandoffBot(t *testing.T) {
	ctx := testCtx(t)
	mem := &watchedStore{}
	m := newMetrics(t)
	b := newTestBot(t, bot.Config{Trust: loopbackProxy})
	alice, carol := b.peer("alice"), b.peer("carol")
	ann, bob := b.verifiedPeer("ann"), b.verifiedPeer("bob")
	ho, err := NewHandoff(HandoffConfig{
		Agents:     []Agent{{URI: ann.URI(), Name: "Ann"}, {URI: bob.URI(), Name: "Bob"}},
		Dialer:     b.Bot,
		Transcript: mem, Tickets: mem, Observer: m,
		Logger: discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ho.Close()
	b.run(echo, m.Middleware(), Transcript(mem), ho.Middleware())

	send(t, ctx, alice, "hello")
	waitText(t, ctx, alice, "echo: hello")

	send(t, ctx, alice, "I need a human")
	waitContains(t, ctx, alice, "find a person")
	offer := waitContains(t, ctx, ann, "#1 alice ("+alice.URI()+", not verified)", "/accept 1")
	if !strings.Contains(offer, "alice: hello") || !strings.Contains(offer, "bot: echo: hello") {
		t.Errorf("offer lacks the transcript: %q", offer)
	}

	send(t, ctx, carol, "agent please")
	waitContains(t, ctx, bob, "#2 carol") // Ann is busy with an offer: Bob gets it

	send(t, ctx, ann, "/accept")
	waitContains(t, ctx, ann, "You are now talking with alice (#1)")
	waitText(t, ctx, alice, "Ann is now with you.")

	send(t, ctx, bob, "Hi Carol, Bob here")
	waitText(t, ctx, carol, "Bob is now with you.")
	waitText(t, ctx, carol, "Bob: Hi Carol, Bob here")

	send(t, ctx, alice, "my vpn is down")
	send(t, ctx, carol, "the printer jams")
	waitText(t, ctx, ann, "#1 alice: my vpn is down")
	waitText(t, ctx, bob, "#2 carol: the printer jams")

	send(t, ctx, ann, "try restarting it")
	waitText(t, ctx, alice, "Ann: try restarting it")

	// What the user writes reaches the agent over SIP with its hidden characters shown: a
	// bidi override cannot make "pay 1000" read as something else on the agent's screen,
	// nor a NUL cut the line.
	send(t, ctx, alice, "pay \u202e0001\u202c now\x00 ok")
	waitText(t, ctx, ann, "#1 alice: pay [U+202E]0001[U+202C] now[U+0000] ok")

	for _, p := range []struct {
		name  string
		texts []string
	}{{"alice", alice.Texts()}, {"carol", carol.Texts()}} {
		for _, txt := range p.texts {
			if strings.HasPrefix(txt, "echo: my vpn") || strings.HasPrefix(txt, "echo: the printer") {
				t.Errorf("the bot answered %s during the handoff: %q", p.name, txt)
			}
		}
	}
	for _, txt := range ann.Texts() {
		if strings.Contains(txt, "carol") {
			t.Errorf("Ann got Carol's conversation: %q", txt)
		}
	}

	send(t, ctx, ann, "/done")
	waitText(t, ctx, alice, "Ann has left the conversation. You are talking with the bot again.")
	waitText(t, ctx, ann, "Conversation #1 with alice ended.")
	send(t, ctx, alice, "back?")
	waitText(t, ctx, alice, "echo: back?")

	send(t, ctx, bob, "/done")
	waitContains(t, ctx, carol, "Bob has left")

	// The user's transcript tells the whole story, the agent's words marked as the agent's.
	key := b.URI() + " " + alice.URI() + " unverified"
	want := []entryView{
		{store.In, "hello", ""}, {store.Out, "echo: hello", "echo"},
		{store.In, "I need a human", ""}, {store.Out, "Let me find a person to help you. Please wait a moment.", "handoff"},
		{store.Out, "Ann is now with you.", "handoff"},
		{store.In, "my vpn is down", ""},
		{store.Out, "Ann: try restarting it", "agent:Ann"},
		{store.In, "pay [U+202E]0001[U+202C] now[U+0000] ok", ""}, // marked in the transcript too
		{store.Out, "Ann has left the conversation. You are talking with the bot again.", "handoff"},
		{store.In, "back?", ""}, {store.Out, "echo: back?", "echo"},
	}
	var got []store.TranscriptEntry
	mem.until(t, ctx, "alice's transcript", func() bool {
		got, _ = mem.Transcript(ctx, key, 0)
		return len(got) >= len(want)
	})
	if g := views(got); !equalViews(g, want) || len(g) != len(want) {
		t.Errorf("alice's transcript:\n got %+v\nwant %+v", g, want)
	}
	if n := len(ho.List()); n != 0 {
		t.Errorf("%d handoffs still open", n)
	}
}

// TestHandoffBotTimeout: nobody accepts in time; the user, verified, is told and a ticket is
// created in its name.
func TestHandoffBotTimeout(t *testing.T) {
	ctx := testCtx(t)
	mem := &watchedStore{}
	b := newTestBot(t, bot.Config{Trust: loopbackProxy})
	alice, ann := b.verifiedPeer("alice"), b.verifiedPeer("ann")
	ho, err := NewHandoff(HandoffConfig{
		Agents: []Agent{{URI: ann.URI()}}, Dialer: b.Bot, Tickets: mem, Transcript: mem,
		AnswerTimeout: 300 * time.Millisecond, Logger: discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ho.Close()
	b.run(echo, Transcript(mem), ho.Middleware())

	send(t, ctx, alice, "agent")
	waitContains(t, ctx, ann, "#1 alice")
	waitText(t, ctx, alice, "Sorry, nobody is available right now. I opened ticket #1001 for you; the helpdesk will get back to you.")
	waitText(t, ctx, ann, "#1 alice is no longer waiting.")
	tk, err := mem.Ticket(ctx, 1001)
	if err != nil || tk.Peer != alice.URI() {
		t.Errorf("ticket = %+v, %v", tk, err)
	}
	send(t, ctx, alice, "ok")
	waitText(t, ctx, alice, "echo: ok")
}

// TestHandoffBotOfferMovesOn: over SIP, the first agent lets the offer lapse; after
// OfferTimeout it goes to the second agent, the first being told, and the second takes the
// conversation; the first one's late /accept says who took it.
func TestHandoffBotOfferMovesOn(t *testing.T) {
	ctx := testCtx(t)
	b := newTestBot(t, bot.Config{Trust: loopbackProxy})
	alice, ann, bob := b.peer("alice"), b.verifiedPeer("ann"), b.verifiedPeer("bob")
	ho, err := NewHandoff(HandoffConfig{
		Agents: []Agent{{URI: ann.URI(), Name: "Ann"}, {URI: bob.URI(), Name: "Bob"}},
		Dialer: b.Bot, Logger: discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ho.Close()
	var clock manualClock
	clock.use(ho)
	b.run(echo, ho.Middleware())

	send(t, ctx, alice, "agent please")
	waitContains(t, ctx, ann, "#1 alice", "/accept 1")
	clock.fire() // OfferTimeout passes
	waitText(t, ctx, ann, "#1 alice waited too long for an answer and was offered to someone else.")
	waitContains(t, ctx, bob, "#1 alice", "/accept 1")
	send(t, ctx, bob, "/accept 1")
	waitContains(t, ctx, bob, "You are now talking with alice (#1)")
	waitText(t, ctx, alice, "Bob is now with you.")
	send(t, ctx, ann, "/accept 1")
	waitText(t, ctx, ann, "#1 alice was taken by Bob.")
	send(t, ctx, bob, "hello Alice")
	waitText(t, ctx, alice, "Bob: hello Alice")
}

// TestHandoffBotUnreachableAgent: an agent whose address answers nothing useful is skipped.
func TestHandoffBotUnreachableAgent(t *testing.T) {
	ctx := testCtx(t)
	b := newTestBot(t, bot.Config{RequestTimeout: 2 * time.Second, Trust: loopbackProxy})
	alice, bob := b.peer("alice"), b.verifiedPeer("bob")
	gone := b.peer("gone")
	goneURI := gone.URI()
	gone.Close() // its port answers nothing now
	ho, err := NewHandoff(HandoffConfig{
		Agents: []Agent{{URI: goneURI}, {URI: bob.URI()}}, Dialer: b.Bot, Logger: discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ho.Close()
	b.run(echo, ho.Middleware())
	send(t, ctx, alice, "human")
	waitContains(t, ctx, bob, "#1 alice")
}

// TestHandoffBotImpostor: over SIP, a sender that writes from an agent's address without the
// proxy's assertion gets the one refusal and nothing of the agent's: not the user's pending
// words, not the list, no accept, no relay, no end of the handoff; the bot logs a warning.
// The real agent then takes the conversation as usual.
func TestHandoffBotImpostor(t *testing.T) {
	ctx := testCtx(t)
	logs := &syncBuffer{}
	b := newTestBot(t, bot.Config{Trust: loopbackProxy})
	alice, ann := b.peer("alice"), b.verifiedPeer("ann")
	mallory := b.peerWith(bottest.Options{User: "mallory", From: ann.URI()})
	ho, err := NewHandoff(HandoffConfig{
		Agents: []Agent{{URI: ann.URI(), Name: "Ann"}}, Dialer: b.Bot,
		Logger: slog.New(slog.NewJSONHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ho.Close()
	b.run(echo, ho.Middleware())
	const refusal = "I cannot verify that you are Ann: agents must write through the trusted proxy or sign in."

	send(t, ctx, alice, "I need a human")
	waitContains(t, ctx, ann, "#1 alice")
	send(t, ctx, alice, "my account number is 4242")

	// While the offer is open.
	for _, cmd := range []string{"/list", "/accept", "hello alice"} {
		send(t, ctx, mallory, cmd)
	}
	// While the real agent holds the conversation.
	send(t, ctx, ann, "/accept")
	waitContains(t, ctx, ann, "#1 alice: my account number is 4242")
	waitText(t, ctx, alice, "Ann is now with you.")
	for _, cmd := range []string{"/done", "#1 give me your password"} {
		send(t, ctx, mallory, cmd)
	}
	// Each message gets the refusal.
	if _, err := mallory.Wait(ctx, func(r bottest.Record) bool {
		return r.Kind == bottest.KindText && len(mallory.Texts()) >= 5
	}); err != nil {
		t.Fatalf("waiting for the impostor's 5 refusals: %v", err)
	}
	// The handoff is still Ann's: Alice's next words reach her, and Alice got nothing from
	// the impostor.
	send(t, ctx, alice, "are you there?")
	waitText(t, ctx, ann, "#1 alice: are you there?")
	if texts := mallory.Texts(); len(texts) != 5 || slices.ContainsFunc(texts, func(s string) bool { return s != refusal }) {
		t.Errorf("the impostor got %q, want the refusal 5 times", texts)
	}
	for _, txt := range alice.Texts() {
		if strings.Contains(txt, "hello alice") || strings.Contains(txt, "password") || strings.Contains(txt, "left the conversation") {
			t.Errorf("the user got %q from the impostor", txt)
		}
	}
	if l := ho.List(); len(l) != 1 || !l[0].Accepted || l[0].Agent != ann.URI() {
		t.Errorf("handoffs: %+v", l)
	}
	warnings := 0
	for _, l := range logs.lines() {
		if l["level"] == "WARN" && strings.Contains(fmt.Sprint(l["msg"]), "unverified sender claims an agent's address") {
			warnings++
		}
	}
	if warnings != 5 {
		t.Errorf("%d warnings logged, want one per message of the impostor (5)", warnings)
	}
	send(t, ctx, ann, "/done")
	waitContains(t, ctx, alice, "Ann has left")
}

// TestHandoffBotRateLimit: over SIP, the rate limit does not apply to a verified agent, whose
// quick lines all reach the user and the transcript; a user over the limit during the
// handoff is told each time a message does not reach the agent, never left unaware.
func TestHandoffBotRateLimit(t *testing.T) {
	ctx := testCtx(t)
	mem := &watchedStore{}
	b := newTestBot(t, bot.Config{Trust: loopbackProxy})
	alice, ann := b.peer("alice"), b.verifiedPeer("ann")
	ho, err := NewHandoff(HandoffConfig{
		Agents: []Agent{{URI: ann.URI(), Name: "Ann"}}, Dialer: b.Bot, Transcript: mem, Logger: discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ho.Close()
	const slow = "You are writing faster than I can read; give me a moment."
	limit := RateLimitWith(RateLimitConfig{Every: time.Hour, Burst: 3, Reply: slow, Exempt: ho.IsAgent, Relayed: ho.Relaying})
	b.run(echo, limit, Transcript(mem), ho.Middleware())

	send(t, ctx, alice, "I need a human") // alice's first token
	waitContains(t, ctx, ann, "#1 alice")
	send(t, ctx, ann, "/accept")
	waitText(t, ctx, alice, "Ann is now with you.")

	// More lines than the burst, as fast as the agent can send them.
	var lines []string
	for i := range 8 {
		lines = append(lines, fmt.Sprintf("Ann: step %d", i+1))
		send(t, ctx, ann, fmt.Sprintf("step %d", i+1))
	}
	for _, l := range lines {
		waitText(t, ctx, alice, l)
	}
	if slices.Contains(ann.Texts(), slow) {
		t.Errorf("the agent was rate limited: %q", ann.Texts())
	}

	// Alice has two tokens left: two lines reach Ann, each of the next two gets the reply.
	for _, text := range []string{"one", "two", "three", "four"} {
		send(t, ctx, alice, text)
	}
	waitText(t, ctx, ann, "#1 alice: one")
	waitText(t, ctx, ann, "#1 alice: two")
	if _, err := alice.Wait(ctx, func(bottest.Record) bool {
		n := 0
		for _, txt := range alice.Texts() {
			if txt == slow {
				n++
			}
		}
		return n == 2
	}); err != nil {
		t.Fatalf("waiting for the user to be told twice that a message was not passed on: %v; got %q", err, alice.Texts())
	}

	// The transcript holds every line of the agent.
	key := b.URI() + " " + alice.URI() + " unverified"
	mem.until(t, ctx, "the agent's lines in the transcript", func() bool {
		got, _ := mem.Transcript(ctx, key, 0)
		n := 0
		for _, e := range got {
			if e.Answerer == "agent:Ann" {
				n++
			}
		}
		return n == len(lines)
	})
	for _, txt := range ann.Texts() {
		if strings.Contains(txt, "three") || strings.Contains(txt, "four") {
			t.Errorf("a refused message reached the agent: %q", txt)
		}
	}
}

// TestHandoffBotTranscriptNamesAgentOnce: the transcript an agent is offered names the agent
// of an earlier handoff once per line, as the user read it ("Bob: ..."), not twice.
func TestHandoffBotTranscriptNamesAgentOnce(t *testing.T) {
	ctx := testCtx(t)
	mem := &watchedStore{}
	b := newTestBot(t, bot.Config{Trust: loopbackProxy})
	alice, bob := b.peer("alice"), b.verifiedPeer("bob")
	ho, err := NewHandoff(HandoffConfig{
		Agents: []Agent{{URI: bob.URI(), Name: "Bob"}}, Dialer: b.Bot, Transcript: mem, Logger: discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ho.Close()
	b.run(echo, Transcript(mem), ho.Middleware())

	send(t, ctx, alice, "I need a human")
	waitContains(t, ctx, bob, "#1 alice")
	send(t, ctx, bob, "Hi, Bob here")
	waitText(t, ctx, alice, "Bob: Hi, Bob here")
	send(t, ctx, bob, "/done")
	waitContains(t, ctx, alice, "Bob has left")
	mem.until(t, ctx, "the end of the handoff in the transcript", func() bool {
		got, _ := mem.Transcript(ctx, b.URI()+" "+alice.URI()+" unverified", 0)
		return len(got) > 0 && strings.Contains(got[len(got)-1].Text, "Bob has left")
	})

	send(t, ctx, alice, "a human again please")
	offer := waitContains(t, ctx, bob, "#2 alice")
	if !strings.Contains(offer, "\nBob: Hi, Bob here") || strings.Contains(offer, "Bob: Bob:") {
		t.Errorf("the offer's transcript names the agent wrongly:\n%s", offer)
	}
}

// TestHandoffBotRatingNamesAgent: over SIP, a rating given after the agent ended the
// handoff (right away, or a message later as a survey does) records the agent and the
// handoff; one given in another user's conversation records neither.
func TestHandoffBotRatingNamesAgent(t *testing.T) {
	ctx := testCtx(t)
	mem := &watchedStore{}
	b := newTestBot(t, bot.Config{Trust: loopbackProxy})
	alice, bob := b.peer("alice"), b.verifiedPeer("bob")
	ho, err := NewHandoff(HandoffConfig{
		Agents: []Agent{{URI: bob.URI(), Name: "Bob"}}, Dialer: b.Bot, Logger: discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ho.Close()
	b.run(Rating(mem, 5, "Thanks!"), ho.Middleware())

	send(t, ctx, alice, "I need a human")
	waitContains(t, ctx, bob, "#1 alice")
	send(t, ctx, bob, "/accept")
	waitText(t, ctx, alice, "Bob is now with you.")
	send(t, ctx, bob, "/done")
	waitContains(t, ctx, alice, "Bob has left")
	send(t, ctx, alice, "4 quick")
	waitText(t, ctx, alice, "Thanks!")
	send(t, ctx, alice, "5 again")
	if _, err := alice.Wait(ctx, func(bottest.Record) bool { return len(alice.Texts()) >= 5 }); err != nil {
		t.Fatal(err)
	}
	carol := b.peer("carol")
	send(t, ctx, carol, "3 meh")
	waitText(t, ctx, carol, "Thanks!")
	got, err := mem.Ratings(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Score != 4 || got[0].Agent != bob.URI() || got[0].HandoffID != 1 ||
		got[1].Score != 5 || got[1].Agent != bob.URI() || got[1].HandoffID != 1 ||
		got[2].Score != 3 || got[2].Agent != "" || got[2].HandoffID != 0 {
		t.Errorf("ratings: %+v", got)
	}
}

// TestHandoffBotSessionUser: over SIP, a user in an IM session (Lync style) gets what the
// agent writes inside that session, as in-dialog MESSAGEs, not as page-mode messages beside
// it.
func TestHandoffBotSessionUser(t *testing.T) {
	ctx := testCtx(t)
	b := newTestBot(t, bot.Config{Trust: loopbackProxy})
	alice, bob := b.verifiedPeer("alice"), b.verifiedPeer("bob")
	ho, err := NewHandoff(HandoffConfig{
		Agents: []Agent{{URI: bob.URI(), Name: "Bob"}}, Dialer: b.Bot, Logger: discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ho.Close()
	b.run(echo, ho.Middleware())

	sess, err := alice.OpenSession(ctx, bottest.DialectMS)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := sess.Send(ctx, "I need a human"); err != nil || res.StatusCode != 200 {
		t.Fatalf("send in the session: %v %v", res, err)
	}
	waitContains(t, ctx, bob, "#1 alice")
	send(t, ctx, bob, "/accept")
	if _, err := sess.WaitText(ctx, "Bob is now with you."); err != nil {
		t.Fatal(err)
	}
	send(t, ctx, bob, "Hi, Bob here")
	if _, err := sess.WaitText(ctx, "Bob: Hi, Bob here"); err != nil {
		t.Fatal(err)
	}
	for _, r := range alice.Records() {
		if r.Kind == bottest.KindText && !r.InDialog {
			t.Errorf("a page-mode message reached the user in a session: %q", r.Text)
		}
	}
}
