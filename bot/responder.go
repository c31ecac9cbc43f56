package bot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// Errors returned by a Responder.
var (
	// ErrSessionEnded is returned when replying in a conversation that has ended.
	ErrSessionEnded = errors.New("bot: session has ended")
	// ErrTypingNotSupported is returned by Typing when the peer cannot receive typing
	// indications (it announced no support, or refused them). It is safe to ignore.
	ErrTypingNotSupported = errors.New("bot: peer does not accept typing indications")
	// ErrPeerUnreachable is returned when sending in a page-mode conversation whose peer did
	// not answer the bot's last request (a client gone, or a forged source address): the
	// bot sends it nothing more until it writes again.
	ErrPeerUnreachable = errors.New("bot: peer did not answer; not sending until it writes again")
)

// Responder is how a handler answers an event. Its methods are safe for concurrent use, and
// it must not be used after the handler returns.
//
// Typing follows one contract: it starts when work on a reply starts (the bot shows it on its
// own unless Config.Typing.Off; Typing shows it explicitly), is refreshed before the peer
// would drop it, stops on the send path of the next reply, and is never left active after the
// handler returns.
type Responder interface {
	// Reply sends text to the peer as one message. Over UDP a long text may go out as
	// several messages, split between words.
	Reply(ctx context.Context, text string, opts ...ReplyOption) error
	// Typing shows the peer that the bot is typing, until the next Reply or the end of the
	// handler. It returns ErrTypingNotSupported when the peer cannot show it.
	Typing(ctx context.Context) error
	// Replied reports how many replies were sent for this event.
	Replied() int
	// End ends the conversation once the handler returns (BYE in session mode).
	End()
}

// ReplyOption changes how one reply is sent.
type ReplyOption func(*ReplySettings)

// ReplySettings are what the options of one reply ask for. The bot's Responder carries them
// out; a Responder that stands in for it, such as bottest.Recorder, reads them with
// ReadReplyOptions.
type ReplySettings struct {
	// Typing is how long typing is shown before the reply is sent (WithTyping); 0 sends the
	// reply at once.
	Typing time.Duration
}

// ReadReplyOptions returns the settings opts ask for, applied in order.
func ReadReplyOptions(opts ...ReplyOption) ReplySettings {
	var s ReplySettings
	for _, opt := range opts {
		opt(&s)
	}
	return s
}

// WithTyping shows typing for d before the reply is sent, for a human pace. It is opt-in:
// replies are sent at once otherwise. A message from the peer after the event being handled
// cuts the delay: the reply, and the later ones of the same answer, go at once.
func WithTyping(d time.Duration) ReplyOption {
	return func(s *ReplySettings) { s.Typing = d }
}

// responder is the Responder of one event. Typing lives in the session (typing.go): the
// responder only says when the handler's work starts and ends. It records who answered.
type responder struct {
	Answers

	s  *Session
	ev *Event

	mu      sync.Mutex
	replied int
	done    bool
	endReq  bool
}

func (w *responder) Replied() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.replied
}

func (w *responder) End() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.endReq = true
}

func (w *responder) isDone() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.done
}

