package handlers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/store"
)

// roomSink is the conversation whose handler runs now: lines to its participant go through
// its Responder. The zero roomSink is no conversation (work outside a handler).
type roomSink struct {
	w    bot.Responder
	conv bot.Conversation
}

// is reports whether s is conversation c.
func (s roomSink) is(c bot.Conversation) bool { return s.w != nil && c != nil && s.conv == c }

// errHeld says a line waits for its unverified recipient to write again.
var errHeld = errors.New("held until the participant writes again")

// broadcast relays to every participant but from the text textFor makes for each.
func (rm *Room) broadcast(ctx context.Context, s roomSink, from *member, textFor func(to *member) string) error {
	to, ok := rm.others(from)
	if !ok {
		return ErrRoomClosed
	}
	return rm.send(ctx, s, to, textFor)
}

// others returns the participants but from, and false once the room has closed.
func (rm *Room) others(from *member) ([]*member, bool) {
	rm.rs.mu.Lock()
	defer rm.rs.mu.Unlock()
	if rm.closed {
		return nil, false
	}
	return slices.DeleteFunc(slices.Clone(rm.members), func(m *member) bool { return m == from }), true
}

// send relays to each of to the text textFor makes for it: the lines are numbered and
// written to the Store before any is sent, then delivered one recipient after the other.
// A line that cannot be sent now stays for later (see deliver). It reports the first
// failure to send, if any.
func (rm *Room) send(ctx context.Context, s roomSink, to []*member, textFor func(to *member) string) error {
	return rm.sendAs(ctx, s, to, func(m *member) (string, string) { return textFor(m), "" })
}

// sendAs is send with the answerer each line is recorded with in its recipient's
// transcript ("" for RoomAnswerer).
func (rm *Room) sendAs(ctx context.Context, s roomSink, to []*member, textFor func(to *member) (text, answerer string)) error {
	r := rm.rs
	now := time.Now()
	texts := make([]string, len(to))
	answerers := make([]string, len(to))
	for i, m := range to {
		texts[i], answerers[i] = textFor(m) // outside r.mu: it may read the room
	}
	r.mu.Lock()
	var ds []store.RoomDelivery
	var targets []*member
	for i, m := range to {
		if m.gone {
			continue
		}
		rm.seq++
		d := store.RoomDelivery{Room: rm.id, Seq: rm.seq, To: m.URI, Text: texts[i], Time: now, Answerer: answerers[i]}
		m.outbox = append(m.outbox, d)
		ds = append(ds, d)
		targets = append(targets, m)
	}
	r.mu.Unlock()
	r.persist(ctx, rm, ds)
	var first error
	for _, m := range targets {
		if err := rm.deliver(ctx, s, m); err != nil && first == nil && !errors.Is(err, errHeld) {
			first = err
		}
	}
	return first
}

// deliver sends m what waits for it, in order: the notice of a restart, then the relayed
// lines, each forgotten by the Store once sent. It stops at the first line that cannot go
// (the participant is unverified and has no conversation, or did not answer): that one and
// the rest wait for the next delivery to m, when it writes or is sent something again.
func (rm *Room) deliver(ctx context.Context, s roomSink, m *member) error {
	r := rm.rs
	m.smu.Lock()
	defer m.smu.Unlock()
	for {
		r.mu.Lock()
		if m.gone {
			r.mu.Unlock()
			return nil
		}
		conv, notice := m.conv, m.notice
		var d store.RoomDelivery
		switch {
		case notice != "":
		case len(m.outbox) > 0:
			d = m.outbox[0]
		default:
			r.mu.Unlock()
			return nil
		}
		r.mu.Unlock()
		text := notice
		if notice == "" {
			text = d.Text
		}
		sent, answerer := time.Now(), cmp.Or(d.Answerer, RoomAnswerer)
		if err := r.sendTo(ctx, s, m, conv, text, answerer); err != nil {
			if errors.Is(err, errHeld) {
				r.log.Info("room: a line for an unverified participant waits until it writes again", "room", rm.id, "participant", m.URI)
			} else {
				r.log.Warn("room: line not delivered; it is sent again with the next one", "room", rm.id, "participant", m.URI, "err", err)
			}
			return err
		}
		if !s.is(conv) { // the Transcript middleware records the replies of the handler running now
			r.record(ctx, m, conv, text, answerer, sent)
		}
		r.mu.Lock()
		if notice != "" {
			m.notice = ""
			r.mu.Unlock()
			continue
		}
		m.outbox = slices.DeleteFunc(m.outbox, func(x store.RoomDelivery) bool { return x.Seq == d.Seq })
		r.mu.Unlock()
		r.forget(ctx, rm, []store.RoomDelivery{d})
	}
}

// record writes a line delivered to m to m's transcript (RoomsConfig.Transcript).
func (r *Rooms) record(ctx context.Context, m *member, conv bot.Conversation, text, answerer string, sent time.Time) {
	if r.cfg.Transcript == nil {
		return
	}
	key, id := m.Key, ""
	if conv != nil {
		key, id = conv.Key(), conv.ID()
	}
	if key == "" {
		key = r.cfg.Bot.URI() + " " + m.URI // the key of a verified peer's conversation
	}
	if id == "" {
		id = key
	}
	appendEntry(ctx, r.cfg.Transcript, store.TranscriptEntry{
		SessionID: id, Key: key, Direction: store.Out, Peer: m.URI, Text: text, Time: sent, Answerer: answerer,
	})
}

// sendTo sends text to m: through the Responder when m's handler runs now (with answerer
// recorded on it, for the Transcript middleware), else into m's conversation conv (an IM
// session stays one), else in page mode to a verified participant.
// An unverified participant without a conversation gets nothing (errHeld): the bot never
// writes to an address that was only claimed.
func (r *Rooms) sendTo(ctx context.Context, s roomSink, m *member, conv bot.Conversation, text, answerer string) error {
	if s.is(conv) {
		bot.SetAnswerer(s.w, answerer)
		return s.w.Reply(ctx, text)
	}
	if conv != nil {
		err := conv.Send(ctx, text)
		if !errors.Is(err, bot.ErrSessionEnded) {
			return err
		}
		r.mu.Lock()
		if m.conv == conv {
			m.conv = nil // ended: page mode from now on
		}
		r.mu.Unlock()
	}
	if !m.Verified {
		return errHeld
	}
	if _, err := r.cfg.Bot.Send(ctx, m.URI, text); err != nil {
		return fmt.Errorf("page mode to %s: %w", m.URI, err)
	}
	return nil
}
