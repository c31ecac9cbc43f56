package handlers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/imbot-dev/imbot/store"
)

// mark notes that ho changed, for the next flush. The caller holds h.mu.
func (h *Handoff) mark(ho *handoff) {
	if h.cfg.Store != nil {
		h.dirty[ho.id] = true
	}
}

// flush writes the handoffs changed since the last flush to the Store: the open ones as they
// are now, the ended ones deleted. Writes are serialised, each one taken as it is when
// written, so the Store never goes back to an older state.
func (h *Handoff) flush(ctx context.Context) {
	if h.cfg.Store == nil {
		return
	}
	h.pmu.Lock()
	defer h.pmu.Unlock()
	type write struct {
		id  int
		rec *store.Handoff // nil: delete
	}
	h.mu.Lock()
	ws := make([]write, 0, len(h.dirty))
	for id := range h.dirty {
		w := write{id: id}
		if ho := h.byID[id]; ho != nil {
			r := h.record(ho)
			w.rec = &r
		} else {
			w.rec = h.endedRecord(id)
		}
		ws = append(ws, w)
	}
	clear(h.dirty)
	h.mu.Unlock()
	if len(ws) == 0 {
		return
	}
	slices.SortFunc(ws, func(a, b write) int { return a.id - b.id })
	// The step happened: record it even when the event that caused it was cancelled.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	for _, w := range ws {
		var err error
		if w.rec == nil {
			err = h.cfg.Store.DeleteHandoff(ctx, int64(w.id))
		} else {
			err = h.cfg.Store.SaveHandoff(ctx, *w.rec)
		}
		if err != nil {
			h.log.Error("handoff: not written to the store: a restart would lose this step", "handoff", w.id, "err", err)
		}
	}
}

// endedRecord returns the handoff id as the Store keeps it while its agent has ended it and
// the user has yet to write (Handoff.ended), else nil. The caller holds h.mu.
func (h *Handoff) endedRecord(id int) *store.Handoff {
	for _, i := range h.ended {
		if i.ID == id {
			return &store.Handoff{ID: int64(id), UserKey: i.UserKey, UserURI: i.User, State: store.HandoffEnded,
				Agent: i.Agent, Started: i.Started}
		}
	}
	return nil
}

// record is ho as the Store keeps it. The caller holds h.mu.
func (h *Handoff) record(ho *handoff) store.Handoff {
	r := store.Handoff{
		ID: int64(ho.id), UserKey: ho.userKey, UserURI: ho.userURI, Verified: ho.verified, UserName: ho.name,
		Reason: ho.reason, State: store.HandoffWaiting, Started: ho.started, Pending: slices.Clone(ho.pending),
	}
	switch {
	case ho.accepted:
		r.Agent, r.State = ho.agent.URI, store.HandoffAccepted
	case len(ho.offered) > 0:
		r.Agent, r.State = ho.offered[0].URI, store.HandoffOffered
		r.OfferDeadline = ho.offerDeadline
		for _, a := range ho.offered {
			r.Offered = append(r.Offered, a.URI)
		}
	}
	if !ho.accepted {
		r.Deadline = ho.deadline
	}
	for _, a := range h.agents {
		if ho.tried[a] {
			r.Tried = append(r.Tried, a.URI)
		}
	}
	for _, a := range ho.lapsed {
		r.Lapsed = append(r.Lapsed, a.URI)
	}
	return r
}

