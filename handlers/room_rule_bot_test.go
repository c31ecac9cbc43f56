package handlers

import (
	"testing"
	"testing/fstest"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/rules"
	"github.com/imbot-dev/imbot/store"
)

const inviteRules = `version: 1
vars: {supervisor: "sip:nobody@invalid"}
rules:
  - name: supervisor
    match: ["* supervisor*"]
    reply: "I am asking a supervisor to join us."
    invite: "{{ vars.supervisor }}"
  - name: fallback
    fallback: true
    reply: "Sorry?"
`

// TestRoomBotRuleInvite: over real SIP, a rule's `invite:` (rules.Options.Invite set to
// Rooms.InviteInto) brings a supervisor into the user's conversation: the user's next lines
// go to the supervisor, not to the rules, and the supervisor's lines come back to the user.
func TestRoomBotRuleInvite(t *testing.T) {
	ctx := testCtx(t)
	b := newTestBot(t, bot.Config{Trust: loopbackProxy})
	alice, sam := b.peer("alice"), b.verifiedPeer("sam")
	rooms, err := NewRooms(RoomsConfig{Bot: b.Bot, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer rooms.Close()
	e, err := rules.New(rules.Options{
		FS: fstest.MapFS{"rules.yaml": {Data: []byte(inviteRules)}}, Store: &store.Memory{}, Logger: discardLogger(),
		Vars: map[string]any{"supervisor": sam.URI()}, Invite: rooms.InviteInto,
	}, "rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b.run(echo, rooms.Middleware(), e.Middleware())

	send(t, ctx, alice, "can I talk to a supervisor")
	waitText(t, ctx, alice, "I am asking a supervisor to join us.")
	waitContains(t, ctx, sam, "alice invited you to a conversation with alice.")
	waitText(t, ctx, alice, "sam joined the conversation.")
	send(t, ctx, alice, "my laptop was stolen")
	waitText(t, ctx, sam, "alice: my laptop was stolen")
	send(t, ctx, sam, "I will order a new one")
	waitText(t, ctx, alice, "sam: I will order a new one")
	for _, txt := range alice.Texts() {
		if txt == "Sorry?" {
			t.Errorf("the rules answered alice's line in the room")
		}
	}
	if rs := rooms.List(); len(rs) != 1 || len(rs[0].Participants()) != 2 {
		t.Errorf("rooms: %d", len(rs))
	}
}
