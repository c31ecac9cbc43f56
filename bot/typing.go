package bot

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imbot-dev/imbot/internal/imcodec"
)

// Typing indications ("is composing", RFC 3994, or the Microsoft KeyboardActivity INFO) follow
// one state machine per session, in this file:
//
//	off --start--> active --refresh (timer)--> active
//	active --a text message is sent (Reply, Session.Send, apology)--> off  (the message ends it)
//	active --the handler returns without a reply--> off, with an explicit "idle"
//	any --the peer refuses the signal (415/405/501)--> that signal is never sent again
//
// Every path (start, refresh, idle) asks typingKind at the moment it sends, so a refusal
// stops the refreshes at once. Indications are written in order with the session's other
// requests; the answer to one is dealt with before the next request of the typing state
// machine or the next text message is written, so that no proxy can deliver "typing" after
// the reply and a refusal is known in time.

// typingKind is the typing signal a session gets.
type typingKind int

const (
	typingNone      typingKind = iota
	typingKeyboard             // INFO application/xml KeyboardActivity (Microsoft dialect)
	typingComposing            // RFC 3994 isComposing MESSAGE
)

// typingPrefs records what the peer showed it understands.
type typingPrefs struct {
	peerKeyboard, peerComposing bool // the peer sent one
	acceptsComposing            bool // listed in accept-types or Accept
	ms                          bool // a Microsoft-style session
	refusedKeyboard             bool
	refusedComposing            bool
}

// typingState is the session's typing: whether "active" was sent and not yet ended, and the
// timers that repeat it or start it late.
type typingState struct {
	active  bool
	kind    typingKind
	refresh *time.Timer
	auto    *time.Timer
	gen     uint64 // counts text messages sent: a delayed start after one is void
	// settle waits for the answer to the last indication sent and deals with it, once. A
	// text message is written only after it (see sendText); the next indication and the
	// final idle settle it first too. Waiting there, rather than in a goroutine per
	// indication, costs no round trip: the indication went out first.
	settle func()
}

// typingKind picks the signal: mirror the peer, else what it announced, never one it refused.
func (s *Session) typingKind() typingKind {
	s.mu.Lock()
	p := s.typing
	s.mu.Unlock()
	keyboard := s.mode == ModeSession && !p.refusedKeyboard
	composing := !p.refusedComposing
	switch {
	case p.peerKeyboard && keyboard:
		return typingKeyboard
	case p.peerComposing && composing:
		return typingComposing
	case p.acceptsComposing && composing:
		return typingComposing
	case p.ms && keyboard:
		return typingKeyboard
	}
	return typingNone
}

// typingStart shows typing until the next text message or typingIdle.
func (s *Session) typingStart(ctx context.Context) error {
	s.tmu.Lock()
	defer s.tmu.Unlock()
	return s.typingStartLocked(ctx)
}

func (s *Session) typingStartLocked(ctx context.Context) error {
	if s.isEnded() {
		return ErrSessionEnded
	}
	kind := s.typingKind()
	if kind == typingNone {
		return ErrTypingNotSupported
	}
	if s.ty.active && s.ty.kind == kind {
		return nil
	}
	if err := s.sendTyping(ctx, kind, true); err != nil {
		return err
	}
	s.ty.active, s.ty.kind = true, kind
	every := s.b.cfg.Typing.RefreshMS
	if kind == typingComposing {
		every = s.b.cfg.Typing.Refresh * 2 / 3
	}
	if s.ty.refresh != nil {
		s.ty.refresh.Stop()
	}
	s.ty.refresh = time.AfterFunc(every, func() { s.typingRefresh(every) })
	return nil
}

// typingRefresh repeats "active" before the peer drops it, unless typing ended or the peer
// refused the signal meanwhile.
func (s *Session) typingRefresh(every time.Duration) {
	s.tmu.Lock()
	defer s.tmu.Unlock()
	if !s.ty.active || s.isEnded() {
		return
	}
	s.settleTypingLocked()
	if s.typingKind() != s.ty.kind {
		s.ty.active = false // refused since: no more of it
		return
	}
	if err := s.sendTyping(s.b.handlerCtx, s.ty.kind, true); err != nil {
		s.b.log.Debug("typing refresh failed", "session", s.id, "err", err)
	}
	if s.ty.refresh != nil {
		s.ty.refresh.Reset(every)
	}
}

