package handlers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/store"
)

// heldText is a message for a user that cannot be sent yet.
type heldText struct{ text, answerer string }

// toAgents is an action telling each of the agents as its text: texts[i] goes to as[i].
func (h *Handoff) toAgents(as []*agentState, texts []string) action {
	return func(ctx context.Context, s sink) {
		for i, a := range as {
			h.toAgent(ctx, s, a, texts[i])
		}
	}
}

// transcriptText is the conversation so far, for the agent: one line per message.
func (h *Handoff) transcriptText(ctx context.Context, ho *handoff) string {
	var entries []store.TranscriptEntry
	if h.cfg.Transcript != nil {
		var err error
		if entries, err = h.cfg.Transcript.Transcript(ctx, ho.userKey, h.cfg.TranscriptLines); err != nil {
			h.log.Warn("handoff: transcript not read", "handoff", ho.id, "err", err)
		}
	}
	if len(entries) == 0 {
		if ho.reason == "" {
			return ""
		}
		return "\n" + ho.name + ": " + ho.reason
	}
	var b strings.Builder
	for _, e := range entries {
		who := "bot"
		switch {
		case e.Direction == store.In:
			who = ho.name
		case e.Answerer == RoomAnswerer:
			fmt.Fprintf(&b, "\n%s", e.Text) // it names its author: a guest of the room
			continue
		case IsAgentAnswerer(e.Answerer):
			who = AgentAnswererName(e.Answerer)
			if strings.HasPrefix(e.Text, who+": ") {
				// Recorded as the user read it (FromAgent): it names the agent already.
				fmt.Fprintf(&b, "\n%s", e.Text)
				continue
			}
		}
		fmt.Fprintf(&b, "\n%s: %s", who, e.Text)
	}
	return b.String()
}

// toUser sends text to ho's user: through the user's Responder when the user's handler runs
// now, else recorded in the transcript and sent as a page-mode message to a verified user's
// address, or through an unverified user's conversation (never to the address it claims: a
// forged From must not make the bot write to someone else).
//
// After a restart an unverified user has no conversation yet: text is held until the user
// writes again, and toUser reports true.
func (h *Handoff) toUser(ctx context.Context, s sink, ho *handoff, text, answerer string) (held bool) {
	if s.isUser(ho.userKey) {
		if err := s.w.Reply(ctx, text); err != nil {
			h.log.Warn("handoff: message to user failed", "handoff", ho.id, "err", err)
		}
		return false
	}
	sent := time.Now() // the user may answer before the 200 comes back: time it at the start
	// Into the user's own conversation (an IM session stays one: the relay goes inside it,
	// not as a page-mode message beside it); a verified user whose conversation has ended
	// gets a new page-mode one.
	h.mu.Lock()
	c := ho.conv
	if c == nil && !ho.verified {
		ho.held = append(ho.held, heldText{text, answerer})
		h.mu.Unlock()
		h.log.Info("handoff: message to an unverified user held until the user writes again", "handoff", ho.id, "user", ho.userURI)
		return true
	}
	h.mu.Unlock()
	err := bot.ErrSessionEnded
	if c != nil {
		err = c.Send(ctx, text)
	}
	switch {
	case err == nil:
	case errors.Is(err, bot.ErrSessionEnded) && ho.verified:
		if _, err := h.cfg.Dialer.Send(ctx, ho.userURI, text); err != nil {
			h.log.Warn("handoff: message to user failed", "handoff", ho.id, "user", ho.userURI, "err", err)
			return false
		}
	case errors.Is(err, bot.ErrSessionEnded):
		h.log.Warn("handoff: message to an unverified user not sent: the conversation has ended", "handoff", ho.id, "user", ho.userURI)
		return false
	default:
		h.log.Warn("handoff: message to user failed", "handoff", ho.id, "user", ho.userURI, "err", err)
		return false
	}
	if h.cfg.Transcript != nil {
		appendEntry(ctx, h.cfg.Transcript, store.TranscriptEntry{
			SessionID: ho.userKey, Key: ho.userKey, Direction: store.Out, Peer: ho.userURI, Text: text,
			Time: sent, Answerer: answerer,
		})
	}
	return false
}

