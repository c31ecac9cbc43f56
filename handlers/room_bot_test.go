package handlers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
)

// roomEvents records the EventJoin and EventLeave a handler at the end of the chain sees, as
// "room.join <room> <peer>" and "room.leave <room> <peer> <reason>".
type roomEvents struct {
	notifier
	mu   sync.Mutex
	seen []string
}

func (e *roomEvents) add(s string) {
	e.mu.Lock()
	e.seen = append(e.seen, s)
	e.mu.Unlock()
	e.signal()
}

func (e *roomEvents) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.seen)
}

// until waits until the event s was seen.
func (e *roomEvents) until(t *testing.T, ctx context.Context, s string) {
	t.Helper()
	waitFor(t, ctx, s, e.wait, func() bool { return slices.Contains(e.list(), s) })
}

// count is how many times s was seen.
func (e *roomEvents) count(s string) int {
	n := 0
	for _, x := range e.list() {
		if x == s {
			n++
		}
	}
	return n
}

// roomHandler is the end of a room test's chain: it records joins and leaves in evs, makes a
// room of the writer and the invitees when a message says "room please", and otherwise
// answers "echo: <text>".
func roomHandler(rooms *Rooms, evs *roomEvents, invite func(ctx context.Context, rm *Room) error) bot.Handler {
	return bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		switch ev.Kind {
		case bot.EventJoin:
			evs.add(fmt.Sprintf("room.join %s %s", ev.Room, ev.Session.Peer().URI))
			return nil
		case bot.EventLeave:
			evs.add(fmt.Sprintf("room.leave %s %s %s", ev.Room, ev.Session.Peer().URI, ev.Reason))
			return nil
		case bot.EventMessage:
		default:
			return nil
		}
		if ev.Text != "room please" {
			return w.Reply(ctx, "echo: "+ev.Text)
		}
		rm, err := rooms.Create(ctx, RoomOptions{ID: "r1"})
		if err != nil {
			return err
		}
		if err := rm.Join(ctx, ev.Session, ""); err != nil {
			return err
		}
		if err := invite(ctx, rm); err != nil {
			return err
		}
		return w.Reply(ctx, "room ready")
	})
}

