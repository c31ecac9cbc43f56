package handlers

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/store"
)

var firstNumber = regexp.MustCompile(`[0-9]+`)

// Rating returns a handler that records a satisfaction rating: the first whole number of
// the message, from 1 to scale (5 when scale <= 0), with the rest of the message as the
// comment. It then replies thanks (nothing when empty). A message without a number in range
// gets "Please answer with a number from 1 to 5." and records nothing. A rating given in a
// conversation after an agent ended a handoff (LastHandoff), until the conversation ends,
// records that agent and handoff.
//
// It is meant for the end of a survey flow, where a rule hands the answer to Go:
//
//   - name: survey-answer
//     state: survey
//     match: ["*"]
//     handler: rating
func Rating(s RatingStore, scale int, thanks string) bot.Handler {
	if scale <= 0 {
		scale = 5
	}
	return bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		c, ok := convOf(ev)
		if ev.Kind != bot.EventMessage || !ok {
			return nil
		}
		bot.SetAnswerer(w, "rating")
		loc := firstNumber.FindStringIndex(ev.Text)
		score := 0
		if loc != nil {
			score, _ = strconv.Atoi(ev.Text[loc[0]:loc[1]])
		}
		if score < 1 || score > scale {
			return w.Reply(ctx, fmt.Sprintf("Please answer with a number from 1 to %d.", scale))
		}
		comment := strings.Join(strings.Fields(ev.Text[:loc[0]]+" "+ev.Text[loc[1]:]), " ")
		comment = strings.TrimSpace(strings.TrimLeft(comment, ".,;:-/ "))
		r := store.Rating{Key: c.Key, SessionID: c.ID, Peer: c.Peer.URI, Score: score, Comment: comment, Time: eventTime(ev)}
		if ho, ok := LastHandoff(ctx); ok {
			r.Agent, r.HandoffID = ho.Agent, int64(ho.ID)
		}
		err := s.AddRating(ctx, r)
		if err != nil {
			return fmt.Errorf("handlers: rating not stored: %w", err)
		}
		if thanks == "" {
			return nil
		}
		return w.Reply(ctx, thanks)
	})
}