// Reply sends text, after showing typing for the WithTyping delay. A message from the peer
// cuts the delay: once the peer has written again since the event, the replies still
// waiting go at once, with no more typing, so that the rest of an answer does not trickle
// in after (and interleave with) the conversation's next turn.
func (w *responder) Reply(ctx context.Context, text string, opts ...ReplyOption) error {
	if d := ReadReplyOptions(opts...).Typing; d > 0 {
		if newer := w.s.newerMessage(w.ev); !isClosed(newer) {
			if err := w.Typing(ctx); err != nil && !errors.Is(err, ErrTypingNotSupported) {
				return err
			}
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-newer:
				t.Stop()
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
	}
	if w.isDone() {
		return errors.New("bot: Reply called after the handler returned")
	}
	if w.s.isEnded() {
		return ErrSessionEnded
	}
	if _, err := w.s.sendText(ctx, text); err != nil {
		return err
	}
	w.mu.Lock()
	w.replied++
	w.mu.Unlock()
	return nil
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func (w *responder) Typing(ctx context.Context) error {
	if w.isDone() {
		return errors.New("bot: Typing called after the handler returned")
	}
	return w.s.typingStart(ctx)
}

// finish runs when the handler returned: typing still shown without a reply is turned off.
func (w *responder) finish(ctx context.Context) (end bool) {
	w.s.typingIdle(ctx)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	return w.endReq
}

// PanicError is the error a handler's panic is turned into. It keeps the panic value and the
// stack of the goroutine that panicked.
type PanicError struct {
	Value any
	Stack []byte
}

// Error implements error.
func (p *PanicError) Error() string { return fmt.Sprintf("handler panicked: %v", p.Value) }

// call runs the chain for one event and turns a panic into a *PanicError.
func call(ctx context.Context, h Handler, w Responder, ev *Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return h.Handle(ctx, w, ev)
}

// dispatch runs one event through the chain, then deals with what the chain left: typing
// still shown, an error or a panic, a request to end the session.
func (b *Bot) dispatch(s *Session, ev *Event) {
	ctx, cancel := context.WithTimeout(b.handlerCtx, b.cfg.EventTimeout)
	defer cancel()
	w := &responder{s: s, ev: ev}
	if ev.Kind == EventMessage && !b.cfg.Typing.Off {
		s.typingAuto(ctx, b.cfg.Typing.Delay)
	}
	start := time.Now()
	err := call(ctx, b.chain, w, ev)
	end := w.finish(ctx)
	switch {
	case errors.Is(err, ErrSessionEnded):
		// The peer left while the handler worked: nothing to apologise for.
		b.log.Info("reply dropped: the session has ended", "session", s.id, "event", ev.Kind.String())
		err = nil
	case err != nil && (errors.Is(err, ErrPeerUnreachable) || s.unreachable.Load()) && !errors.As(err, new(*PanicError)):
		// The peer did not answer the reply (or an earlier one): nobody to apologise to.
		b.log.Info("reply dropped: the peer does not answer", "session", s.id, "event", ev.Kind.String(), "err", err)
		err = nil
	}
	if err != nil {
		ref := newRef()
		attrs := []any{"session", s.id, "event", ev.Kind.String(), "ref", ref, "err", err, "elapsed", time.Since(start)}
		var pe *PanicError
		if errors.As(err, &pe) {
			attrs = append(attrs, "stack", string(pe.Stack))
		}
		b.log.Error("handler failed", attrs...)
		// No apology to a peer that cannot hear it (gone, or a forged source).
		if w.Replied() == 0 && (ev.Kind == EventMessage || ev.Kind == EventSessionStart) && !s.isEnded() &&
			!s.unreachable.Load() {
			msg := b.cfg.Apology
			if strings.Contains(msg, "%s") {
				msg = fmt.Sprintf(msg, ref)
			}
			// Its own deadline: the event's may be what ran out.
			actx, acancel := context.WithTimeout(b.handlerCtx, b.cfg.RequestTimeout)
			_, err := s.sendText(actx, msg)
			acancel()
			if err != nil {
				b.log.Warn("apology not delivered", "session", s.id, "ref", ref, "err", err)
			}
		}
	}
	switch {
	case ev.Kind == EventIdle:
		if s.lastIn.Load() > ev.Time.UnixNano() {
			// The peer wrote while the idle event was handled: the conversation goes on.
			s.mu.Lock()
			s.expiring = false
			s.mu.Unlock()
			break
		}
		s.end(b.handlerCtx, EndIdle, true)
	case end && ev.Kind != EventSessionEnd:
		s.end(b.handlerCtx, EndByBot, true)
	}
}

// newRef returns a short random correlation ID for logs and apologies.
func newRef() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
