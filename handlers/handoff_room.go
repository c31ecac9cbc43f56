package handlers

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/imbot-dev/imbot/bot"
)

// HandoffRoomID is the ID of the room of handoff id (see HandoffConfig.Rooms).
func HandoffRoomID(id int) string { return "handoff-" + strconv.Itoa(id) }

// roomFormat is how the handoff's room writes a guest's line: "#id name: text" to the agent
// (HandoffTexts.FromGuest), "name: text" to everyone else.
func (h *Handoff) roomFormat(ho *handoff) func(from, to Participant, text string) string {
	return func(from, to Participant, text string) string {
		if to.Managed && to.URI != ho.userURI {
			return h.fill(h.texts.FromGuest, ho, "", "{guest}", from.Name, "{text}", text)
		}
		return h.cfg.Rooms.fill(h.cfg.Rooms.texts.Relay, from.Name, text)
	}
}

// openRoom makes the room of the handoff ho, accepted by agent a: the user and the agent,
// managed by the Handoff, and the silent bot. It does nothing without HandoffConfig.Rooms,
// and returns the room ho has when it has one already.
func (h *Handoff) openRoom(ctx context.Context, ho *handoff, a *agentState) *Room {
	rs := h.cfg.Rooms
	if rs == nil {
		return nil
	}
	h.mu.Lock()
	if ho.room != nil {
		rm := ho.room
		h.mu.Unlock()
		return rm
	}
	conv := ho.conv
	h.mu.Unlock()
	rm := rs.Room(HandoffRoomID(ho.id))
	if rm == nil {
		var err error
		if rm, err = rs.Create(ctx, RoomOptions{ID: HandoffRoomID(ho.id), Format: h.roomFormat(ho)}); err != nil {
			h.log.Warn("handoff: no room: /invite will not work", "handoff", ho.id, "err", err)
			return nil
		}
	}
	rm.SetFormat(h.roomFormat(ho))
	now := time.Now()
	for _, p := range []struct {
		p    Participant
		conv bot.Conversation
	}{
		{Participant{URI: ho.userURI, Name: ho.name, Verified: ho.verified, Key: ho.userKey, Joined: now}, conv},
		{Participant{URI: a.addr.String(), Name: a.Name, Verified: true, Joined: now}, nil},
	} {
		if rm.managed(p.p.URI) != nil {
			continue
		}
		if err := rm.addManaged(ctx, p.p, p.conv); err != nil {
			h.log.Warn("handoff: not in the room", "handoff", ho.id, "participant", p.p.URI, "err", err)
		}
	}
	h.mu.Lock()
	ho.room = rm
	h.mu.Unlock()
	return rm
}

// closeOrphanRooms closes the rooms of handoffs that are no longer open: the last process
// ended the handoff and stopped before it closed its room (a crash in between).
func (h *Handoff) closeOrphanRooms(ctx context.Context) {
	if h.cfg.Rooms == nil {
		return
	}
	for _, rm := range h.cfg.Rooms.List() {
		n, ok := strings.CutPrefix(rm.ID(), "handoff-")
		id, err := strconv.Atoi(n)
		if !ok || err != nil {
			continue
		}
		h.mu.Lock()
		ho := h.byID[id]
		h.mu.Unlock()
		if ho != nil && ho.accepted {
			continue
		}
		h.log.Info("handoff: closing the room of a handoff that ended", "handoff", id)
		if err := rm.Close(ctx); err != nil && !errors.Is(err, ErrRoomClosed) {
			h.log.Warn("handoff: room not closed", "handoff", id, "err", err)
		}
	}
}

// closeRoom closes the room of the handoff ho, which ended: its guests are told and leave.
func (h *Handoff) closeRoom(ctx context.Context, ho *handoff) {
	h.mu.Lock()
	rm := ho.room
	ho.room = nil
	h.mu.Unlock()
	if rm == nil {
		return
	}
	if err := rm.Close(ctx); err != nil && !errors.Is(err, ErrRoomClosed) {
		h.log.Warn("handoff: room not closed", "handoff", ho.id, "err", err)
	}
}

// roomOf returns the room of the handoff ho, or nil.
func (h *Handoff) roomOf(ho *handoff) *Room {
	h.mu.Lock()
	defer h.mu.Unlock()
	return ho.room
}

// relayInRoom relays a line of agent a through the room of ho: to the user as
// HandoffTexts.FromAgent (recorded in the user's transcript as the agent's), to the guests
// with the agent's name. It reports whether the user's line waits for the user to write
// again (an unverified user with no conversation, after a restart).
func (h *Handoff) relayInRoom(ctx context.Context, rm *Room, ho *handoff, a *agentState, text string) (held bool) {
	userText := h.fill(h.texts.FromAgent, ho, a.Name, "{text}", text)
	from := Participant{Name: a.Name}
	waiting := rm.relayManaged(ctx, a.addr.String(), func(to *member) (string, string) {
		if to.Managed && to.URI == ho.userURI {
			return userText, AgentAnswerer(a.Name)
		}
		return rm.line(from, to, text), ""
	})
	for _, p := range waiting {
		if p.URI == ho.userURI {
			return true
		}
	}
	return false
}

// userInRoom relays a line of the user of ho through its room: to agent a as
// HandoffTexts.FromUser, to the guests with the user's name.
func (h *Handoff) userInRoom(ctx context.Context, rm *Room, ho *handoff, a *agentState, text string) {
	agentText := h.fill(h.texts.FromUser, ho, a.Name, "{text}", text)
	from := Participant{Name: ho.name}
	rm.relayManaged(ctx, ho.userURI, func(to *member) (string, string) {
		if to.Managed {
			return agentText, ""
		}
		return rm.line(from, to, text), ""
	})
}

// invite brings the person at the address in args (after an optional #n) into agent a's
// current conversation (or conversation n): /invite sip:carol@example.com.
func (h *Handoff) invite(ctx context.Context, s sink, a *agentState, args []string) {
	h.mu.Lock()
	ho := a.current
	if len(args) > 1 && strings.HasPrefix(args[0], "#") {
		id, _ := strconv.Atoi(args[0][1:])
		ho = nil
		for _, x := range a.active {
			if x.id == id {
				ho = x
			}
		}
		args = args[1:]
	}
	h.mu.Unlock()
	switch {
	case h.cfg.Rooms == nil:
		h.toAgent(ctx, s, a, "Inviting is not set up on this bot.")
		return
	case len(args) != 1:
		h.toAgent(ctx, s, a, "Write /invite sip:name@domain to bring someone into your current conversation.")
		return
	case ho == nil:
		h.toAgent(ctx, s, a, "You have no open conversation to invite someone to.")
		return
	}
	rm := h.openRoom(ctx, ho, a)
	if rm == nil {
		h.toAgent(ctx, s, a, "Could not invite "+args[0]+": the conversation has no room.")
		return
	}
	if err := rm.Invite(ctx, args[0], InviteOptions{By: a.Name}); err != nil {
		h.log.Info("handoff: invitation failed", "handoff", ho.id, "agent", a.URI, "to", args[0], "err", err)
		h.toAgent(ctx, s, a, "Could not invite "+args[0]+": "+inviteFailure(err))
		return
	}
	h.log.Info("handoff: guest invited", "handoff", ho.id, "agent", a.URI, "guest", args[0])
}

// inviteFailure says why an invitation failed, for the agent.
func inviteFailure(err error) string {
	switch {
	case errors.Is(err, ErrInRoom):
		return "they are in a conversation already."
	case errors.Is(err, ErrRoomClosed):
		return "the conversation has ended."
	}
	return err.Error()
}
