package bot

import "context"

// Handler handles one event of a conversation. Handle is called for every event of a session,
// one at a time and in the order the peer sent them; events of different sessions are handled
// in parallel. A handler answers through w: it may reply zero, one or several times and may
// show typing while it works. The context is cancelled when the bot shuts down past its grace
// period.
//
// A handler that returns an error, or panics, does not stop the bot: the runtime logs the
// failure with a correlation ID and, when nothing was replied yet, sends the user a short
// apology that carries the same ID.
type Handler interface {
	Handle(ctx context.Context, w Responder, ev *Event) error
}

// HandlerFunc adapts an ordinary function to the Handler interface.
type HandlerFunc func(ctx context.Context, w Responder, ev *Event) error

// Handle calls f(ctx, w, ev).
func (f HandlerFunc) Handle(ctx context.Context, w Responder, ev *Event) error {
	return f(ctx, w, ev)
}

// Middleware wraps a Handler with behaviour that runs around it. Middleware decides whether
// to call next: a middleware that answers an event itself (a rule that matched, an access
// check that refused) simply does not call it.
type Middleware func(next Handler) Handler

// Chain is a list of middleware applied in order: the first one listed is the outermost.
type Chain []Middleware

// Then wraps h with every middleware of the chain and returns the result. A nil h stands for
// a handler that does nothing.
func (c Chain) Then(h Handler) Handler {
	if h == nil {
		h = nopHandler{}
	}
	for i := len(c) - 1; i >= 0; i-- {
		h = c[i](h)
	}
	return h
}

// nopHandler ends a chain: an event that no handler answered is dropped. Middleware can tell
// that case apart with Responder.Replied.
type nopHandler struct{}

func (nopHandler) Handle(context.Context, Responder, *Event) error { return nil }