// TestRoomBot: over real SIP on loopback, a room of three: alice (an unverified user in page
// mode, who asks for it), ann (verified, invited in page mode) and sam (invited into an IM
// session the bot opens). Every line reaches the two others with its author's name, in each
// one's own mode (sam's inside its session); the bot says nothing of its own; joins and
// leaves reach a handler in the chain; ann leaves with /leave, sam with a BYE, and once
// alice leaves too the room is gone and the bot answers alice again.
func TestRoomBot(t *testing.T) {
	ctx := testCtx(t)
	b := newTestBot(t, bot.Config{Trust: loopbackProxy})
	alice, ann := b.peer("alice"), b.verifiedPeer("ann")
	sam := b.peerWith(bottest.Options{User: "sam", AssertIdentity: true, AcceptSessions: true})
	rooms, err := NewRooms(RoomsConfig{Bot: b.Bot, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer rooms.Close()
	evs := &roomEvents{}
	b.run(roomHandler(rooms, evs, func(ctx context.Context, rm *Room) error {
		if err := rm.Invite(ctx, ann.URI(), InviteOptions{By: "alice"}); err != nil {
			return err
		}
		return rm.Invite(ctx, sam.URI(), InviteOptions{By: "alice", Session: true})
	}), rooms.Middleware())

	send(t, ctx, alice, "room please")
	waitText(t, ctx, alice, "room ready")
	waitContains(t, ctx, ann, "alice invited you to a conversation with alice.", "/leave")
	ss, err := sam.WaitSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ss.Wait(ctx, func(r bottest.Record) bool {
		return r.Kind == bottest.KindText && strings.Contains(r.Text, "invited you to a conversation with alice, ann.")
	}); err != nil {
		t.Fatalf("sam's invitation in its session: %v", err)
	}
	waitText(t, ctx, alice, "ann joined the conversation.")
	waitText(t, ctx, alice, "sam joined the conversation.")
	waitText(t, ctx, ann, "sam joined the conversation.")
	for _, p := range []*bottest.Peer{alice, ann, sam} {
		evs.until(t, ctx, "room.join r1 "+p.URI())
	}
	aliceKey := b.URI() + " " + alice.URI() + " unverified"
	if !rooms.Relaying(aliceKey) || !rooms.Relaying(b.URI()+" "+ann.URI()) || rooms.Relaying(b.URI()+" "+ann.URI()+" unverified") {
		t.Errorf("Relaying: alice %v, ann %v, someone claiming ann's address %v", rooms.Relaying(aliceKey),
			rooms.Relaying(b.URI()+" "+ann.URI()), rooms.Relaying(b.URI()+" "+ann.URI()+" unverified"))
	}
	if got := rooms.Room("r1").Participants(); len(got) != 3 || got[0].Name != "alice" || got[0].Verified ||
		got[1].Name != "ann" || !got[1].Verified || got[2].Name != "sam" {
		t.Errorf("participants: %+v", got)
	}

	send(t, ctx, alice, "hello all")
	waitText(t, ctx, ann, "alice: hello all")
	if _, err := ss.WaitText(ctx, "alice: hello all"); err != nil {
		t.Fatalf("sam, in its session: %v", err)
	}
	send(t, ctx, ann, "hi from ann")
	waitText(t, ctx, alice, "ann: hi from ann")
	if _, err := ss.WaitText(ctx, "ann: hi from ann"); err != nil {
		t.Fatalf("sam, in its session: %v", err)
	}
	if res, err := ss.Send(ctx, "sam here"); err != nil || res.StatusCode != 200 {
		t.Fatalf("sam's line: %v %v", res, err)
	}
	waitText(t, ctx, alice, "sam: sam here")
	waitText(t, ctx, ann, "sam: sam here")

	send(t, ctx, ann, "/leave")
	waitText(t, ctx, ann, "You left the conversation.")
	waitText(t, ctx, alice, "ann left the conversation.")
	if _, err := ss.WaitText(ctx, "ann left the conversation."); err != nil {
		t.Fatalf("sam, in its session: %v", err)
	}
	evs.until(t, ctx, "room.leave r1 "+ann.URI()+" left")
	send(t, ctx, ann, "back to the bot")
	waitText(t, ctx, ann, "echo: back to the bot")

	if err := ss.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, alice, "sam left the conversation.")
	evs.until(t, ctx, "room.leave r1 "+sam.URI()+" bye")

	send(t, ctx, alice, "/leave")
	waitText(t, ctx, alice, "You left the conversation.")
	evs.until(t, ctx, "room.leave r1 "+alice.URI()+" left")
	if rm := rooms.Room("r1"); rm != nil {
		t.Errorf("room r1 still open with %+v", rm.Participants())
	}
	send(t, ctx, alice, "anyone?")
	waitText(t, ctx, alice, "echo: anyone?")

	// The room relayed; the bot never answered a line written in it.
	for _, p := range []*bottest.Peer{alice, ann, sam} {
		for _, txt := range p.Texts() {
			for _, line := range []string{"hello all", "hi from ann", "sam here"} {
				if txt == "echo: "+line {
					t.Errorf("the bot answered %s's line in the room: %q", p.URI(), txt)
				}
			}
		}
	}
	for _, s := range []string{"room.join r1 " + alice.URI(), "room.leave r1 " + alice.URI() + " left"} {
		if n := evs.count(s); n != 1 {
			t.Errorf("%q seen %d times, want once", s, n)
		}
	}
}

// TestRoomBotSaySilent: a room made from Go outside any handler: the bot invites two people,
// speaks in the room with its name before the line, and a Silent room announces no joins.
func TestRoomBotSaySilent(t *testing.T) {
	ctx := testCtx(t)
	b := newTestBot(t, bot.Config{Trust: loopbackProxy})
	ann, bob := b.verifiedPeer("ann"), b.verifiedPeer("bob")
	rooms, err := NewRooms(RoomsConfig{Bot: b.Bot, BotName: "Helpdesk", Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer rooms.Close()
	evs := &roomEvents{}
	b.run(roomHandler(rooms, evs, nil), rooms.Middleware())

	rm, err := rooms.Create(ctx, RoomOptions{ID: "quiet", Silent: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*bottest.Peer{ann, bob} {
		if err := rm.Invite(ctx, p.URI(), InviteOptions{Name: strings.ToUpper(p.URI()[4:7])}); err != nil {
			t.Fatal(err)
		}
	}
	waitContains(t, ctx, ann, "Helpdesk invited you to a conversation with Helpdesk.")
	waitContains(t, ctx, bob, "Helpdesk invited you to a conversation with ANN.")
	if err := rm.Invite(ctx, ann.URI(), InviteOptions{}); !errors.Is(err, ErrInRoom) {
		t.Errorf("inviting ann twice: %v, want ErrInRoom", err)
	}
	if err := rm.Say(ctx, "Welcome, both of you."); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, ann, "Helpdesk: Welcome, both of you.")
	waitText(t, ctx, bob, "Helpdesk: Welcome, both of you.")
	send(t, ctx, ann, "psst")
	waitText(t, ctx, bob, "ANN: psst")
	for _, txt := range append(ann.Texts(), bob.Texts()...) {
		if strings.Contains(txt, "joined") {
			t.Errorf("a silent room announced a join: %q", txt)
		}
	}
	if err := rm.Close(ctx); err != nil {
		t.Fatal(err)
	}
	evs.until(t, ctx, "room.leave quiet "+ann.URI()+" closed")
	evs.until(t, ctx, "room.leave quiet "+bob.URI()+" closed")
	send(t, ctx, bob, "hello?")
	waitText(t, ctx, bob, "echo: hello?")
	for _, txt := range ann.Texts() {
		if txt == "The conversation has ended." {
			t.Errorf("a silent room said it closed")
		}
	}
}

// TestRoomBotIdle: with LeaveOnIdle, participants whose conversation with the bot ends idle
// leave the room (EventLeave with reason idle): alice in page mode, ann in the IM session the
// bot opened to invite her. The room closes with the last one.
func TestRoomBotIdle(t *testing.T) {
	ctx := testCtx(t)
	b := newTestBot(t, bot.Config{Trust: loopbackProxy, IdleTimeout: 300 * time.Millisecond})
	alice := b.peer("alice")
	ann := b.peerWith(bottest.Options{User: "ann", AssertIdentity: true, AcceptSessions: true})
	rooms, err := NewRooms(RoomsConfig{Bot: b.Bot, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer rooms.Close()
	evs := &roomEvents{}
	b.run(bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		if ev.Kind == bot.EventMessage && ev.Text == "room please" {
			rm, err := rooms.Create(ctx, RoomOptions{ID: "r1", LeaveOnIdle: true})
			if err != nil {
				return err
			}
			if err := rm.Join(ctx, ev.Session, "Alice"); err != nil {
				return err
			}
			return rm.Invite(ctx, ann.URI(), InviteOptions{Name: "Ann", Session: true})
		}
		return roomHandler(rooms, evs, nil).Handle(ctx, w, ev)
	}), rooms.Middleware())

	send(t, ctx, alice, "room please")
	waitText(t, ctx, alice, "Ann joined the conversation.")
	evs.until(t, ctx, "room.leave r1 "+alice.URI()+" idle")
	evs.until(t, ctx, "room.leave r1 "+ann.URI()+" idle")
	if rm := rooms.Room("r1"); rm != nil {
		t.Errorf("room r1 still open with %+v", rm.Participants())
	}
}

// TestRoomBotInviteFails: an invitation that cannot be carried out is an error and adds no
// one: not a SIP address, an IM session the invitee refuses (480), someone in the room or
// in another room already. The room goes on with those it has.
func TestRoomBotInviteFails(t *testing.T) {
	ctx := testCtx(t)
	b := newTestBot(t, bot.Config{Trust: loopbackProxy})
	ann, bob, cy := b.verifiedPeer("ann"), b.verifiedPeer("bob"), b.verifiedPeer("cy")
	rooms, err := NewRooms(RoomsConfig{Bot: b.Bot, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer rooms.Close()
	b.run(roomHandler(rooms, &roomEvents{}, nil), rooms.Middleware())

	rm, err := rooms.Create(ctx, RoomOptions{ID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := rooms.Create(ctx, RoomOptions{ID: "r2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := rm.Invite(ctx, ann.URI(), InviteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := other.Invite(ctx, cy.URI(), InviteOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		to   string
		opts InviteOptions
		is   error
	}{
		"not an address":  {to: "not an address"},
		"session refused": {to: bob.URI(), opts: InviteOptions{Session: true}}, // bob accepts no sessions: 480
		"in the room":     {to: ann.URI(), is: ErrInRoom},
		"in another room": {to: cy.URI(), is: ErrInRoom},
		"no user part":    {to: "sip:example.com"},
	} {
		t.Run(name, func(t *testing.T) {
			err := rm.Invite(ctx, tc.to, tc.opts)
			if err == nil || tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("Invite(%q) = %v, want an error (%v)", tc.to, err, tc.is)
			}
		})
	}
	if got := rm.Participants(); len(got) != 1 || got[0].URI != ann.URI() {
		t.Errorf("participants after the failed invitations: %+v", got)
	}
	send(t, ctx, bob, "still the bot's")
	waitText(t, ctx, bob, "echo: still the bot's")
}
