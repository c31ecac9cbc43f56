package handlers

import (
	"context"
	"log/slog"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/store"
)

// storeTimeout bounds one write of a record by the middleware of this package.
const storeTimeout = 5 * time.Second

// Transcript returns middleware that records every message of every conversation in s:
// each message the peer sends (store.In) as soon as it arrives, and each reply (store.Out)
// once it was sent, whatever the event that caused it (a greeting on session start, a
// farewell on idle). Entries carry the session, the conversation key, the peer and the time;
// replies carry the rule or handler that answered (see bot.SetAnswerer), as it was when the reply
// went out. Typing is not recorded.
//
// A failed write is logged (slog.Default) and does not disturb the conversation. Place
// Transcript outside the middleware whose replies it must see, and outside Handoff so that
// the agent sees the user's last message in the transcript.
func Transcript(s TranscriptStore) bot.Middleware {
	return func(next bot.Handler) bot.Handler {
		return bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
			c, ok := convOf(ev)
			if !ok {
				return next.Handle(ctx, w, ev)
			}
			w = recording(w)
			if ev.Kind == bot.EventMessage {
				appendEntry(ctx, s, store.TranscriptEntry{
					SessionID: c.ID, Key: c.Key, Direction: store.In, Peer: c.Peer.URI, Text: Visible(ev.Text), Time: eventTime(ev),
				})
			}
			return next.Handle(ctx, &transcriptResponder{Responder: w, s: s, c: c}, ev)
		})
	}
}

func eventTime(ev *bot.Event) time.Time {
	if ev.Time.IsZero() {
		return time.Now()
	}
	return ev.Time
}

// appendEntry writes e, even when ctx is being cancelled by a shutdown.
func appendEntry(ctx context.Context, s TranscriptStore, e store.TranscriptEntry) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if err := s.AppendTranscript(wctx, e); err != nil {
		slog.Default().Warn("transcript: entry not stored", "key", e.Key, "direction", string(e.Direction), "err", err)
	}
}

// transcriptResponder records the replies that went out.
type transcriptResponder struct {
	bot.Responder
	s TranscriptStore
	c conv
}

// Unwrap returns the Responder r wraps, so that bot.SetAnswerer reaches it.
func (r *transcriptResponder) Unwrap() bot.Responder { return r.Responder }

func (r *transcriptResponder) Reply(ctx context.Context, text string, opts ...bot.ReplyOption) error {
	start := time.Now() // stores order by time: the peer may answer before the 200 comes back
	if err := r.Responder.Reply(ctx, text, opts...); err != nil {
		return err
	}
	appendEntry(ctx, r.s, store.TranscriptEntry{
		SessionID: r.c.ID, Key: r.c.Key, Direction: store.Out, Peer: r.c.Peer.URI, Text: text,
		Time: start, Answerer: lastAnswerer(r.Responder),
	})
	return nil
}
