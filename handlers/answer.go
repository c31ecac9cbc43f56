package handlers

import (
	"github.com/imbot-dev/imbot/bot"
)

// recording returns w if it records who answered (bot.AnswerRecorder, directly or through
// the Responders it wraps), or w wrapped in a Responder that does: the middleware of this
// package read who answered from the Responder once the chain has returned.
func recording(w bot.Responder) bot.Responder {
	if bot.RecordsAnswers(w) {
		return w
	}
	return &answerResponder{Responder: w}
}

// answerResponder adds a record of who answered to a Responder that keeps none.
type answerResponder struct {
	bot.Responder
	bot.Answers
}

// Unwrap returns the Responder r wraps.
func (r *answerResponder) Unwrap() bot.Responder { return r.Responder }

// Unanswered reports whether the message w responded to went unmatched: nothing matched
// (bot.SetNoMatch), or nobody recorded an answer (bot.SetAnswerer) and nothing was replied.
func Unanswered(w bot.Responder) bool {
	return bot.NoMatchOf(w) || (len(bot.AnswerersOf(w)) == 0 && w.Replied() == 0)
}

// lastAnswerer returns the last name recorded on w with bot.SetAnswerer, or "": the rule or
// handler that wrote what is being sent now.
func lastAnswerer(w bot.Responder) string {
	if names := bot.AnswerersOf(w); len(names) > 0 {
		return names[len(names)-1]
	}
	return ""
}

// conv is what the middleware of this package need to know about an event's conversation.
type conv struct {
	ID, Key string
	Mode    bot.Mode
	Peer    bot.Peer
}

// convOf returns the conversation of ev; ok is false when the event has none.
func convOf(ev *bot.Event) (c conv, ok bool) {
	if s := ev.Session; s != nil {
		return conv{ID: s.ID(), Key: s.Key(), Mode: s.Mode(), Peer: s.Peer()}, true
	}
	return conv{}, false
}
