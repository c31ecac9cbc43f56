package handlers

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/imbot-dev/imbot/store"
)

// place offers ho to the first free agent that has not refused it (with Broadcast: to every
// such agent not holding it yet), queues it when every such agent is busy, or gives up when
// every agent refused. The caller holds h.mu.
func (h *Handoff) place(ho *handoff) []action {
	if h.byID[ho.id] != ho || ho.accepted || (!h.cfg.Broadcast && len(ho.offered) > 0) {
		return nil
	}
	h.mark(ho)
	var acts []action
	if h.cfg.Broadcast {
		for _, a := range h.agents {
			if !ho.tried[a] && a.load() < a.Max && !slices.Contains(ho.offered, a) {
				acts = append(acts, h.offerTo(ho, a))
			}
		}
	} else if a := h.nextAgent(ho, nil); a != nil {
		acts = append(acts, h.offerTo(ho, a))
	}
	if len(ho.offered) > 0 {
		return acts
	}
	if slices.ContainsFunc(h.agents, func(a *agentState) bool { return !ho.tried[a] }) {
		if !ho.queued {
			ho.queued = true
			h.queue = append(h.queue, ho)
		}
		return nil
	}
	h.remove(ho)
	return []action{h.failAction(ho, "unavailable")}
}

// nextAgent returns the free agent ho goes to next, other than except, or nil when there is
// none: of the agents that neither refused it nor hold it, one that never had it (the first
// in configuration order), else the one whose offer lapsed longest ago. The caller holds h.mu.
func (h *Handoff) nextAgent(ho *handoff, except *agentState) *agentState {
	var best *agentState
	bestRank := 0
	for _, a := range h.agents {
		if a == except || ho.tried[a] || a.load() >= a.Max || slices.Contains(ho.offered, a) {
			continue
		}
		if rank := slices.Index(ho.lapsed, a); best == nil || rank < bestRank {
			best, bestRank = a, rank
		}
	}
	return best
}

// offerTo offers ho to agent a, which is free. The caller holds h.mu.
func (h *Handoff) offerTo(ho *handoff, a *agentState) action {
	h.unqueue(ho)
	h.mark(ho)
	ho.offered = append(ho.offered, a)
	a.offers = append(a.offers, ho)
	if !h.cfg.Broadcast {
		h.armOffer(ho, h.cfg.OfferTimeout)
	}
	h.log.Info("handoff offered", "handoff", ho.id, "user", ho.userURI, "agent", a.URI)
	return h.offerAction(ho, a)
}

// withdraw takes the offer ho back from agent a. The caller holds h.mu.
func (h *Handoff) withdraw(ho *handoff, a *agentState) {
	h.mark(ho)
	a.offers = slices.DeleteFunc(a.offers, func(x *handoff) bool { return x == ho })
	ho.offered = slices.DeleteFunc(ho.offered, func(x *agentState) bool { return x == a })
	if len(ho.offered) == 0 {
		h.stopOffer(ho)
	}
}

// armOffer starts ho's offer timer to fire after d, unless offers do not move on. The caller
// holds h.mu.
func (h *Handoff) armOffer(ho *handoff, d time.Duration) {
	h.stopOffer(ho)
	if h.cfg.OfferTimeout < 0 || h.cfg.Broadcast {
		return
	}
	gen := ho.offerGen
	ho.offerDeadline = time.Now().Add(d)
	ho.offerTimer = h.afterFunc(d, func() { h.escalate(ho, gen) })
}

// stopOffer stops ho's offer timer; one that fired already finds it stale. The caller holds
// h.mu.
func (h *Handoff) stopOffer(ho *handoff) {
	if ho.offerTimer != nil {
		ho.offerTimer.Stop()
		ho.offerTimer = nil
	}
	ho.offerDeadline = time.Time{}
	ho.offerGen++
}

// escalate runs when the agent holding the offer ho did not accept it within OfferTimeout
// (gen is the timer's generation): the offer moves on to the next free agent, or stays
// where it is, to be looked at again after OfferTimeout, when no other agent is free.
func (h *Handoff) escalate(ho *handoff, gen int) {
	h.mu.Lock()
	if h.closed || h.byID[ho.id] != ho || ho.accepted || ho.offerGen != gen || len(ho.offered) != 1 {
		h.mu.Unlock()
		return
	}
	from := ho.offered[0]
	to := h.nextAgent(ho, from)
	if to == nil {
		h.armOffer(ho, h.cfg.OfferTimeout)
		h.mark(ho)
		h.mu.Unlock()
		h.background(nil)
		return
	}
	h.withdraw(ho, from)
	ho.lapsed = append(slices.DeleteFunc(ho.lapsed, func(x *agentState) bool { return x == from }), from)
	from.addLost(ho)
	text := h.fill(h.texts.Reoffered, ho, from.Name)
	acts := []action{func(ctx context.Context, s sink) { h.toAgent(ctx, s, from, text) }, h.offerTo(ho, to)}
	acts = append(acts, h.drain()...)
	h.mu.Unlock()
	h.observe("escalated")
	h.log.Info("handoff offer moved on: not accepted in time", "handoff", ho.id, "from", from.URI, "to", to.URI)
	h.background(acts)
}

