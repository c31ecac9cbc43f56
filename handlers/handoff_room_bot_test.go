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
// bot, new Rooms and Handoff on the same SQLite file). The user, alice, is not verified: the
// bot writes to her only once she writes again. The supervisor is told once that the
// conversation continues; the agent's line after the restart waits for alice (the agent is
// told: HandoffTexts.Held) and reaches her, with the handoff's notice and a line the old bot
// had recorded but not sent (as a crash leaves it), once she writes; lines flow between all
// three; /done ends the room.
func TestHandoffBotInviteRestart(t *testing.T) {
	ctx := testCtx(t)
	f := newRestartFixture(t, ctx)
	db, b1 := f.db, f.b1
	alice, ann, sam := b1.peer("alice"), b1.verifiedPeer("ann"), b1.verifiedPeer("sam")
	f.closeAfter(t, alice, ann, sam)
	serveBot := func(b *bot.Bot) (stop func()) {
		rooms, err := NewRooms(RoomsConfig{Bot: b, Store: db, Ready: b.Ready(), Transcript: db, Logger: discardLogger()})
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
	send(t, ctx, ann, "before the restart")
	waitText(t, ctx, alice, "Ann: before the restart")
	stop1()
	// What a crash between recording the agent's line and sending it leaves behind.
	if err := db.AddRoomDeliveries(ctx, []store.RoomDelivery{{
		Room: HandoffRoomID(1), Seq: 1000, To: alice.URI(), Text: "Ann: recorded, not sent", Answerer: AgentAnswerer("Ann"),
	}}); err != nil {
		t.Fatal(err)
	}

	b2 := f.second(t)
	stop2 := serveBot(b2)
	t.Cleanup(stop2)

	const resumedSam = "(The bot restarted; your conversation with alice, Ann continues.)"
	const resumedAlice = "(The helpdesk restarted; your conversation #1 with Ann continues.)"
	waitText(t, ctx, sam, resumedSam)
	waitText(t, ctx, ann, "(The helpdesk restarted; your conversation #1 with alice continues.)")
	send(t, ctx, ann, "welcome back")
	waitContains(t, ctx, ann, "#1 alice is not verified")
	waitText(t, ctx, sam, "Ann: welcome back")

	send(t, ctx, alice, "thanks both")
	waitText(t, ctx, alice, resumedAlice)
	waitText(t, ctx, alice, "Ann: recorded, not sent")
	waitText(t, ctx, alice, "Ann: welcome back")
	waitText(t, ctx, ann, "#1 alice: thanks both")
	waitText(t, ctx, sam, "alice: thanks both")
	send(t, ctx, sam, "still here")
	waitText(t, ctx, alice, "sam: still here")
	waitText(t, ctx, ann, "#1 sam: still here")
	send(t, ctx, ann, "/done")
	waitText(t, ctx, sam, "The conversation has ended.")
	waitContains(t, ctx, alice, "Ann has left the conversation")

	checkOnce(t, []textOnce{
		{sam, resumedSam}, {alice, resumedAlice}, {alice, "sam: hello from sam"}, {ann, "#1 sam: hello from sam"},
		{alice, "Ann: before the restart"}, {alice, "Ann: recorded, not sent"}, {alice, "Ann: welcome back"},
		{sam, "Ann: welcome back"}, {ann, "#1 alice: thanks both"},
	})
	for _, txt := range alice.Texts() {
		if strings.Contains(txt, "The bot restarted") {
			t.Errorf("the user got the room's notice besides the handoff's: %q", txt)
		}
	}
	stop2() // every delivery recorded
	key := b1.URI() + " " + alice.URI() + " unverified"
	tr, err := db.Transcript(ctx, key, 0)
	if err != nil {
		t.Fatal(err)
	}
	var agents []string
	for _, e := range tr {
		if e.Direction == store.Out && IsAgentAnswerer(e.Answerer) {
			agents = append(agents, e.Text)
		}
	}
	if want := []string{"Ann: before the restart", "Ann: recorded, not sent", "Ann: welcome back"}; !slices.Equal(agents, want) {
		t.Errorf("the agent's lines in alice's transcript: %q, want %q", agents, want)
	}
}

// TestHandoffRestoreOrphanRoom: a handoff's room that outlived its handoff (the last process
// ended the handoff and stopped before it closed the room) is closed when the Handoff is
// restored: its guest is told, and the store forgets it.
func TestHandoffRestoreOrphanRoom(t *testing.T) {
	ctx := testCtx(t)
	mem := &watchedStore{}
	b := newTestBot(t, bot.Config{Trust: loopbackProxy})
	ann, sam := b.verifiedPeer("ann"), b.verifiedPeer("sam")
	if err := mem.SaveRoom(ctx, store.Room{ID: HandoffRoomID(7), Participants: []store.RoomParticipant{
		{URI: "sip:alice@127.0.0.1", Name: "alice", Verified: true, Managed: true},
		{URI: ann.URI(), Name: "Ann", Verified: true, Managed: true},
		{URI: sam.URI(), Name: "sam", Verified: true},
	}}); err != nil {
		t.Fatal(err)
	}
	rooms, err := NewRooms(RoomsConfig{Bot: b.Bot, Store: mem, Ready: b.Ready(), Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer rooms.Close()
	ho, err := NewHandoff(HandoffConfig{
		Agents: []Agent{{URI: ann.URI(), Name: "Ann"}}, Dialer: b.Bot, Rooms: rooms, Store: mem,
		Ready: b.Ready(), Logger: discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ho.Close()
	if err := rooms.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ho.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	b.run(echo, rooms.Middleware(), ho.Middleware())

	waitText(t, ctx, sam, "The conversation has ended.")
	mem.until(t, ctx, "the orphan room deleted", func() bool {
		rs, _ := mem.Rooms(ctx)
		return len(rs) == 0
	})
	send(t, ctx, sam, "hello")
	waitText(t, ctx, sam, "echo: hello")
}
