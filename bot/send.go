package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/imbot-dev/imbot/internal/imcodec"
)

// udpBudget is the largest request the bot sends over UDP (RFC 3261 §18.1.1, RFC 3428).
const udpBudget = 1300

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

// SendError reports a request the peer (or a proxy) refused.
type SendError struct {
	Code   int
	Reason string
}

// Error implements error.
func (e *SendError) Error() string { return fmt.Sprintf("peer answered %d %s", e.Code, e.Reason) }

// sendText sends a text, split into several messages if it does not fit a UDP request. It
// reports Accepted when a server stored any part for later delivery.
func (s *Session) sendText(ctx context.Context, text string) (Delivery, error) {
	parts := []string{text}
	if s.replyNetwork() == "udp" {
		if overhead := s.udpOverhead(); overhead+len(text) > udpBudget {
			parts = imcodec.Split(text, udpBudget-overhead)
		}
	}
	delivery := Delivered
	for _, part := range parts {
		code, err := s.send(ctx, sip.MESSAGE, imcodec.PlainUTF8, []byte(part))
		if err != nil {
			return 0, err
		}
		if code == 202 {
			delivery = Accepted
		}
	}
	return delivery, nil
}

// udpOverhead is the size of a text message of this conversation without its body, with a
// margin for what sipgo adds on sending (Via, CSeq, tags, Contact). It is measured once: the
// headers of one conversation's messages keep their size.
func (s *Session) udpOverhead() int {
	if n := s.headerBytes.Load(); n > 0 {
		return int(n)
	}
	n := len(s.newRequest(sip.MESSAGE, imcodec.PlainUTF8, nil).String()) + s.routeLen + 400
	s.headerBytes.Store(int32(n))
	return n
}

// sendTyping sends one typing indication.
func (s *Session) sendTyping(ctx context.Context, kind typingKind, active bool) error {
	var err error
	switch kind {
	case typingKeyboard:
		_, err = s.send(ctx, sip.INFO, imcodec.TypeKeyboard, imcodec.KeyboardActivity(active))
	case typingComposing:
		_, err = s.send(ctx, sip.MESSAGE, imcodec.TypeIsComposing, imcodec.IsComposing(active, s.b.cfg.Typing.Refresh))
	default:
		return ErrTypingNotSupported
	}
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
		return nil
	}
	if err == nil && s.b.cfg.Observer != nil {
		s.b.cfg.Observer.ObserveTypingSent()
	}
	return err
}

func (s *Session) replyNetwork() string {
	if s.mode == ModePage && s.b.proxyAddr != "" {
		return s.b.proxyTp
	}
	return s.network
}

// newRequest builds a request of the conversation (without the dialog fields that sipgo adds).
func (s *Session) newRequest(method sip.RequestMethod, contentType string, body []byte) *sip.Request {
	if s.dlg != nil {
		req := sip.NewRequest(method, s.target)
		ct := sip.ContentTypeHeader(contentType)
		req.AppendHeader(&ct)
		req.SetBody(body)
		return req
	}
	req, _ := s.b.newOutOfDialog(method, s.local, s.peerURI)
	ct := sip.ContentTypeHeader(contentType)
	req.AppendHeader(&ct)
	req.SetBody(body)
	if s.b.proxyAddr != "" {
		req.SetDestination(s.b.proxyAddr)
		req.SetTransport(strings.ToUpper(s.b.proxyTp))
	} else {
		req.SetDestination(s.peerAddr)
		req.SetTransport(strings.ToUpper(s.network))
	}
	return req
}

// send sends one request of the conversation and waits for its final response, whose 2xx
// status it returns. A 408, 480 or 481 (or no answer at all) inside a dialog means the peer
// lost it: the session ends.
func (s *Session) send(parent context.Context, method sip.RequestMethod, contentType string, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(parent, s.b.cfg.RequestTimeout)
	defer cancel()
	req := s.newRequest(method, contentType, body)
	if s.b.sendHook != nil {
		s.touch()
		return 200, s.b.sendHook(ctx, s, req)
	}
	var (
		res *sip.Response
		err error
	)
	if s.dlg != nil {
		res, err = s.dlg.Do(ctx, req)
	} else {
		cli := s.b.clients[sip.NetworkToLower(req.Transport())]
		if cli == nil {
			return 0, fmt.Errorf("send %s: the bot does not listen on %s", method, req.Transport())
		}
		res, err = s.b.doAuth(ctx, cli, req) // an outbound proxy may challenge
	}
	s.touch()
	if err != nil {
		if s.dlg != nil && parent.Err() == nil {
			// No answer at all, or no way to reach the peer (its connection is gone, a
			// browser tab closed): the dialog is dead.
			go s.end(s.b.handlerCtx, EndDeadDialog, false)
		}
		return 0, fmt.Errorf("send %s to %s: %w", method, s.peer.URI, err)
	}
	if res.StatusCode >= 300 {
		if s.dlg != nil && (res.StatusCode == 408 || res.StatusCode == 480 || res.StatusCode == 481) {
			go s.end(s.b.handlerCtx, EndDeadDialog, res.StatusCode != 481)
		}
		return 0, &SendError{Code: res.StatusCode, Reason: res.Reason}
	}
	return res.StatusCode, nil
}