// background does acts outside any handler (after HandoffConfig.Ready), once the Store has
// the changes.
func (h *Handoff) background(acts []action) {
	if h.cfg.Ready != nil {
		select {
		case <-h.cfg.Ready:
		case <-h.ctx.Done():
		}
	}
	ctx, cancel := context.WithTimeout(h.ctx, time.Minute)
	defer cancel()
	h.run(ctx, sink{}, acts)
}

// drain offers waiting users to agents that became free (with Broadcast, the open offers
// too). The caller holds h.mu.
func (h *Handoff) drain() []action {
	waiting := slices.Clone(h.queue)
	if h.cfg.Broadcast {
		waiting = waiting[:0]
		for _, ho := range h.byID {
			if !ho.accepted {
				waiting = append(waiting, ho)
			}
		}
		slices.SortFunc(waiting, func(a, b *handoff) int { return a.id - b.id })
	}
	var acts []action
	for _, ho := range waiting {
		acts = append(acts, h.place(ho)...)
	}
	return acts
}

func (h *Handoff) unqueue(ho *handoff) {
	if ho.queued {
		ho.queued = false
		h.queue = slices.DeleteFunc(h.queue, func(x *handoff) bool { return x == ho })
	}
}

// remove forgets ho everywhere. The caller holds h.mu.
func (h *Handoff) remove(ho *handoff) {
	if h.byID[ho.id] != ho {
		return
	}
	h.mark(ho)
	delete(h.byID, ho.id)
	if h.byUser[ho.userKey] == ho {
		delete(h.byUser, ho.userKey)
	}
	if ho.timer != nil {
		ho.timer.Stop()
	}
	h.stopOffer(ho)
	h.unqueue(ho)
	for _, a := range ho.offered {
		a.offers = slices.DeleteFunc(a.offers, func(x *handoff) bool { return x == ho })
	}
	ho.offered = nil
	if a := ho.agent; a != nil {
		a.active = slices.DeleteFunc(a.active, func(x *handoff) bool { return x == ho })
		if a.current == ho {
			a.current = nil
			if n := len(a.active); n > 0 {
				a.current = a.active[n-1]
			}
		}
	}
}

// told returns ho's offer holders, or its agent once accepted, each with text filled in for
// it. The caller holds h.mu.
func (h *Handoff) told(ho *handoff, text string) ([]*agentState, []string) {
	as := slices.Clone(ho.offered)
	if ho.accepted {
		as = []*agentState{ho.agent}
	}
	texts := make([]string, len(as))
	for i, a := range as {
		texts[i] = h.fill(text, ho, a.Name)
	}
	return as, texts
}

// offerAction sends the offer to the agent; an agent that cannot be reached counts as one
// that passed.
func (h *Handoff) offerAction(ho *handoff, a *agentState) action {
	return func(ctx context.Context, s sink) {
		text := h.fill(h.texts.Offer, ho, a.Name, "{transcript}", h.transcriptText(ctx, ho))
		if _, err := h.cfg.Dialer.Send(ctx, a.URI, text); err != nil {
			h.log.Warn("handoff: agent unreachable", "handoff", ho.id, "agent", a.URI, "err", err)
			h.mu.Lock()
			var acts []action
			if h.byID[ho.id] == ho && slices.Contains(ho.offered, a) && !ho.accepted {
				h.withdraw(ho, a)
				ho.tried[a] = true
				acts = append(h.place(ho), h.drain()...)
			}
			h.mu.Unlock()
			h.run(ctx, s, acts)
		}
	}
}

// failAction tells the user nobody is available, with a ticket when there is a store.
func (h *Handoff) failAction(ho *handoff, outcome string) action {
	return func(ctx context.Context, s sink) {
		h.observe(outcome)
		text := h.fill(h.texts.NoAgentLater, ho, "")
		if h.cfg.Tickets != nil {
			summary := ho.reason
			if len(summary) > 200 {
				summary = summary[:200]
			}
			tk := store.Ticket{
				Key: ho.userKey, Peer: ho.userURI, Summary: "Asked for a person: " + summary, Urgency: "normal",
				Notes: "Opened by the bot: no agent answered (" + outcome + ")." + h.transcriptText(ctx, ho),
			}
			if !ho.verified {
				// The ticket belongs to nobody the bot knows: whoever later proves to be
				// this address must not find it among their tickets.
				tk.Peer = ""
				tk.Notes = "The user was not verified; it claimed to be " + ho.userURI + ".\n" + tk.Notes
			}
			n, err := h.cfg.Tickets.CreateTicket(ctx, tk)
			if err != nil {
				h.log.Error("handoff: ticket not created", "handoff", ho.id, "user", ho.userURI, "err", err)
			} else {
				text = h.fill(h.texts.NoAgent, ho, "", "{ticket}", strconv.FormatInt(n, 10))
			}
		}
		h.log.Info("handoff failed", "handoff", ho.id, "user", ho.userURI, "outcome", outcome)
		h.toUser(ctx, s, ho, text, "handoff")
	}
}

// timeout runs when no agent accepted ho in time.
func (h *Handoff) timeout(ho *handoff) {
	h.mu.Lock()
	if h.closed || h.byID[ho.id] != ho || ho.accepted {
		h.mu.Unlock()
		return
	}
	acts := []action{h.toAgents(h.told(ho, h.texts.Withdrawn))}
	h.remove(ho)
	acts = append(acts, h.failAction(ho, "timeout"))
	acts = append(acts, h.drain()...)
	h.mu.Unlock()
	h.background(acts)
}
