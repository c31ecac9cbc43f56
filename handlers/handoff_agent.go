package handlers

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/imbot-dev/imbot/bot"
)

// unverifiedAgent answers an event of a sender that claims agent a's address without being
// Verified: a message gets the one answer UnverifiedAgent, and nothing goes further.
func (h *Handoff) unverifiedAgent(ctx context.Context, w bot.Responder, ev *bot.Event, c conv, a *agentState) error {
	if ev.Kind != bot.EventMessage {
		return nil
	}
	bot.SetAnswerer(w, "handoff")
	source := ""
	if req := ev.SIPRequest(); req != nil {
		source = req.Source()
	}
	h.log.Warn("handoff: an unverified sender claims an agent's address; refused",
		"agent", a.URI, "session", c.ID, "source", source)
	return w.Reply(ctx, strings.ReplaceAll(h.cfg.UnverifiedAgent, "{agent}", a.Name))
}

var addressed = regexp.MustCompile(`(?s)^#([0-9]+)\s+(.*)$`)

// fromAgent handles an event of agent a; it reports false when the event is not about a
// handoff, so the bot handles it as any other.
func (h *Handoff) fromAgent(ctx context.Context, w bot.Responder, ev *bot.Event, c conv, a *agentState) bool {
	s := agentSink(a, w)
	h.mu.Lock()
	busy := a.load() > 0
	h.mu.Unlock()
	if ev.Kind != bot.EventMessage {
		return busy // the agent's typing and session events are not the bot's business
	}
	text := strings.TrimSpace(ev.Text)
	if strings.HasPrefix(text, "/") {
		fields := strings.Fields(text)
		cmd, arg := strings.ToLower(fields[0]), 0
		if len(fields) > 1 {
			arg, _ = strconv.Atoi(strings.TrimPrefix(fields[1], "#"))
		}
		switch cmd {
		case "/accept":
			h.accept(ctx, s, a, arg, "")
		case "/pass":
			h.pass(ctx, s, a, arg)
		case strings.ToLower(h.cfg.DoneCommand):
			h.done(ctx, s, a, arg)
		case "/list":
			h.list(ctx, s, a)
		case "/invite":
			h.invite(ctx, s, a, fields[1:])
		default:
			if !busy {
				return false
			}
			h.toAgent(ctx, s, a, h.fill(h.texts.AgentHelp, &handoff{}, a.Name))
		}
		bot.SetAnswerer(w, "handoff")
		return true
	}
	h.mu.Lock()
	var target *handoff
	if m := addressed.FindStringSubmatch(text); m != nil {
		id, _ := strconv.Atoi(m[1])
		if ho := h.byID[id]; ho != nil && ho.agent == a && ho.accepted {
			target, text = ho, m[2]
			a.current = ho
		}
	}
	if target == nil {
		target = a.current
	}
	if target == nil && len(a.active) == 0 && len(a.offers) > 0 {
		h.mu.Unlock()
		h.accept(ctx, s, a, 0, text) // the first words of an agent accept the oldest offer
		bot.SetAnswerer(w, "handoff")
		return true
	}
	h.mu.Unlock()
	if target == nil {
		if !busy {
			return false
		}
		h.toAgent(ctx, s, a, h.fill(h.texts.AgentHelp, &handoff{}, a.Name))
		bot.SetAnswerer(w, "handoff")
		return true
	}
	bot.SetAnswerer(w, "handoff")
	h.relayToUser(ctx, s, target, a, text)
	return true
}

func (h *Handoff) relayToUser(ctx context.Context, s sink, ho *handoff, a *agentState, text string) {
	held := false
	if rm := h.roomOf(ho); rm != nil {
		held = h.relayInRoom(ctx, rm, ho, a, text)
	} else {
		held = h.toUser(ctx, s, ho, h.fill(h.texts.FromAgent, ho, a.Name, "{text}", text), AgentAnswerer(a.Name))
	}
	if held {
		h.toAgent(ctx, s, a, h.fill(h.texts.Held, ho, a.Name, "{text}", text))
	}
}

// accept gives agent a the offer id (0: the oldest) and relays first, if any.
func (h *Handoff) accept(ctx context.Context, s sink, a *agentState, id int, first string) {
	h.mu.Lock()
	ho := a.offer(id)
	if ho == nil {
		text := h.gone(a, id)
		h.mu.Unlock()
		h.toAgent(ctx, s, a, text)
		return
	}
	ho.timer.Stop()
	others := slices.DeleteFunc(slices.Clone(ho.offered), func(x *agentState) bool { return x == a })
	for _, o := range append(others, a) {
		h.withdraw(ho, o)
	}
	ho.accepted, ho.agent = true, a
	a.active = append(a.active, ho)
	a.current = ho
	a.lost = nil
	taken := make([]string, len(others))
	for i, o := range others {
		o.addLost(ho)
		taken[i] = h.fill(h.texts.Taken, ho, a.Name)
	}
	pending := ho.pending
	ho.pending = nil
	h.mark(ho)
	acts := h.drain() // the others are free again
	h.mu.Unlock()
	h.flush(ctx)
	h.openRoom(ctx, ho, a)

	h.observe("accepted")
	if wo, ok := h.cfg.Observer.(HandoffWaitObserver); ok {
		wo.ObserveHandoffWait(time.Since(ho.started))
	}
	h.log.Info("handoff accepted", "handoff", ho.id, "user", ho.userURI, "agent", a.URI)
	h.toAgents(others, taken)(ctx, s)
	defer h.run(ctx, s, acts)
	h.toAgent(ctx, s, a, h.fill(h.texts.AgentConnected, ho, a.Name))
	for _, p := range pending {
		h.toAgent(ctx, s, a, h.fill(h.texts.FromUser, ho, a.Name, "{text}", p))
	}
	h.toUser(ctx, s, ho, h.fill(h.texts.Connected, ho, a.Name), "handoff")
	if first != "" {
		h.relayToUser(ctx, s, ho, a, first)
	}
}

