package handlers

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/imbot-dev/imbot/bot"
)

// Logging returns middleware that writes one log line per event once the chain has handled
// it: the session, the event kind, the conversation mode, the peer and whether it is verified
// (bot.Peer.Verified: otherwise its address is only what it claims), who answered (see
// bot.SetAnswerer), whether nothing matched, how many replies went out, the latency and the error
// if any. Messages, session starts and ends and idle timeouts are logged at Info, typing at
// Debug, failures at Warn (the runtime logs the failure itself, with its correlation ID, at
// Error). A nil logger means slog.Default().
//
// Put it first in the chain, so that the latency covers everything after it:
//
//	b.Use(handlers.Logging(logger), ...)
//
// A line reads:
//
//	level=INFO msg=event session="sip:bot@x sip:alice@x" kind=message mode=page
//	peer=sip:alice@x verified=true answered=reset-password nomatch=false replies=1 latency=3.1ms
func Logging(logger *slog.Logger) bot.Middleware {
	return func(next bot.Handler) bot.Handler {
		return bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
			log := logger
			if log == nil {
				log = slog.Default()
			}
			w = recording(w)
			start := time.Now()
			err := next.Handle(ctx, w, ev)
			latency := time.Since(start)

			level := slog.LevelInfo
			switch {
			case err != nil:
				level = slog.LevelWarn
			case ev.Kind == bot.EventTyping:
				level = slog.LevelDebug
			}
			if !log.Enabled(ctx, level) {
				return err
			}
			c, _ := convOf(ev)
			attrs := []slog.Attr{
				slog.String("session", c.ID),
				slog.String("kind", ev.Kind.String()),
				slog.String("mode", c.Mode.String()),
				slog.String("peer", c.Peer.URI),
				slog.Bool("verified", c.Peer.Verified),
				slog.String("answered", strings.Join(bot.AnswerersOf(w), ",")),
				slog.Bool("nomatch", bot.NoMatchOf(w)),
				slog.Int("replies", w.Replied()),
				slog.Duration("latency", latency),
			}
			if ev.Kind == bot.EventSessionEnd {
				attrs = append(attrs, slog.String("reason", string(ev.Reason)))
			}
			if err != nil {
				attrs = append(attrs, slog.String("err", err.Error()))
			}
			log.LogAttrs(ctx, level, "event", attrs...)
			return err
		})
	}
}
