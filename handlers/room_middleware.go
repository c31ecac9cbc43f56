package handlers

import (
	"context"
	"strings"

	"github.com/imbot-dev/imbot/bot"
)

// Middleware returns the middleware that takes the events of rooms' participants: their
// messages are relayed to the others and reach nothing after it, LeaveCommand leaves, and an
// IM session ended by the participant's BYE leaves the room (see Rooms).
func (r *Rooms) Middleware() bot.Middleware {
	return func(next bot.Handler) bot.Handler {
		return bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
			return r.handle(ctx, w, ev, next)
		})
	}
}

func (r *Rooms) handle(ctx context.Context, w bot.Responder, ev *bot.Event, next bot.Handler) error {
	c, ok := convOf(ev)
	if !ok || ev.Kind == bot.EventJoin || ev.Kind == bot.EventLeave {
		return next.Handle(ctx, w, ev)
	}
	r.mu.RLock()
	m := r.find(c.Peer.URI, c.Key)
	r.mu.RUnlock()
	if m == nil {
		return next.Handle(ctx, w, ev)
	}
	r.mu.Lock()
	if m.gone { // it left meanwhile
		r.mu.Unlock()
		return next.Handle(ctx, w, ev)
	}
	rm := m.room
	if ev.Kind != bot.EventSessionEnd {
		m.conv = ev.Session // the latest: a page-mode conversation starts again after an idle timeout
	}
	r.mu.Unlock()
	s := roomSink{w: w, conv: ev.Session}

	switch ev.Kind {
	case bot.EventSessionEnd:
		if ev.Reason == bot.EndByPeer || ev.Reason == bot.EndIdle && rm.opts.LeaveOnIdle {
			rm.leave(ctx, roomSink{}, m, ev.Reason) // EventLeave as an event of the conversation that ended
		} else {
			r.mu.Lock()
			if m.conv == ev.Session {
				m.conv = nil
			}
			r.mu.Unlock()
		}
		return next.Handle(ctx, w, ev)
	case bot.EventMessage:
		bot.SetAnswerer(w, "room")
		_ = rm.deliver(ctx, s, m) // what waited for it (an unverified participant, after a restart)
		text := strings.TrimSpace(ev.Text)
		if strings.EqualFold(text, r.cfg.LeaveCommand) {
			rm.leave(ctx, s, m, bot.EndLeft)
			return nil
		}
		if text == "" {
			return nil
		}
		line := Visible(ev.Text)
		_ = rm.broadcast(ctx, s, m, func(to *member) string { return rm.line(m.Participant, to, line) })
		return nil
	case bot.EventSessionStart:
		_ = rm.deliver(ctx, s, m)
	}
	return nil // typing, idle: the bot says nothing
}
