package bot

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Post sends ev through the chain as an event of the conversation ev.Session, for events
// that neither the peer nor the bot's own timers make: a room's EventJoin and EventLeave
// (handlers.Rooms). When ev.Session is an open *Session of b, ev is queued after what that
// conversation has queued already and handled by its worker, in order with the peer's
// events, as EventIdle is, and Post returns at once. Otherwise (a conversation that has
// ended, or one a handler made to reach a peer that has none with the bot) the chain handles
// ev now, in the caller's goroutine, with a Responder that writes through
// Conversation.Send, and Post returns what the chain returned. ev.Time defaults to now.
//
// Post is for after Run started; it returns an error before that, and once the bot shuts
// down.
func (b *Bot) Post(ctx context.Context, ev *Event) error {
	if ev == nil || ev.Session == nil {
		return errors.New("bot: Post needs an event with a Session")
	}
	b.mu.Lock()
	chain, running := b.chain, b.running
	b.mu.Unlock()
	if !running || chain == nil {
		return errors.New("bot: Post called before Run")
	}
	if b.closing.Load() {
		return errors.New("bot: Post: the bot is shutting down")
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	if s, ok := ev.Session.(*Session); ok && s.b == b {
		s.mu.Lock()
		if !s.ended {
			s.push(ev)
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
	}
	ectx, cancel := context.WithTimeout(ctx, b.cfg.EventTimeout)
	defer cancel()
	w := &postResponder{c: ev.Session}
	err := call(ectx, chain, w, ev)
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
	return err
}

// postResponder answers an event handed to Post for a conversation that has no worker: its
// replies go through Conversation.Send, with no typing.
type postResponder struct {
	Answers
	c Conversation

	mu      sync.Mutex
	replied int
	done    bool
}

func (w *postResponder) Reply(ctx context.Context, text string, _ ...ReplyOption) error {
	w.mu.Lock()
	done := w.done
	w.mu.Unlock()
	if done {
		return errors.New("bot: Reply called after the handler returned")
	}
	if err := w.c.Send(ctx, text); err != nil {
		return err
	}
	w.mu.Lock()
	w.replied++
	w.mu.Unlock()
	return nil
}

func (w *postResponder) Typing(context.Context) error { return ErrTypingNotSupported }

func (w *postResponder) Replied() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.replied
}

// End does nothing: a conversation without a worker has nothing to end after the handler.
func (w *postResponder) End() {}