// offer returns agent a's offer number id, or its oldest when id is 0; nil when there is
// none. The caller holds h.mu.
func (a *agentState) offer(id int) *handoff {
	for _, o := range a.offers {
		if id == 0 || o.id == id {
			return o
		}
	}
	return nil
}

// gone is the answer to agent a accepting the offer id (0: the oldest) it does not hold: who
// took it, when a lost it lately, else that there is none. The caller holds h.mu.
func (h *Handoff) gone(a *agentState, id int) string {
	var ho *handoff
	for _, x := range slices.Backward(a.lost) {
		if id == 0 || x.id == id {
			ho = x
			break
		}
	}
	switch {
	case ho == nil:
		return "There is no conversation waiting for you" + idSuffix(id) + "."
	case ho.accepted && ho.agent != a:
		return h.fill(h.texts.Taken, ho, ho.agent.Name)
	case h.byID[ho.id] != ho:
		return h.fill(h.texts.Withdrawn, ho, a.Name)
	default:
		return h.fill(h.texts.Reoffered, ho, a.Name)
	}
}

func idSuffix(id int) string {
	if id == 0 {
		return ""
	}
	return " with number #" + strconv.Itoa(id)
}

// pass leaves the offer id (0: the oldest) of agent a to the next agent.
func (h *Handoff) pass(ctx context.Context, s sink, a *agentState, id int) {
	h.mu.Lock()
	ho := a.offer(id)
	if ho == nil {
		h.mu.Unlock()
		h.toAgent(ctx, s, a, "There is no conversation waiting for you"+idSuffix(id)+".")
		return
	}
	h.withdraw(ho, a)
	ho.tried[a] = true
	acts := append(h.place(ho), h.drain()...)
	h.mu.Unlock()
	h.flush(ctx)
	h.log.Info("handoff passed", "handoff", ho.id, "agent", a.URI)
	h.toAgent(ctx, s, a, "Passed #"+strconv.Itoa(ho.id)+".")
	h.run(ctx, s, acts)
}

// done ends the conversation id (0: the current one) of agent a.
func (h *Handoff) done(ctx context.Context, s sink, a *agentState, id int) {
	h.mu.Lock()
	ho := a.current
	if id != 0 {
		ho = nil
		for _, x := range a.active {
			if x.id == id {
				ho = x
			}
		}
	}
	if ho == nil {
		h.mu.Unlock()
		h.toAgent(ctx, s, a, "You have no open conversation"+idSuffix(id)+".")
		return
	}
	h.remove(ho)
	info := HandoffInfo{ID: ho.id, User: ho.userURI, UserKey: ho.userKey, Agent: a.URI, Accepted: true, Started: ho.started}
	h.ended[ho.userKey], h.last[ho.userKey] = info, info // stored until the user's next message, which may rate it
	acts := h.drain()
	h.mu.Unlock()
	h.flush(ctx)
	h.closeRoom(ctx, ho)

	h.observe("done")
	h.log.Info("handoff done", "handoff", ho.id, "user", ho.userURI, "agent", a.URI)
	h.toUser(ctx, s, ho, h.fill(h.texts.Ended, ho, a.Name), "handoff")
	h.toAgent(ctx, s, a, h.fill(h.texts.AgentEnded, ho, a.Name))
	h.run(ctx, s, acts)
}

// list tells agent a its conversations and offers.
func (h *Handoff) list(ctx context.Context, s sink, a *agentState) {
	h.mu.Lock()
	var b strings.Builder
	for _, ho := range a.active {
		mark := ""
		if ho == a.current {
			mark = " (current)"
		}
		fmt.Fprintf(&b, "\n#%d %s%s", ho.id, ho.name, mark)
	}
	for _, ho := range a.offers {
		fmt.Fprintf(&b, "\n#%d %s (waiting for you)", ho.id, ho.name)
	}
	h.mu.Unlock()
	if b.Len() == 0 {
		h.toAgent(ctx, s, a, "You have no conversations.")
		return
	}
	h.toAgent(ctx, s, a, "Your conversations:"+b.String())
}
