package handlers

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/imbot-dev/imbot/bot"
)

// answerKey is the context key of the *answer of an event. A pointer-free empty struct key
// costs no allocation.
type answerKey struct{}

// answer records who answered one event. The middleware of this package share one per event.
type answer struct {
	mu      sync.Mutex
	names   []string
	noMatch bool
}

// track returns ctx carrying an answer record, reusing the one an outer middleware made.
func track(ctx context.Context) (context.Context, *answer) {
	if a, ok := ctx.Value(answerKey{}).(*answer); ok {
		return ctx, a
	}
	a := &answer{}
	return context.WithValue(ctx, answerKey{}, a), a
}

// Answered records that the rule or handler called name answered the event handled with
// ctx. The rules engine calls it for every rule that fires; a Go handler may call it with
// its own name. Several calls record several names, in order. Without a middleware of this
// package in the chain it does nothing.
func Answered(ctx context.Context, name string) {
	if a, ok := ctx.Value(answerKey{}).(*answer); ok && name != "" {
		a.mu.Lock()
		a.names = append(a.names, name)
		a.mu.Unlock()
	}
}

// NoMatch records that no rule matched the event handled with ctx, even if a fallback
// replied. It counts in the no-match metric, is logged by LogUnmatched and counts towards a
// handoff after repeated no-match.
func NoMatch(ctx context.Context) {
	if a, ok := ctx.Value(answerKey{}).(*answer); ok {
		a.mu.Lock()
		a.noMatch = true
		a.mu.Unlock()
	}
}

// Answerers returns the names recorded with Answered for the event handled with ctx, in
// order.
func Answerers(ctx context.Context) []string {
	if a, ok := ctx.Value(answerKey{}).(*answer); ok {
		a.mu.Lock()
		defer a.mu.Unlock()
		return slices.Clone(a.names)
	}
	return nil
}

// Answerer returns the last name recorded with Answered for the event handled with ctx, or
// "": the rule or handler that wrote what is being sent now.
func Answerer(ctx context.Context) string {
	if a, ok := ctx.Value(answerKey{}).(*answer); ok {
		a.mu.Lock()
		defer a.mu.Unlock()
		if len(a.names) > 0 {
			return a.names[len(a.names)-1]
		}
	}
	return ""
}

// Unanswered reports whether the message handled with ctx went unmatched: NoMatch was
// called, or nobody recorded an answer and nothing was replied.
func Unanswered(ctx context.Context, w bot.Responder) bool {
	a, ok := ctx.Value(answerKey{}).(*answer)
	if !ok {
		return w.Replied() == 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.noMatch || (len(a.names) == 0 && w.Replied() == 0)
}

func (a *answer) summary() (names string, noMatch bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return strings.Join(a.names, ","), a.noMatch
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