// toAgent sends text to agent a: through the agent's Responder when the agent's handler runs
// now, else as a page-mode message.
func (h *Handoff) toAgent(ctx context.Context, s sink, a *agentState, text string) {
	if s.isAgent(a) {
		if err := s.w.Reply(ctx, text); err != nil {
			h.log.Warn("handoff: message to agent failed", "agent", a.URI, "err", err)
		}
		return
	}
	if _, err := h.cfg.Dialer.Send(ctx, a.URI, text); err != nil {
		h.log.Warn("handoff: message to agent failed", "agent", a.URI, "err", err)
	}
}

// fromUser handles an event of a user whose conversation is handed off: the bot stays
// silent.
func (h *Handoff) fromUser(ctx context.Context, w bot.Responder, ev *bot.Event, c conv, ho *handoff, next bot.Handler) error {
	s := userSink(c.Key, w)
	if ev.Session != nil && ev.Kind != bot.EventSessionEnd {
		h.mu.Lock()
		ho.conv = ev.Session // the latest: a page-mode conversation starts again after an idle timeout
		held := ho.held
		ho.held = nil
		rm := ho.room
		h.mu.Unlock()
		for _, m := range held {
			h.toUser(ctx, s, ho, m.text, m.answerer)
		}
		if rm != nil {
			rm.seen(ctx, ho.userURI, ev.Session, w) // and the guests' lines that waited for the user
		}
	}
	switch ev.Kind {
	case bot.EventMessage:
		bot.SetAnswerer(w, "handoff")
		h.mu.Lock()
		if h.byID[ho.id] != ho {
			h.mu.Unlock()
			return next.Handle(ctx, w, ev) // it just ended
		}
		if !ho.accepted {
			ho.pending = append(ho.pending, Visible(ev.Text))
			h.mark(ho)
			h.mu.Unlock()
			h.flush(ctx)
			if h.triggered(ev.Text) {
				return w.Reply(ctx, h.texts.StillWaiting)
			}
			return nil
		}
		a := ho.agent
		h.mu.Unlock()
		if rm := h.roomOf(ho); rm != nil {
			h.userInRoom(ctx, rm, ho, a, Visible(ev.Text))
			return nil
		}
		h.toAgent(ctx, s, a, h.fill(h.texts.FromUser, ho, a.Name, "{text}", Visible(ev.Text)))
		return nil
	case bot.EventSessionEnd:
		if ev.Reason == bot.EndByPeer {
			h.mu.Lock()
			var acts []action
			if h.byID[ho.id] == ho {
				acts = append(acts, h.toAgents(h.told(ho, h.texts.UserLeft)))
				h.remove(ho)
				acts = append(acts, h.drain()...)
			}
			h.mu.Unlock()
			if len(acts) > 0 {
				h.observe("user_left")
				h.log.Info("handoff ended: the user left", "handoff", ho.id, "user", ho.userURI)
			}
			h.run(ctx, s, acts)
			h.closeRoom(ctx, ho)
		}
		return next.Handle(ctx, w, ev)
	}
	return nil // typing, session start, idle: the bot says nothing
}

// agentAnswererPrefix begins the answerer recorded with an agent's relayed messages.
const agentAnswererPrefix = "agent:"

// AgentAnswerer is the store.TranscriptEntry.Answerer recorded with the messages of the agent
// with this name relayed to a user: "agent:" and the name.
func AgentAnswerer(name string) string { return agentAnswererPrefix + name }

// IsAgentAnswerer reports whether answerer was recorded with an agent's relayed message
// (made by AgentAnswerer).
func IsAgentAnswerer(answerer string) bool { return strings.HasPrefix(answerer, agentAnswererPrefix) }

// AgentAnswererName is the agent's name in an answerer made by AgentAnswerer; "" for any
// other answerer.
func AgentAnswererName(answerer string) string {
	name, ok := strings.CutPrefix(answerer, agentAnswererPrefix)
	if !ok {
		return ""
	}
	return name
}
