package handlers

import (
	"context"

	"github.com/imbot-dev/imbot/bot"
)

// addManaged puts the managed participant p in the room, reached through conv (nil: none
// known), without a word to the others and without EventJoin: its owner tells whom it
// wants.
func (rm *Room) addManaged(ctx context.Context, p Participant, conv bot.Conversation) error {
	a, err := parseAddr(p.URI)
	if err != nil {
		return err
	}
	p.Managed = true
	m := &member{Participant: p, room: rm, addr: a, conv: conv}
	if err := rm.add(m); err != nil {
		return err
	}
	rm.rs.save(ctx, rm)
	return nil
}

// managed returns the managed participant at address uri, or nil.
func (rm *Room) managed(uri string) *member {
	if m, err := rm.memberAt(uri); err == nil && m.Managed {
		return m
	}
	return nil
}

// seen notes that the managed participant at address uri wrote in conversation c (whose
// handler runs now with w) and delivers what waited for it.
func (rm *Room) seen(ctx context.Context, uri string, c bot.Conversation, w bot.Responder) {
	m := rm.managed(uri)
	if m == nil {
		return
	}
	rm.rs.mu.Lock()
	m.conv = c
	rm.rs.mu.Unlock()
	_ = rm.deliver(ctx, roomSink{w: w, conv: c}, m)
}

// relayManaged relays a line of the managed participant at address from to every other
// participant, each reading the text textFor makes (recorded with its answerer). It reports
// the participants whose line waits (unverified, with no conversation: see deliver).
func (rm *Room) relayManaged(ctx context.Context, from string, textFor func(to *member) (text, answerer string)) (held []Participant) {
	to, ok := rm.others(rm.managed(from))
	if !ok {
		return nil
	}
	_ = rm.sendAs(ctx, roomSink{}, to, textFor)
	rm.rs.mu.Lock()
	defer rm.rs.mu.Unlock()
	for _, x := range to {
		if !x.gone && !x.Verified && x.conv == nil && len(x.outbox) > 0 {
			held = append(held, x.Participant)
		}
	}
	return held
}