// Restore resumes the handoffs HandoffConfig.Store kept, as a previous process left them
// (see Handoff); without a Store it does nothing. Call it once, before the bot serves. It
// returns once the handoffs are back in place; the notices to both sides, the timeouts of
// deadlines already past and the offers to agents that became free follow, after
// HandoffConfig.Ready when set.
func (h *Handoff) Restore(ctx context.Context) error {
	if h.cfg.Store == nil {
		return nil
	}
	recs, err := h.cfg.Store.Handoffs(ctx)
	if err != nil {
		return fmt.Errorf("handlers: restore handoffs: %w", err)
	}
	last, err := h.cfg.Store.LastHandoffID(ctx)
	if err != nil {
		return fmt.Errorf("handlers: restore handoffs: %w", err)
	}
	now := time.Now()
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return errors.New("handlers: restore handoffs: the handoff is closed")
	}
	h.nextID = max(h.nextID, int(last))
	var notices []action
	var expired []*handoff
	type overdueOffer struct {
		ho  *handoff
		gen int
	}
	var overdue []overdueOffer // offers whose OfferTimeout passed: they move on after the notices
	for _, r := range recs {
		id := int(r.ID)
		h.nextID = max(h.nextID, id)
		if h.byID[id] != nil || h.byUser[r.UserKey] != nil {
			continue // restored already
		}
		if r.State == store.HandoffEnded {
			// The user has yet to write after its agent ended it: that message may rate it.
			info := HandoffInfo{ID: id, User: r.UserURI, UserKey: r.UserKey, Agent: r.Agent, Accepted: true, Started: r.Started}
			if _, ok := h.ended[r.UserKey]; !ok {
				h.ended[r.UserKey], h.last[r.UserKey] = info, info
			}
			continue
		}
		ho := &handoff{
			id: id, userKey: r.UserKey, userURI: r.UserURI, name: r.UserName, verified: r.Verified,
			reason: r.Reason, started: r.Started, deadline: r.Deadline, tried: map[*agentState]bool{},
			pending: slices.Clone(r.Pending),
		}
		for _, u := range r.Tried {
			if a := h.agentFor(u); a != nil {
				ho.tried[a] = true
			}
		}
		for _, u := range r.Lapsed {
			if a := h.agentFor(u); a != nil && !slices.Contains(ho.lapsed, a) {
				ho.lapsed = append(ho.lapsed, a)
			}
		}
		holders := r.Offered
		if len(holders) == 0 && r.Agent != "" {
			holders = []string{r.Agent} // a record written before offers could go to several
		}
		var a *agentState // the accepting agent, or the first holding the offer
		var offered []*agentState
		for _, u := range holders {
			if r.State == store.HandoffAccepted {
				break
			}
			if x := h.agentFor(u); x != nil && !slices.Contains(offered, x) {
				offered = append(offered, x)
			} else if x == nil {
				h.log.Warn("handoff restored without an agent it was offered to: no longer configured", "handoff", id, "agent", u)
			}
		}
		if len(offered) > 0 {
			a = offered[0]
		}
		if r.State == store.HandoffAccepted && r.Agent != "" {
			if a = h.agentFor(r.Agent); a == nil {
				h.log.Warn("handoff restored without its agent: no longer configured; the user waits for another",
					"handoff", id, "agent", r.Agent)
			}
		}
		h.byUser[ho.userKey], h.byID[id] = ho, ho
		h.mark(ho)
		switch {
		case r.State == store.HandoffAccepted && a != nil:
			ho.agent, ho.accepted = a, true
			a.active = append(a.active, ho)
			a.current = ho
			if h.cfg.Rooms != nil {
				if rm := h.cfg.Rooms.Room(HandoffRoomID(id)); rm != nil { // restored by Rooms.Restore
					rm.SetFormat(h.roomFormat(ho))
					ho.room = rm
				}
			}
			toAgent, toUser := h.fill(h.texts.AgentResumed, ho, a.Name), h.fill(h.texts.Resumed, ho, a.Name)
			notices = append(notices, func(ctx context.Context, s sink) {
				h.toAgent(ctx, s, a, toAgent)
				h.toUser(ctx, s, ho, toUser, "handoff")
			})
		case r.State == store.HandoffOffered && a != nil:
			ho.offered = offered
			for _, x := range offered {
				x.offers = append(x.offers, ho)
			}
			toAgents := h.toAgents(h.told(ho, h.texts.OfferResumed))
			toUser := h.fill(h.texts.WaitResumed, ho, a.Name)
			notices = append(notices, func(ctx context.Context, s sink) {
				toAgents(ctx, s)
				h.toUser(ctx, s, ho, toUser, "handoff")
			})
			if len(offered) == 1 && !h.cfg.Broadcast && h.cfg.OfferTimeout >= 0 {
				left := h.cfg.OfferTimeout
				if !r.OfferDeadline.IsZero() {
					left = r.OfferDeadline.Sub(now)
				}
				if left > 0 {
					h.armOffer(ho, left)
				} else {
					overdue = append(overdue, overdueOffer{ho, ho.offerGen})
				}
			}
		default: // waiting in line, or its agent is gone
			ho.queued = true
			h.queue = append(h.queue, ho)
			toUser := h.fill(h.texts.WaitResumed, ho, "")
			notices = append(notices, func(ctx context.Context, s sink) { h.toUser(ctx, s, ho, toUser, "handoff") })
		}
		if !ho.accepted {
			if ho.deadline.IsZero() {
				ho.deadline = now.Add(h.cfg.AnswerTimeout)
			}
			if left := ho.deadline.Sub(now); left > 0 {
				ho.timer = time.AfterFunc(left, func() { h.timeout(ho) })
			} else {
				expired = append(expired, ho)
				notices = notices[:len(notices)-1] // it ends at once: no "still waiting"
			}
		}
		h.log.Info("handoff restored", "handoff", id, "user", ho.userURI, "state", r.State, "agent", r.Agent)
	}
	if h.cfg.Ready != nil {
		h.wg.Add(1) // before Close can wait
	}
	h.mu.Unlock()
	h.flush(ctx)

	resume := func() {
		ctx, cancel := context.WithTimeout(h.ctx, 5*time.Minute)
		defer cancel()
		h.closeOrphanRooms(ctx)
		h.run(ctx, sink{}, notices)
		for _, ho := range expired {
			h.timeout(ho)
		}
		for _, o := range overdue {
			h.escalate(o.ho, o.gen)
		}
		h.mu.Lock()
		acts := h.drain()
		h.mu.Unlock()
		h.run(ctx, sink{}, acts)
	}
	if h.cfg.Ready == nil {
		resume()
		return nil
	}
	go func() {
		defer h.wg.Done()
		select {
		case <-h.cfg.Ready:
			resume()
		case <-h.ctx.Done():
		}
	}()
	return nil
}
