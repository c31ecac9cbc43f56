package handlers

import (
	"slices"
	"strings"
	"testing"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/store"
)

// TestHandoffBotInvite: over real SIP, the agent of an accepted handoff invites a supervisor
// with /invite: the supervisor sees the conversation from then on (not what came before),
// the user's and the agent's lines reach it with their names, its lines reach the user and
// the agent (numbered for the agent), the bot answers none of them, and /done ends the room:
// the supervisor is told and talks to the bot again.
func TestHandoffBotInvite(t *testing.T) {
	ctx := testCtx(t)
	mem := &watchedStore{}
	b := newTestBot(t, bot.Config{Trust: loopbackProxy})
	alice, ann, sam := b.peer("alice"), b.verifiedPeer("ann"), b.verifiedPeer("sam")
	rooms, err := NewRooms(RoomsConfig{Bot: b.Bot, Transcript: mem, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer rooms.Close()
	ho, err := NewHandoff(HandoffConfig{
		Agents: []Agent{{URI: ann.URI(), Name: "Ann"}}, Dialer: b.Bot, Rooms: rooms,
		Transcript: mem, Logger: discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ho.Close()
	evs := &roomEvents{}
	b.run(roomHandler(rooms, evs, nil), Transcript(mem), rooms.Middleware(), ho.Middleware())

	send(t, ctx, alice, "I need a human")
	waitContains(t, ctx, ann, "#1 alice", "/accept 1")
	send(t, ctx, ann, "/accept")
	waitText(t, ctx, alice, "Ann is now with you.")
	send(t, ctx, alice, "before the supervisor")
	waitText(t, ctx, ann, "#1 alice: before the supervisor")

	send(t, ctx, ann, "/invite "+sam.URI())
	waitContains(t, ctx, sam, "Ann invited you to a conversation with alice, Ann.", "/leave")
	waitText(t, ctx, alice, "sam joined the conversation.")
	waitText(t, ctx, ann, "sam joined the conversation.")
	evs.until(t, ctx, "room.join handoff-1 "+sam.URI())
	send(t, ctx, ann, "/invite "+sam.URI())
	waitText(t, ctx, ann, "Could not invite "+sam.URI()+": they are in a conversation already.")

	send(t, ctx, alice, "my vpn is down")
	waitText(t, ctx, ann, "#1 alice: my vpn is down")
	waitText(t, ctx, sam, "alice: my vpn is down")
	send(t, ctx, ann, "try restarting it")
	waitText(t, ctx, alice, "Ann: try restarting it")
	waitText(t, ctx, sam, "Ann: try restarting it")
	send(t, ctx, sam, "I approve a new laptop")
	waitText(t, ctx, alice, "sam: I approve a new laptop")
	waitText(t, ctx, ann, "#1 sam: I approve a new laptop")

	// The user's transcript has the supervisor's line, as the user read it.
	key := b.URI() + " " + alice.URI() + " unverified"
	mem.until(t, ctx, "the supervisor's line in alice's transcript", func() bool {
		tr, _ := mem.Transcript(ctx, key, 0)
		return slices.ContainsFunc(tr, func(e store.TranscriptEntry) bool {
			return e.Direction == store.Out && e.Text == "sam: I approve a new laptop" && e.Answerer == RoomAnswerer
		})
	})

	send(t, ctx, ann, "/done")
	waitContains(t, ctx, alice, "Ann has left the conversation")
	waitText(t, ctx, sam, "The conversation has ended.")
	evs.until(t, ctx, "room.leave handoff-1 "+sam.URI()+" closed")
	if rm := rooms.Room(HandoffRoomID(1)); rm != nil {
		t.Errorf("the handoff's room is still open: %+v", rm.Participants())
	}
	send(t, ctx, sam, "hello bot")
	waitText(t, ctx, sam, "echo: hello bot")

	for _, txt := range sam.Texts() {
		if strings.Contains(txt, "before the supervisor") {
			t.Errorf("the supervisor got a line from before it joined: %q", txt)
		}
	}
	for _, p := range []*bottest.Peer{alice, ann, sam} {
		for _, txt := range p.Texts() {
			for _, line := range []string{"my vpn is down", "try restarting it", "I approve a new laptop"} {
				if txt == "echo: "+line {
					t.Errorf("the bot answered %s's line in the handoff: %q", p.URI(), txt)
				}
			}
		}
	}
}

// TestHandoffBotInviteRestart: a handoff with an invited supervisor survives a restart (new
// bot, new Rooms and Handoff on the same SQLite file): the supervisor is told once that the
// conversation continues, the user and the agent get the handoff's own notices, and lines
// flow between all three after it; /done then ends the room.
func TestHandoffBotInviteRestart(t *testing.T) {
	ctx := testCtx(t)
	f := newRestartFixture(t, ctx)
	db, b1 := f.db, f.b1
	alice, ann, sam := b1.verifiedPeer("alice"), b1.verifiedPeer("ann"), b1.verifiedPeer("sam")
	f.closeAfter(t, alice, ann, sam)
	serveBot := func(b *bot.Bot) (stop func()) {
		rooms, err := NewRooms(RoomsConfig{Bot: b, Store: db, Ready: b.Ready(), Logger: discardLogger()})
		if err != nil {
			t.Fatal(err)
		}
		ho, err := NewHandoff(HandoffConfig{
			Agents: []Agent{{URI: ann.URI(), Name: "Ann"}}, Dialer: b, Rooms: rooms,
			Store: db, Transcript: db, Ready: b.Ready(), Logger: discardLogger(),
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := rooms.Restore(ctx); err != nil {
			t.Fatal(err)
		}
		if err := ho.Restore(ctx); err != nil {
			t.Fatal(err)
		}
		return serve(t, b, echo, []bot.Middleware{Transcript(db), rooms.Middleware(), ho.Middleware()}, ho.Close, rooms.Close)
	}

	stop1 := serveBot(b1.Bot)
	t.Cleanup(stop1)
	send(t, ctx, alice, "I need a human")
	waitContains(t, ctx, ann, "#1 alice", "/accept 1")
	send(t, ctx, ann, "/accept")
	waitText(t, ctx, alice, "Ann is now with you.")
	send(t, ctx, ann, "/invite "+sam.URI())
	waitContains(t, ctx, sam, "Ann invited you")
	send(t, ctx, sam, "hello from sam")
	waitText(t, ctx, alice, "sam: hello from sam")
	waitText(t, ctx, ann, "#1 sam: hello from sam")
	stop1()

	b2 := f.second(t)
	t.Cleanup(serveBot(b2))

	const resumedSam = "(The bot restarted; your conversation with alice, Ann continues.)"
	waitText(t, ctx, sam, resumedSam)
	waitText(t, ctx, ann, "(The helpdesk restarted; your conversation #1 with alice continues.)")
	waitText(t, ctx, alice, "(The helpdesk restarted; your conversation #1 with Ann continues.)")
	send(t, ctx, sam, "still here")
	waitText(t, ctx, alice, "sam: still here")
	waitText(t, ctx, ann, "#1 sam: still here")
	send(t, ctx, alice, "thanks both")
	waitText(t, ctx, ann, "#1 alice: thanks both")
	waitText(t, ctx, sam, "alice: thanks both")
	send(t, ctx, ann, "/done")
	waitText(t, ctx, sam, "The conversation has ended.")

	checkOnce(t, []textOnce{
		{sam, resumedSam}, {alice, "sam: hello from sam"}, {ann, "#1 sam: hello from sam"},
		{alice, "(The helpdesk restarted; your conversation #1 with Ann continues.)"},
	})
	for _, txt := range alice.Texts() {
		if strings.Contains(txt, "The bot restarted") {
			t.Errorf("the user got the room's notice besides the handoff's: %q", txt)
		}
	}
}
