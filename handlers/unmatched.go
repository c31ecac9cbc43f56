package handlers

import (
	"context"
	"log/slog"
	"strings"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/store"
)

// LogUnmatched returns middleware that records in s every message nothing matched: the
// rules reported no match (bot.SetNoMatch: a fallback reply does not count as a match), or nobody recorded an
// answer and nothing was replied. Rule authors read the list to see what users ask that the
// rules do not cover. Place it outside the rules engine. A failed write is logged
// (slog.Default) and does not disturb the conversation.
func LogUnmatched(s UnmatchedStore) bot.Middleware {
	return func(next bot.Handler) bot.Handler {
		return bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
			c, ok := convOf(ev)
			if ev.Kind != bot.EventMessage || !ok || strings.TrimSpace(ev.Text) == "" {
				return next.Handle(ctx, w, ev)
			}
			w = recording(w)
			err := next.Handle(ctx, w, ev)
			if err == nil && Unanswered(w) {
				wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
				defer cancel()
				u := store.Unmatched{Key: c.Key, SessionID: c.ID, Peer: c.Peer.URI, Text: ev.Text, Time: eventTime(ev)}
				if err := s.AppendUnmatched(wctx, u); err != nil {
					slog.Default().Warn("unmatched question not stored", "key", c.Key, "err", err)
				}
			}
			return err
		})
	}
}
