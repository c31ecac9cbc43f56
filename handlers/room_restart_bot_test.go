package handlers

import (
	"context"
	"testing"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/store"
)

// serveRooms runs b with rooms' middleware in front of h until the returned stop is called
// (a graceful stop, as SIGTERM makes imbot do).
func serveRooms(t *testing.T, b *bot.Bot, rooms *Rooms, h bot.Handler) (stop func()) {
	t.Helper()
	return serve(t, b, h, []bot.Middleware{rooms.Middleware()}, rooms.Close)
}

// roomOfThree has alice ask for a room (see roomHandler: ann invited in page mode, sam into
// an IM session) and says hello in it; it returns sam's session once both got the line.
func roomOfThree(t *testing.T, ctx context.Context, alice, ann, sam *bottest.Peer) *bottest.Session {
	t.Helper()
	send(t, ctx, alice, "room please")
	waitText(t, ctx, alice, "room ready")
	ss, err := sam.WaitSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	send(t, ctx, alice, "hello all")
	waitText(t, ctx, ann, "alice: hello all")
	if _, err := ss.WaitText(ctx, "alice: hello all"); err != nil {
		t.Fatal(err)
	}
	return ss
}

// TestRoomBotRestart: over real SIP, a room of three survives a restart of the bot (stopped
// gracefully, then a new bot and new Rooms on the same SQLite file and address). Every
// participant is told once that the conversation continues: the verified ones at once (sam,
// whose IM session the shutdown ended, in page mode), the unverified alice when she writes
// again. A line the old bot had recorded but not sent (as a crash between the two leaves it)
// is delivered once; nothing delivered before the restart comes again; lines flow both ways
// after it, and the room's join events are not repeated.
func TestRoomBotRestart(t *testing.T) {
	ctx := testCtx(t)
	f := newRestartFixture(t, ctx)
	db, b1 := f.db, f.b1
	alice, ann := b1.peer("alice"), b1.verifiedPeer("ann")
	sam := b1.peerWith(bottest.Options{User: "sam", AssertIdentity: true, AcceptSessions: true})
	f.closeAfter(t, alice, ann, sam)
	evs := &roomEvents{}
	newRooms := func(b *bot.Bot) *Rooms {
		rooms, err := NewRooms(RoomsConfig{Bot: b, Store: db, Ready: b.Ready(), Logger: discardLogger()})
		if err != nil {
			t.Fatal(err)
		}
		if err := rooms.Restore(ctx); err != nil {
			t.Fatal(err)
		}
		return rooms
	}
	rooms1 := newRooms(b1.Bot)
	stop1 := serveRooms(t, b1.Bot, rooms1, roomHandler(rooms1, evs, func(ctx context.Context, rm *Room) error {
		if err := rm.Invite(ctx, ann.URI(), InviteOptions{}); err != nil {
			return err
		}
		return rm.Invite(ctx, sam.URI(), InviteOptions{Session: true})
	}))
	t.Cleanup(stop1)

	ss := roomOfThree(t, ctx, alice, ann, sam)
	send(t, ctx, ann, "hi alice")
	waitText(t, ctx, alice, "ann: hi alice")
	if _, err := ss.WaitText(ctx, "ann: hi alice"); err != nil {
		t.Fatal(err)
	}
	stop1()
	<-ss.Ended() // the shutdown said BYE

	if ds, err := db.RoomDeliveries(ctx, "r1"); err != nil || len(ds) != 0 {
		t.Fatalf("deliveries left after a clean stop: %+v, %v", ds, err)
	}
	// What a crash between recording a line and sending it leaves behind.
	if err := db.AddRoomDeliveries(ctx, []store.RoomDelivery{{Room: "r1", Seq: 1000, To: ann.URI(), Text: "sam: recorded, not sent"}}); err != nil {
		t.Fatal(err)
	}

	b2 := f.second(t)
	rooms2 := newRooms(b2)
	stop2 := serveRooms(t, b2, rooms2, roomHandler(rooms2, evs, func(context.Context, *Room) error { return nil }))
	t.Cleanup(stop2)

	const resumedAnn = "(The bot restarted; your conversation with alice, sam continues.)"
	const resumedSam = "(The bot restarted; your conversation with alice, ann continues.)"
	const resumedAlice = "(The bot restarted; your conversation with ann, sam continues.)"
	waitText(t, ctx, ann, resumedAnn)
	waitText(t, ctx, ann, "sam: recorded, not sent")
	waitText(t, ctx, sam, resumedSam) // in page mode: its session ended with the old bot

	send(t, ctx, alice, "are you there?") // an unverified user: the bot writes to her once she writes
	waitText(t, ctx, alice, resumedAlice)
	waitText(t, ctx, ann, "alice: are you there?")
	waitText(t, ctx, sam, "alice: are you there?")
	send(t, ctx, ann, "yes, still here")
	waitText(t, ctx, alice, "ann: yes, still here")
	waitText(t, ctx, sam, "ann: yes, still here")
	send(t, ctx, sam, "me too")
	waitText(t, ctx, alice, "sam: me too")
	waitText(t, ctx, ann, "sam: me too")

	checkOnce(t, []textOnce{
		{ann, resumedAnn}, {sam, resumedSam}, {alice, resumedAlice},
		{ann, "alice: hello all"}, {alice, "ann: hi alice"}, {ann, "sam: recorded, not sent"},
		{sam, "alice: hello all"}, {sam, "ann: hi alice"}, // in its old session
		{ann, "alice: are you there?"}, {alice, "ann: yes, still here"},
	})
	for _, txt := range alice.Texts() {
		if txt == "echo: are you there?" {
			t.Errorf("the bot answered alice's line in the restored room")
		}
	}
	for _, p := range []*bottest.Peer{alice, ann, sam} {
		if n := evs.count("room.join r1 " + p.URI()); n != 1 {
			t.Errorf("%s joined %d times, want once", p.URI(), n)
		}
	}
	stop2() // the handlers finish: every delivery is recorded
	if ds, err := db.RoomDeliveries(ctx, "r1"); err != nil || len(ds) != 0 {
		t.Errorf("deliveries left once everything was delivered: %+v, %v", ds, err)
	}
	if rs, err := db.Rooms(ctx); err != nil || len(rs) != 1 || len(rs[0].Participants) != 3 {
		t.Errorf("stored rooms after the second stop: %+v, %v", rs, err)
	}
}