// typingAuto shows typing after delay, unless a text message goes out first or typingIdle
// runs.
func (s *Session) typingAuto(ctx context.Context, delay time.Duration) {
	s.tmu.Lock()
	defer s.tmu.Unlock()
	// The bot's own typing: a peer that cannot show it, or has left, is no failure.
	start := func() {
		if err := s.typingStartLocked(ctx); err != nil && !errors.Is(err, ErrTypingNotSupported) && !errors.Is(err, ErrSessionEnded) {
			s.b.log.Debug("typing failed", "session", s.id, "err", err)
		}
	}
	if delay <= 0 {
		start()
		return
	}
	gen := s.ty.gen
	s.ty.auto = time.AfterFunc(delay, func() {
		s.tmu.Lock()
		defer s.tmu.Unlock()
		if s.ty.gen != gen || s.ty.auto == nil {
			return
		}
		s.ty.auto = nil
		start()
	})
}

// typingForMessage runs on every text send path, before the message is written: the message
// itself ends "typing" for the peer, so refreshes and a pending automatic start stop. The
// caller holds s.tmu.
func (s *Session) typingForMessageLocked() {
	s.ty.gen++
	s.stopTypingTimersLocked()
	s.ty.active = false
}

func (s *Session) stopTypingTimersLocked() {
	if s.ty.refresh != nil {
		s.ty.refresh.Stop()
		s.ty.refresh = nil // an idle session keeps no timer
	}
	if s.ty.auto != nil {
		s.ty.auto.Stop()
		s.ty.auto = nil
	}
}

// typingIdle runs when a handler returns: typing still shown without a reply is turned off
// with an explicit idle, in the signal "active" went in, unless the peer refused it since.
func (s *Session) typingIdle(ctx context.Context) {
	s.tmu.Lock()
	defer s.tmu.Unlock()
	s.ty.gen++
	s.stopTypingTimersLocked()
	if !s.ty.active {
		return
	}
	s.ty.active = false
	s.settleTypingLocked()
	if s.isEnded() || s.typingKind() != s.ty.kind {
		return
	}
	if err := s.sendTyping(ctx, s.ty.kind, false); err != nil {
		s.b.log.Debug("typing idle failed", "session", s.id, "err", err)
	}
}

// typingOff stops typing without sending anything (the session ends).
func (s *Session) typingOff() {
	s.tmu.Lock()
	defer s.tmu.Unlock()
	s.ty.gen++
	s.stopTypingTimersLocked()
	s.ty.active = false
}

// sendTyping writes one typing indication; its answer is handled in the background. The
// caller holds s.tmu.
func (s *Session) sendTyping(ctx context.Context, kind typingKind, active bool) error {
	var (
		method sip.RequestMethod
		ct     string
		body   []byte
	)
	switch kind {
	case typingKeyboard:
		method, ct, body = sip.INFO, imcodec.TypeKeyboard, imcodec.KeyboardActivity(active)
	case typingComposing:
		method, ct, body = sip.MESSAGE, imcodec.TypeIsComposing, imcodec.IsComposing(active, s.b.cfg.Typing.Refresh)
	default:
		return ErrTypingNotSupported
	}
	s.settleTypingLocked()
	wait, err := s.start(ctx, method, ct, body)
	if err != nil {
		return err
	}
	s.ty.settle = sync.OnceFunc(func() {
		_, err := wait()
		var se *SendError
		if errors.As(err, &se) && (se.Code == 415 || se.Code == 405 || se.Code == 501) {
			s.mu.Lock()
			if kind == typingKeyboard {
				s.typing.refusedKeyboard = true
			} else {
				s.typing.refusedComposing = true
			}
			s.mu.Unlock()
			s.b.log.Debug("peer refused typing; no more of them", "session", s.id, "code", se.Code)
			return
		}
		if err != nil {
			s.b.log.Debug("typing indication failed", "session", s.id, "err", err)
			return
		}
		if s.b.cfg.Observer != nil {
			s.b.cfg.Observer.ObserveTypingSent()
		}
	})
	return nil
}

// settleTypingLocked deals with the answer to the last indication sent, waiting for it if
// need be; the caller holds s.tmu.
func (s *Session) settleTypingLocked() {
	if f := s.ty.settle; f != nil {
		s.ty.settle = nil
		f()
	}
}
